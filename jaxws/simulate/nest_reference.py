"""NEST (nestpy) as the reference for the toy TPC's yields, fluctuations and bands.

The toy (`jaxws.simulate.tpc`) tabulates NEST's mean yields and a recombination-fluctuation
width per recoil type on a grid of energies (`calibration_table`, printed by
experiments/tpc_nest_calibration.py); the tests compare it with NEST, and
`band_comparison` puts NEST quanta and toy quanta through the same toy detector to compare
the ER and NR bands in log10(S2/S1). Needs the `physics` extra (nestpy 2.1.3, NEST 2.4).
"""

from __future__ import annotations

import itertools
from types import ModuleType
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from jaxws.simulate.tpc import TPCParams

DRIFT_FIELD_V_PER_CM = 200.0  # the seed's field
DENSITY_G_PER_CM3 = 2.9
CALIBRATION_ENERGIES_KEV = (0.5, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 70, 100, 150, 200)
WORK_FUNCTION_KEV = 13.7e-3


def _nest():
    import nestpy  # the physics extra

    return nestpy, nestpy.NESTcalc(nestpy.detectors.VDetector())


def _interaction(nestpy: ModuleType, recoil: str):
    return {"er": nestpy.interactions.beta, "nr": nestpy.interactions.NR}[recoil]


def mean_yields(recoil: str, energies_kev: ArrayLike) -> dict[str, np.ndarray]:
    """NEST mean photon and electron yields (quanta per keV) at the drift field.

    Args:
        recoil: "er" (electron recoil, NEST's beta) or "nr" (nuclear recoil).
        energies_kev: recoil energies in keV.

    Returns:
        dict with photons_per_kev and electrons_per_kev, one value per energy.
    """
    nestpy, calc = _nest()
    photons, electrons = [], []
    for energy in np.asarray(energies_kev, np.float64):
        y = calc.GetYields(
            interaction=_interaction(nestpy, recoil),
            energy=float(energy),
            density=DENSITY_G_PER_CM3,
            drift_field=DRIFT_FIELD_V_PER_CM,
        )
        photons.append(y.PhotonYield / energy)
        electrons.append(y.ElectronYield / energy)
    return {"photons_per_kev": np.asarray(photons), "electrons_per_kev": np.asarray(electrons)}


def sample_quanta(
    recoil: str, energies_kev: ArrayLike, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """NEST photons and electrons (with NEST's fluctuations) for each energy.

    Args:
        recoil: "er" or "nr".
        energies_kev: recoil energies in keV.
        seed: seed of NEST's global random generator (set before sampling).

    Returns:
        (photons, electrons) as float64 arrays, one value per energy.
    """
    nestpy, calc = _nest()
    nestpy.RandomGen.rndm().set_seed(seed)
    photons, electrons = [], []
    for energy in np.asarray(energies_kev, np.float64):
        y = calc.GetYields(
            interaction=_interaction(nestpy, recoil),
            energy=float(energy),
            density=DENSITY_G_PER_CM3,
            drift_field=DRIFT_FIELD_V_PER_CM,
        )
        q = calc.GetQuanta(y, DENSITY_G_PER_CM3)
        photons.append(q.photons)
        electrons.append(q.electrons)
    return np.asarray(photons, np.float64), np.asarray(electrons, np.float64)


def calibration_table(n_samples: int = 3000, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per recoil type: energies, mean quanta per keV, charge fraction and recombination sigma."""
    table = {}
    energies = np.asarray(CALIBRATION_ENERGIES_KEV, np.float64)
    for recoil in ("er", "nr"):
        means = mean_yields(recoil, energies)
        quanta = means["photons_per_kev"] + means["electrons_per_kev"]
        fraction = means["electrons_per_kev"] / quanta
        sigma = []
        for energy, per_kev, f_e in zip(energies, quanta, fraction, strict=True):
            _, electrons = sample_quanta(recoil, np.full(n_samples, energy), seed)
            n_q = per_kev * energy
            excess = np.var(electrons) - n_q * f_e
            sigma.append(np.sqrt(max(excess, 0.0) / (n_q * (n_q + 1.0))))
        table[recoil] = {
            "energy_kev": energies,
            "quanta_per_kev": quanta,
            "charge_fraction": fraction,
            "recombination_sigma": np.asarray(sigma),
        }
    return table


def band_comparison(
    params: TPCParams, sensors: jax.Array, n_events: int = 20000, seed: int = 0
) -> dict[str, dict]:
    """ER and NR bands in log10(S2/S1) from NEST quanta and from the toy, same toy detector.

    ER and NR energies flat on [energy_min, energy_max]; NEST's photons and electrons (or the
    toy's) go through `tpc.detect` (S1, S2, thresholds). Per source: the NR band median, the
    separation of the ER and NR medians in S1 bins, and the ER leakage below the NR median
    (50% NR acceptance).

    Args:
      params: toy detector numbers (energy range, thresholds, gains).
      sensors: (S, 2) sensor centres in cm.
      n_events: recoils per type.
      seed: seed of the energies, of NEST and of the toy's keys.

    Returns:
      {"nest": summary, "toy": summary}, each with s1_bins, separation (decades per bin),
      leakage (per bin) and leakage_total.
    """
    from jaxws.simulate import tpc

    rng = np.random.default_rng(seed)
    low, high = float(params.energy_min), float(params.energy_max)
    energies = {r: rng.uniform(low, high, n_events) for r in ("er", "nr")}
    bins = np.array([3.0, 10.0, 30.0, 100.0, 300.0])
    out = {}
    for source in ("nest", "toy"):
        bands = {}
        for k, recoil in enumerate(("er", "nr")):
            key = jax.random.key(seed + 10 * k + (source == "toy"))
            energy = jnp.asarray(energies[recoil], jnp.float32)
            types = jnp.full(n_events, int(recoil == "nr"), jnp.int32)
            if source == "nest":
                photons, electrons = sample_quanta(recoil, energies[recoil], seed + k)
                photons = jnp.asarray(photons, jnp.float32)
                electrons = jnp.asarray(electrons, jnp.float32)
            else:
                quanta_key, key = jax.random.split(key)
                photons, electrons = tpc.quanta(quanta_key, energy, types, params)
            events = tpc.detect(key, energy, types, photons, electrons, sensors, params)
            events = tpc.select_detected(events)
            bands[recoil] = (
                events["s1"],
                np.log10(np.maximum(events["s2"], 1.0) / np.maximum(events["s1"], 1e-3)),
            )
        separation, leakage = [], []
        er_s1, er_band = bands["er"]
        nr_s1, nr_band = bands["nr"]
        for lo, hi in itertools.pairwise(bins):
            er = er_band[(er_s1 >= lo) & (er_s1 < hi)]
            nr = nr_band[(nr_s1 >= lo) & (nr_s1 < hi)]
            nr_median = np.median(nr)
            separation.append(float(np.median(er) - nr_median))
            leakage.append(float(np.mean(er < nr_median)))
        # Overall: an S1-dependent cut at the NR median of each bin.
        in_range = (er_s1 >= bins[0]) & (er_s1 < bins[-1])
        which = np.clip(np.digitize(er_s1, bins) - 1, 0, len(bins) - 2)
        medians = np.array(
            [
                np.median(nr_band[(nr_s1 >= lo) & (nr_s1 < hi)])
                for lo, hi in itertools.pairwise(bins)
            ]
        )
        total = float(np.mean(er_band[in_range] < medians[which[in_range]]))
        out[source] = {
            "s1_bins": bins.tolist(),
            "separation": separation,
            "leakage": leakage,
            "leakage_total": total,
        }
    return out
