"""The detector chain from recoils to S1, S2 and positions; detected events and their features."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.simulate.tpc.counts import binomial_counts, poisson_counts
from jaxws.simulate.tpc.detector import TPCParams, light_response
from jaxws.simulate.tpc.spectra import RecoilSpectrum, flat_spectrum, sample_recoil_energy
from jaxws.simulate.tpc.yields import ELECTRON_RECOIL, NUCLEAR_RECOIL, yield_curves


def quanta(
    key: jax.Array, energy: jax.Array, recoil_type: jax.Array, params: TPCParams
) -> tuple[jax.Array, jax.Array]:
    """Photons and electrons (n,) of recoils: NEST-calibrated means, recombination fluctuations.

    N_q ~ Poisson(Q(E) E); N_e = Binomial(N_q, f_e(E)) + round(sigma_R(E) N_q N(0, 1)),
    clipped to [0, N_q]; N_gamma = N_q - N_e (`yield_curves`; sigma_R times
    `params.recombination_scale`).
    """
    quanta_key, split_key, recombination_key = jax.random.split(key, 3)
    is_nr = recoil_type == NUCLEAR_RECOIL
    per_kev, charge_fraction, recombination = yield_curves(energy, is_nr)
    total = poisson_counts(quanta_key, per_kev * energy)
    electrons = binomial_counts(split_key, total, charge_fraction)
    spread = params.recombination_scale * recombination * total
    electrons = electrons + jnp.round(spread * jax.random.normal(recombination_key, total.shape))
    electrons = jnp.clip(electrons, 0.0, total)
    return total - electrons, electrons


def detect(
    key: jax.Array,
    energy: jax.Array,
    recoil_type: jax.Array,
    photons: jax.Array,
    electrons: jax.Array,
    sensors: jax.Array,
    params: TPCParams,
) -> dict[str, jax.Array]:
    """Turn photons and electrons into S1, S2 and the normalised S2 hit pattern.

    Args:
      key: PRNG key (consumed).
      energy: (n,) recoil energies in keV (carried along).
      recoil_type: (n,) 0 for ER, 1 for NR (integer array).
      photons: (n,) photons (from `quanta`, or from NEST for comparisons).
      electrons: (n,) electrons, likewise.
      sensors: (S, 2) sensor centres in cm.
      params: detector numbers.

    Returns:
      dict with energy, recoil_type, position (n, 3) = (x, y, z), s1 (n,), s2 (n,) in PE,
      pattern (n, S) summing to one (uniform for events without S2 light) and detected (n,)
      bool (S1 and S2 above threshold).
    """
    n = energy.shape[0]
    keys = jax.random.split(key, 7)
    detected_photons = binomial_counts(keys[0], photons, params.g1)
    s1 = detected_photons + params.spe_resolution * jnp.sqrt(detected_photons) * jax.random.normal(
        keys[1], (n,)
    )

    radius = params.radius_cm * jnp.sqrt(jax.random.uniform(keys[2], (n,)))
    angle = 2.0 * jnp.pi * jax.random.uniform(keys[3], (n,))
    depth = params.drift_length_cm * jax.random.uniform(keys[4], (n,))
    survival = params.extraction_efficiency * jnp.exp(-depth / params.electron_lifetime_cm)
    extracted = binomial_counts(keys[5], electrons, survival)
    gain_keys = jax.random.split(keys[6], 2)
    s2 = params.g2 * extracted + params.g2_resolution * params.g2 * jnp.sqrt(
        extracted
    ) * jax.random.normal(gain_keys[0], (n,))
    s2 = jnp.maximum(s2, 0.0)

    position_xy = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)
    share = light_response(position_xy, sensors, params.sensor_height_cm)
    counts = poisson_counts(gain_keys[1], s2[:, None] * share)
    total = jnp.sum(counts, axis=-1, keepdims=True)
    n_sensors = sensors.shape[0]
    pattern = jnp.where(total > 0, counts / jnp.maximum(total, 1.0), 1.0 / n_sensors)

    detected = (s1 >= params.s1_threshold) & (s2 >= params.s2_threshold)
    return {
        "energy": energy,
        "recoil_type": recoil_type,
        "position": jnp.concatenate([position_xy, depth[:, None]], axis=-1),
        "s1": s1,
        "s2": s2,
        "pattern": pattern,
        "detected": detected,
    }


def detector_response(
    key: jax.Array,
    energy: jax.Array,
    recoil_type: jax.Array,
    sensors: jax.Array,
    params: TPCParams,
) -> dict[str, jax.Array]:
    """`quanta` then `detect`: recoil energies -> S1, S2, pattern (see `detect`)."""
    quanta_key, detect_key = jax.random.split(key)
    photons, electrons = quanta(quanta_key, energy, recoil_type, params)
    return detect(detect_key, energy, recoil_type, photons, electrons, sensors, params)


def simulate_events(
    key: jax.Array,
    n: int,
    params: TPCParams,
    sensors: jax.Array,
    nr_fraction: float | jax.Array = 0.0,
    nr_spectrum: RecoilSpectrum | None = None,
) -> dict[str, jax.Array]:
    """Draw `n` events: flat-spectrum ER, each replaced with probability `nr_fraction` by an NR.

    nr_fraction = 0 gives the ER background; 1 gives pure NR (`flat_spectrum`: as for
    training the classifier; `wimp_spectrum(m)`: a WIMP signal); in between, a background with
    neutron-like NR. Below-threshold events are flagged, not removed.

    Args:
      key: PRNG key (consumed).
      n: number of events (static).
      params: detector numbers.
      sensors: (S, 2) sensor centres.
      nr_fraction: probability that an event is an NR.
      nr_spectrum: NR energy spectrum (None: flat).

    Returns:
      The event dict of `detect` (recoil_type 1 marks the NR).
    """
    if nr_spectrum is None:
        nr_spectrum = flat_spectrum(params)
    type_key, er_key, nr_key, response_key = jax.random.split(key, 4)
    is_nr = jax.random.uniform(type_key, (n,)) < nr_fraction
    er_energy = sample_recoil_energy(er_key, n, jnp.inf, params)
    nr_energy = nr_spectrum.sample(nr_key, n)
    energy = jnp.where(is_nr, nr_energy, er_energy)
    types = jnp.where(is_nr, NUCLEAR_RECOIL, ELECTRON_RECOIL).astype(jnp.int32)
    return detector_response(response_key, energy, types, sensors, params)


simulate_events_jit = jax.jit(simulate_events, static_argnums=1)


def simulate_detected(
    key: jax.Array,
    n: int,
    params: TPCParams,
    sensors: jax.Array,
    nr_fraction: float = 0.0,
    nr_spectrum: RecoilSpectrum | None = None,
    chunk_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Simulate n events in fixed-size chunks (one compilation) and keep the detected ones.

    Chunk c uses `fold_in(key, c)`; the result has at most n events (thresholds remove some).
    """
    if nr_spectrum is None:
        nr_spectrum = flat_spectrum(params)
    n_chunks = max(1, math.ceil(n / chunk_size))
    chunks = [
        simulate_events_jit(
            jax.random.fold_in(key, c),
            chunk_size,
            params,
            jnp.asarray(sensors, jnp.float32),
            jnp.float32(nr_fraction),
            nr_spectrum,
        )
        for c in range(n_chunks)
    ]
    events = {name: np.concatenate([np.asarray(c[name]) for c in chunks])[:n] for name in chunks[0]}
    return select_detected(events)


