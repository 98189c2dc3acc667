"""The event samples of the anomaly-aware method, simulated in the toy TPC, and their features.

Every sample comes from `jaxws.simulate.tpc` with its own key (`fold_in` of the method's data
key): a background training sample (VAE, ER class of the classifier), the reference sample of
f_0, the toy bank (many data sets' worth of fresh background, disjoint from f_0's sample), a
flat-spectrum NR sample (the classifier's NR class, so it does not know the WIMP mass), one
WIMP sample per benchmark mass, and background-only data sets for the null check.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.rng import numpy_generator
from jaxws.simulate import tpc


def _background_law(
    data: tpc.TPCConfig,
) -> tuple[tpc.TPCParams, np.ndarray, float, tpc.RecoilSpectrum]:
    """(detector params, sensor grid, NR fraction, NR spectrum) of the background."""
    params = data.params()
    sensors = tpc.sensor_grid_for(params, data.sensor_rings)
    nr_fraction, nr_spectrum = tpc.background_nr_law(data)
    return params, sensors, nr_fraction, nr_spectrum


def simulate_samples(key: jax.Array, data: tpc.TPCConfig, masses: tuple[float, ...]) -> dict:
    """Detected events of every sample the method needs (host numpy dicts).

    Args:
      key: PRNG key of the data (sample i uses `fold_in(key, i)`).
      data: the TPC config (sample sizes, detector).
      masses: WIMP masses of the benchmarks (GeV).

    Returns:
      dict with background_train (VAE, ER class of the classifier), background_null (the
      reference sample of f_0), background_bank (the scores the null toys draw from),
      signal_train (flat NR spectrum), benchmarks (list, one WIMP sample per mass, all cut
      to the same length) and signal_efficiency (detected fraction per benchmark). Sizes are
      counts before the thresholds.
    """
    params, sensors, nr_fraction, nr_spectrum = _background_law(data)

    def sample(index: int, n: int, nr_fraction: float, spectrum: tpc.RecoilSpectrum) -> dict:
        return tpc.simulate_detected(
            jax.random.fold_in(key, index), n, params, sensors, nr_fraction, spectrum
        )

    background = (nr_fraction, nr_spectrum)
    samples = {
        "background_train": sample(0, data.n_background_train, *background),
        "background_null": sample(1, data.n_background_null, *background),
        "background_bank": sample(3, data.n_background_bank, *background),
        "signal_train": sample(2, data.n_signal_train, 1.0, tpc.flat_spectrum(params)),
    }
    benchmarks = [
        sample(10 + j, data.n_signal_benchmark, 1.0, tpc.wimp_spectrum(mass, params))
        for j, mass in enumerate(masses)
    ]
    samples["signal_efficiency"] = [len(b["s1"]) / data.n_signal_benchmark for b in benchmarks]
    shortest = min(len(b["s1"]) for b in benchmarks)
    samples["benchmarks"] = [{k: v[:shortest] for k, v in b.items()} for b in benchmarks]
    return samples


def fresh_background_sets(
    key: jax.Array, data: tpc.TPCConfig, expected_background: float, n_sets: int
) -> tuple[dict, np.ndarray]:
    """`n_sets` background-only data sets simulated afresh: N_k ~ Poisson(B) detected events.

    Args:
      key: PRNG key.
      data: the TPC config.
      expected_background: B.
      n_sets: number of data sets.

    Returns:
      (events, counts): one concatenated event dict holding the sets one after the other, and
      the (n_sets,) counts N_k.
    """
    count_key, event_key = jax.random.split(key)
    rng = numpy_generator(count_key)
    counts = rng.poisson(expected_background, n_sets)
    params, sensors, nr_fraction, nr_spectrum = _background_law(data)
    events = tpc.simulate_detected_count(
        event_key, int(counts.sum()), params, sensors, nr_fraction, nr_spectrum
    )
    return events, counts


@dataclasses.dataclass(frozen=True)
class Standardiser:
    """Per-feature standardisation fitted on the background training sample."""

    mean: np.ndarray
    scale: np.ndarray

    @staticmethod
    def fit(x: np.ndarray) -> Standardiser:
        """Mean and standard deviation (1 where it is 0) of each feature of x (N, d)."""
        scale = x.std(axis=0)
        return Standardiser(x.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 features (x - mean) / scale."""
        return ((x - self.mean) / self.scale).astype(np.float32)


def features_of(events: dict, standardise: Standardiser | None = None) -> np.ndarray:
    """Network input of events (`jaxws.simulate.tpc.event_features`), checked finite.

    Args:
      events: detected events (host or device arrays).
      standardise: the standardisation to apply, or None for raw features.

    Returns:
      (N, d) features.

    Raises:
      ValueError: NaN/inf features (with their count).
    """
    x = np.asarray(tpc.event_features({k: jnp.asarray(v) for k, v in events.items()}))
    if not np.all(np.isfinite(x)):
        raise ValueError(f"TPC features contain {int(np.sum(~np.isfinite(x)))} NaN/inf values")
    return x if standardise is None else standardise(x)
