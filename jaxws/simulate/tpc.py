"""A stylised dual-phase xenon TPC: electron- and nuclear-recoil events -> S1, S2, S2 hit pattern.

A *toy*, written for the anomaly-aware search of Scaffidi and Trotta (DARWIN, arXiv:2410.00755),
whose network input is x = [S1 total, S2 total, S2 pattern]; its microphysics is calibrated to
NEST (nestpy 2.1.3 / NEST 2.4, 200 V/cm, 2.9 g/cm3; experiments/tpc_nest_calibration.py):

* recoil energies: flat for electron recoils (ER, the background) over [E_min, E_max]; nuclear
  recoils (NR) from a tabulated spectrum (`RecoilSpectrum`): flat (classifier training),
  exponential (neutron-like) or the spin-independent WIMP spectrum of the standard halo with a
  Helm form factor (`jaxws.simulate.wimp`), sampled by inverse CDF;
* quanta: N_q ~ Poisson(Q(E) E) with NEST's mean quanta per keV Q(E) (ER: 1 / 13.4 eV; NR:
  NEST's Lindhard-like quenching), electrons N_e = Binomial(N_q, f_e(E)) + sigma_R(E) N_q
  N(0, 1) (recombination fluctuations; anti-correlated with the photons N_q - N_e), with f_e
  and sigma_R interpolated in log E from knot tables computed with NEST, so the ER and NR
  bands and their widths follow NEST's energy dependence;
* S1: detected photons ~ Binomial(N_gamma, g1), smeared by the photosensor single-photoelectron
  resolution (Gaussian, sigma = spe_resolution * sqrt(n));
* S2: electrons surviving the drift ~ Binomial(N_e, eps_extraction * exp(-z / lambda)), each
  giving a Gaussian number of photoelectrons (mean g2, sigma g2_resolution * g2);
* S2 pattern: the interaction position (uniform in a cylinder) is seen by a hexagonal grid of
  photosensors (1, 7, 19, 37, ... sensors) through a solid-angle-like light response
  h / (r^2 + h^2)^(3/2); sensor counts ~ Poisson(S2 * share) and the pattern is normalised to
  sum to one.

Detector numbers are loosely XENONnT/DARWIN-like (g1 = 0.12, g2 = 20 PE per electron); no
claim of realism beyond the NEST yields is made (no accidentals, wall events, multiple
scatters, field non-uniformity). Everything is pure JAX: fixed shapes, `jit` and `vmap`
friendly; events below threshold are kept and flagged in `detected` so shapes stay fixed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxws.config import check

# Xenon-131-like target nucleus mass in GeV and the standard-halo circular speed in units of c.
XENON_NUCLEUS_MASS_GEV = 131.0 * 0.9315
HALO_V0_OVER_C = 220.0 / 299_792.458

ELECTRON_RECOIL = 0
NUCLEAR_RECOIL = 1

# NEST 2.4 (nestpy 2.1.3) at 200 V/cm, 2.9 g/cm3, from experiments/tpc_nest_calibration.py:
# mean quanta per keV, charge fraction electrons / quanta, recombination fluctuation sigma_R.
YIELD_ENERGIES_KEV = (0.5, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 70, 100, 150, 200)
ER_QUANTA_PER_KEV = (74.4,) * 18
ER_CHARGE_FRACTION = (
    0.9817, 0.8362, 0.7146, 0.6322, 0.5349, 0.4807, 0.4463, 0.4048, 0.3719,
    0.3448, 0.3308, 0.3177, 0.3153, 0.3208, 0.3476, 0.3952, 0.4538, 0.4924,
)  # fmt: skip
ER_RECOMBINATION_SIGMA = (
    0, 0, 0, 0, 0.02188, 0.0359, 0.03909, 0.04139, 0.04031,
    0.03826, 0.0366, 0.03501, 0.03412, 0.03504, 0.03691, 0.03951, 0.03875, 0.03656,
)  # fmt: skip
NR_QUANTA_PER_KEV = (
    9.043, 10.67, 11.3, 11.7, 12.24, 12.62, 12.91, 13.36, 13.86,
    14.43, 14.86, 15.47, 15.92, 16.28, 16.84, 17.45, 18.18, 18.71,
)  # fmt: skip
NR_CHARGE_FRACTION = (
    0.6215, 0.6449, 0.6269, 0.6052, 0.5666, 0.5351, 0.5088, 0.4667, 0.4196,
    0.3647, 0.326, 0.2739, 0.2395, 0.2147, 0.1807, 0.1494, 0.1194, 0.1014,
)  # fmt: skip
NR_RECOMBINATION_SIGMA = (
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.001921, 0.003239, 0.003695, 0.00375,
)  # fmt: skip
SPECTRUM_TABLE_SIZE = 1024


def yield_curves(energy: jax.Array, is_nr: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(quanta per keV, charge fraction, recombination sigma) at `energy`, linear in log E."""
    log_e = jnp.log(jnp.asarray(YIELD_ENERGIES_KEV, jnp.float32))
    x = jnp.log(jnp.maximum(energy, 1e-3))

    def curve(er_values: tuple[float, ...], nr_values: tuple[float, ...]) -> jax.Array:
        er = jnp.interp(x, log_e, jnp.asarray(er_values, jnp.float32))
        nr = jnp.interp(x, log_e, jnp.asarray(nr_values, jnp.float32))
        return jnp.where(is_nr, nr, er)

    return (
        curve(ER_QUANTA_PER_KEV, NR_QUANTA_PER_KEV),
        curve(ER_CHARGE_FRACTION, NR_CHARGE_FRACTION),
        curve(ER_RECOMBINATION_SIGMA, NR_RECOMBINATION_SIGMA),
    )