def simulate_detected_count(
    key: jax.Array,
    n_detected: int,
    params: TPCParams,
    sensors: jax.Array,
    nr_fraction: float = 0.0,
    nr_spectrum: RecoilSpectrum | None = None,
    chunk_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Exactly `n_detected` detected events: chunks (chunk c from `fold_in(key, c)`) until enough.

    Unlike `simulate_detected`, whose count is before the thresholds, this fixes the count
    after them (what a data set of N observed events needs).
    """
    if nr_spectrum is None:
        nr_spectrum = flat_spectrum(params)
    kept: list[dict[str, np.ndarray]] = []
    total, chunk = 0, 0
    while total < n_detected:
        events = select_detected(
            simulate_events_jit(
                jax.random.fold_in(key, chunk),
                chunk_size,
                params,
                jnp.asarray(sensors, jnp.float32),
                jnp.float32(nr_fraction),
                nr_spectrum,
            )
        )
        kept.append(events)
        total += events["s1"].size
        chunk += 1
        if chunk > 1000 and total == 0:
            raise ValueError("no simulated event passes the S1/S2 thresholds")
    return {name: np.concatenate([e[name] for e in kept])[:n_detected] for name in kept[0]}


def event_features(events: dict[str, jax.Array]) -> jax.Array:
    """Network input x = [log10 S1, log10 S2, S2 pattern] (n, 2 + S), as in the DARWIN slides.

    Logarithms tame the two-decade range of the totals; S1 and S2 are floored at 1 PE so that
    below-threshold events (which analyses drop via `detected`) stay finite.
    """
    s1 = jnp.log10(jnp.maximum(events["s1"], 1.0))
    s2 = jnp.log10(jnp.maximum(events["s2"], 1.0))
    return jnp.concatenate([s1[:, None], s2[:, None], events["pattern"]], axis=-1)


def select_detected(events: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    """Host-side selection of the events above both thresholds (changes the event count)."""
    mask = np.asarray(events["detected"])
    return {name: np.asarray(value)[mask] for name, value in events.items()}