def nr_spectrum_slope(wimp_mass_gev: float | jax.Array) -> jax.Array:
    """Characteristic NR energy E_c = 2 mu^2 v0^2 / m_N in keV for a WIMP-like mass in GeV.

    dR/dE ~ exp(-E / E_c) (Lewin and Smith without form factor): about 5, 11 and 27 keV for
    30, 50 and 100 GeV on xenon.
    """
    mass = jnp.asarray(wimp_mass_gev, dtype=jnp.float32)
    reduced = mass * XENON_NUCLEUS_MASS_GEV / (mass + XENON_NUCLEUS_MASS_GEV)
    return 2.0 * reduced**2 * HALO_V0_OVER_C**2 / XENON_NUCLEUS_MASS_GEV * 1.0e6


# Counting fluctuations. jax.random.poisson/binomial compile slowly (seconds per call site), so
# the toy uses its own sampler: exact inverse-CDF search for small means (where the shape
# matters), a rounded Gaussian above SMALL_MEAN (where it is accurate to a few per cent).
SMALL_MEAN = 30.0
_MAX_SMALL_COUNT = 100


def _inverse_cdf_count(
    uniform: jax.Array, first_pmf: jax.Array, next_ratio: Callable[[jax.Array], jax.Array]
):
    """Smallest k with CDF(k) >= u, for pmf_{k+1} = pmf_k * next_ratio(k) (k < 100)."""

    def body(k: jax.Array, carry: tuple[jax.Array, jax.Array, jax.Array]):
        count, pmf, cdf = carry
        count = count + (uniform > cdf).astype(jnp.float32)
        pmf = pmf * next_ratio(k)
        return count, pmf, cdf + pmf

    init = (jnp.zeros_like(uniform), first_pmf, first_pmf)
    count, _, _ = jax.lax.fori_loop(0, _MAX_SMALL_COUNT, body, init)
    return count


def poisson_counts(key: jax.Array, mean: jax.Array) -> jax.Array:
    """Poisson counts (float) with the shape of `mean`; exact below SMALL_MEAN."""
    uniform_key, normal_key = jax.random.split(key)
    small_mean = jnp.minimum(mean, SMALL_MEAN)
    exact = _inverse_cdf_count(
        jax.random.uniform(uniform_key, mean.shape),
        jnp.exp(-small_mean),
        lambda k: small_mean / (k + 1.0),
    )
    gaussian = jnp.round(mean + jnp.sqrt(mean) * jax.random.normal(normal_key, mean.shape))
    return jnp.where(mean < SMALL_MEAN, exact, jnp.maximum(gaussian, 0.0))


def binomial_counts(key: jax.Array, trials: jax.Array, probability: jax.Array) -> jax.Array:
    """Binomial counts (float) for float `trials`; exact when min(n p, n (1 - p)) < SMALL_MEAN."""
    uniform_key, normal_key = jax.random.split(key)
    trials, probability = jnp.broadcast_arrays(trials, jnp.asarray(probability, jnp.float32))
    flipped = probability > 0.5
    p = jnp.where(flipped, 1.0 - probability, probability)
    small = trials * p < SMALL_MEAN
    n_small = jnp.where(small, trials, 0.0)
    exact = _inverse_cdf_count(
        jax.random.uniform(uniform_key, trials.shape),
        jnp.exp(n_small * jnp.log1p(-p)),
        lambda k: jnp.maximum(n_small - k, 0.0) / (k + 1.0) * p / (1.0 - p),
    )
    sigma = jnp.sqrt(trials * p * (1.0 - p))
    gaussian = jnp.round(trials * p + sigma * jax.random.normal(normal_key, trials.shape))
    count = jnp.where(small, exact, jnp.clip(gaussian, 0.0, trials))
    return jnp.where(flipped, trials - count, count)


@struct.dataclass
class TPCParams:
    """Numeric detector response (a pytree: every leaf may be vmapped or swept).

    Energies in keV, lengths in cm, S1/S2 in photoelectrons (PE).
    """

    energy_min: float = 1.0
    energy_max: float = 100.0
    recombination_scale: float = 1.0
    g1: float = 0.12
    spe_resolution: float = 0.35
    g2: float = 20.0
    g2_resolution: float = 0.25
    extraction_efficiency: float = 0.9
    electron_lifetime_cm: float = 300.0
    drift_length_cm: float = 100.0
    radius_cm: float = 60.0
    sensor_height_cm: float = 15.0
    s1_threshold: float = 3.0
    s2_threshold: float = 100.0


@dataclasses.dataclass(frozen=True)
class TPCConfig:
    """Config section `data` for the TPC toy (see docs/anomaly.md for every field).

    Besides the detector numbers (copied into `TPCParams`), it fixes the static sensor layout and
    the sample sizes the anomaly method draws.
    """

    source: str = "tpc"
    sensor_rings: int = 2
    energy_min: float = 1.0
    energy_max: float = 100.0
    recombination_scale: float = 1.0
    g1: float = 0.12
    g2: float = 20.0
    s1_threshold: float = 3.0
    s2_threshold: float = 100.0
    neutron_fraction: float = 0.0
    neutron_slope_kev: float = 30.0
    n_background_train: int = 20000
    n_background_null: int = 50000
    n_background_bank: int = 2000000
    n_signal_train: int = 10000
    n_signal_benchmark: int = 4000

    def __post_init__(self) -> None:
        check(self.source == "tpc", f"data.source must be 'tpc' here, got {self.source!r}")
        check(self.sensor_rings >= 1, f"data.sensor_rings must be >= 1, got {self.sensor_rings}")
        check(
            0.0 < self.energy_min < self.energy_max,
            f"data.energy_min/energy_max must satisfy 0 < min < max, got "
            f"{self.energy_min}, {self.energy_max}",
        )
        check(0.0 < self.g1 < 1.0, f"data.g1 must lie in (0, 1), got {self.g1}")
        check(
            self.recombination_scale >= 0,
            f"data.recombination_scale must be >= 0, got {self.recombination_scale}",
        )
        check(self.g2 > 0, f"data.g2 must be > 0, got {self.g2}")
        check(
            0.0 <= self.neutron_fraction < 1.0,
            f"data.neutron_fraction must lie in [0, 1), got {self.neutron_fraction}",
        )
        check(self.neutron_slope_kev > 0, "data.neutron_slope_kev must be > 0")
        for name in (
            "n_background_train",
            "n_background_null",
            "n_background_bank",
            "n_signal_train",
            "n_signal_benchmark",
        ):
            check(getattr(self, name) >= 100, f"data.{name} must be >= 100")

    def params(self) -> TPCParams:
        """The numeric `TPCParams` of this section (other fields keep their defaults)."""
        return TPCParams(
            energy_min=self.energy_min,
            energy_max=self.energy_max,
            recombination_scale=self.recombination_scale,
            g1=self.g1,
            g2=self.g2,
            s1_threshold=self.s1_threshold,
            s2_threshold=self.s2_threshold,
        )


def hexagonal_sensor_grid(rings: int, pitch_cm: float) -> np.ndarray:
    """Sensor centres (S, 2) of a hexagonal grid with `rings` rings around a central sensor.

    S = 1 + 3 rings (rings + 1): 7, 19, 37 sensors for 1, 2, 3 rings.
    """
    if rings < 0:
        raise ValueError(f"sensor rings must be >= 0, got {rings}")
    positions = []
    # Axial hex coordinates (q, r) with |q|, |r|, |q + r| <= rings.
    for q in range(-rings, rings + 1):
        for r in range(max(-rings, -q - rings), min(rings, -q + rings) + 1):
            x = pitch_cm * (q + 0.5 * r)
            y = pitch_cm * (math.sqrt(3.0) / 2.0) * r
            positions.append((x, y))
    return np.asarray(sorted(positions, key=lambda p: (round(p[1], 6), round(p[0], 6))))


def sensor_grid_for(params: TPCParams, rings: int) -> np.ndarray:
    """Hexagonal grid whose outer ring sits at about the TPC radius."""
    return hexagonal_sensor_grid(rings, pitch_cm=float(params.radius_cm) / max(rings, 1))


def light_response(
    positions: jax.Array, sensors: jax.Array, height: float | jax.Array
) -> jax.Array:
    """Share of S2 light seen by each sensor (N, S); rows sum to one.

    A solid-angle-like response h / (d^2 + h^2)^(3/2) with d the horizontal distance between
    the interaction and the sensor and h the gas-gap-to-sensor height.
    """
    distance_sq = jnp.sum((positions[:, None, :] - sensors[None, :, :]) ** 2, axis=-1)
    response = height / (distance_sq + height**2) ** 1.5
    return response / jnp.sum(response, axis=-1, keepdims=True)


def sample_recoil_energy(
    key: jax.Array,
    n: int,
    slope_kev: float | jax.Array,
    params: TPCParams,
) -> jax.Array:
    """Recoil energies (n,) in keV on [energy_min, energy_max], flat or exponential.

    Args:
      key: PRNG key (consumed).
      n: number of events.
      slope_kev: exponential slope E_c of dR/dE ~ exp(-E / E_c); `inf` (or <= 0) gives
        the flat spectrum. A traced value, so one compiled program serves every slope.
      params: detector numbers.

    Returns:
      Energies drawn by inverting the (truncated) CDF.
    """
    u = jax.random.uniform(key, (n,))
    low, high = params.energy_min, params.energy_max
    slope = jnp.asarray(slope_kev, jnp.float32)
    flat = ~jnp.isfinite(slope) | (slope <= 0)
    safe_slope = jnp.where(flat, 1.0, slope)
    # Truncated exponential: E = low - E_c log(1 - u (1 - exp(-(high - low) / E_c))).
    span = -jnp.expm1(-(high - low) / safe_slope)
    exponential = low - safe_slope * jnp.log1p(-u * span)
    return jnp.where(flat, low + (high - low) * u, exponential)


@struct.dataclass
class RecoilSpectrum:
    """A recoil-energy spectrum tabulated for inverse-CDF sampling (a pytree of fixed shape).

    Attributes:
      energies: (SPECTRUM_TABLE_SIZE,) increasing energies in keV; cdf: the CDF there (0 to 1).
    """

    energies: jax.Array
    cdf: jax.Array

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """Draw `n` energies by linear interpolation of the inverse CDF."""
        return jnp.interp(jax.random.uniform(key, (n,)), self.cdf, self.energies)


def _spectrum_grid(params: TPCParams) -> np.ndarray:
    # Log-spaced: the falling spectra need resolution near threshold.
    return np.geomspace(float(params.energy_min), float(params.energy_max), SPECTRUM_TABLE_SIZE)


def flat_spectrum(params: TPCParams) -> RecoilSpectrum:
    """Flat on [energy_min, energy_max] (the classifier's NR class; the ER background)."""
    grid = _spectrum_grid(params)
    cdf = (grid - grid[0]) / (grid[-1] - grid[0])
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


def exponential_spectrum(slope_kev: float, params: TPCParams) -> RecoilSpectrum:
    """dR/dE ~ exp(-E / slope) on [energy_min, energy_max] (neutron-like background)."""
    grid = _spectrum_grid(params)
    cdf = -np.expm1(-(grid - grid[0]) / slope_kev) / -np.expm1(-(grid[-1] - grid[0]) / slope_kev)
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


def wimp_spectrum(wimp_mass_gev: float, params: TPCParams) -> RecoilSpectrum:
    """Spin-independent WIMP recoils: standard halo, Helm form factor (`jaxws.simulate.wimp`)."""
    from jaxws.simulate import wimp

    grid = _spectrum_grid(params)
    fine = np.geomspace(grid[0], grid[-1], 16 * grid.size)
    rate = wimp.differential_rate(fine, wimp_mass_gev, 1e-45)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(fine))])
    cdf = np.interp(grid, fine, cdf / cdf[-1])
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


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
