"""Learning threshold and signal for discovery from a signal-injection study (arXiv:2312.06152).

The study scans injected signal; at each injection it has the initial significance (eq. 2,
before any cut; the same for every pseudo-experiment) and each pseudo-experiment's final
significance (after the classifier cut). Conventions: Z is the one-sided Asimov significance
of `jaxws.stats.significance`; curves are linear between study points; the learning
threshold is read on the final-vs-initial curve, the signal for discovery on final-vs-injected.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def signal_for_discovery(
    injections: np.ndarray,
    initial_z: ArrayLike,
    final_z_table: np.ndarray,
    target: float = 5.0,
) -> tuple[float, np.ndarray]:
    """Injected SR signal at which the final significance first reaches `target`.

    Linear interpolation in (injection, final Z) between the study points, per
    pseudo-experiment (columns of `final_z_table`) and for the mean curve. NaN where the
    curve never reaches the target within the studied range.

    Args:
        injections: injected signal-region signal at each study point, increasing, shape (P,).
        initial_z: initial significance at each study point, shape (P,) (not used: the
            crossing is read on final Z against injection).
        final_z_table: final significance, shape (P, n_pseudo_experiments).
        target: the significance to reach.

    Returns:
        (signal for the mean curve, per-pseudo-experiment signals (n_pseudo_experiments,)).
    """

    def crossing(z: np.ndarray) -> float:
        above = np.flatnonzero(z >= target)
        if len(above) == 0:
            return np.nan
        k = above[0]
        if k == 0:
            return float(injections[0])
        x0, x1, z0, z1 = injections[k - 1], injections[k], z[k - 1], z[k]
        return float(x0 + (target - z0) * (x1 - x0) / (z1 - z0))

    per_run = np.array([crossing(final_z_table[:, j]) for j in range(final_z_table.shape[1])])
    return crossing(final_z_table.mean(axis=1)), per_run


def learning_threshold(initial_z: np.ndarray, final_z: np.ndarray) -> float:
    """Initial significance at which the final-vs-initial curve crosses the slope-1 line.

    The learning threshold of arXiv:2312.06152 (sec. 3, Fig. 3): below it the classifier cut
    costs significance (final < initial), above it the classifier has learned the signal.
    Taken as the last upward crossing of final - initial through 0, by linear
    interpolation between the study points (in order of increasing initial Z). Returns the
    first point's initial Z if the curve is above the line everywhere, NaN if it never
    ends above it.
    """
    excess = np.asarray(final_z, float) - np.asarray(initial_z, float)
    if excess[-1] < 0:
        return float("nan")
    below = np.flatnonzero(excess < 0)
    if len(below) == 0:
        return float(initial_z[0])
    k = below[-1]
    x0, x1, e0, e1 = initial_z[k], initial_z[k + 1], excess[k], excess[k + 1]
    return float(x0 + (0.0 - e0) * (x1 - x0) / (e1 - e0))


def bootstrap_thresholds(
    injections: np.ndarray,
    initial_z: np.ndarray,
    final_z_table: np.ndarray,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float | str]:
    """Learning threshold and signal for 5 sigma of the mean curve, with bootstrap errors.

    The mean curve is the mean over pseudo-experiments (columns of `final_z_table`) at each
    injection (rows); a bootstrap replicate resamples the pseudo-experiments with replacement
    independently at each injection (they are independent trainings). The quoted
    uncertainties are the standard deviations of the replicates that cross (NaN when fewer
    than half do); the central values come from the observed mean curve.

    Args:
        injections: injected signal-region signal at each study point, increasing, shape (P,).
        initial_z: initial significance at each study point, increasing, shape (P,).
        final_z_table: final significance, shape (P, n_pseudo_experiments); NaN entries are
            left out of the means.
        n_bootstrap: number of bootstrap replicates.
        seed: seed of the NumPy generator that draws the replicates.

    Returns:
        threshold_kind ("crossing", "below range" or "not reached"), threshold_z,
        threshold_z_std, signal_for_5sigma, signal_for_5sigma_std and the fraction of
        replicates in which each is defined (threshold_defined, signal_defined).
    """
    rng = np.random.default_rng(seed)
    n_points, n_runs = final_z_table.shape
    mean = np.nanmean(final_z_table, axis=1)
    thresholds, signals = np.empty(n_bootstrap), np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        pick = rng.integers(0, n_runs, size=(n_points, n_runs))
        with np.errstate(invalid="ignore"):
            curve = np.nanmean(np.take_along_axis(final_z_table, pick, axis=1), axis=1)
        thresholds[b] = learning_threshold(initial_z, curve)
        signals[b] = signal_for_discovery(injections, initial_z, curve[:, None])[0]

    def spread(values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        return float(finite.std(ddof=1)) if len(finite) >= max(2, n_bootstrap // 2) else np.nan

    excess = mean - np.asarray(initial_z, float)
    if excess[-1] < 0:
        kind = "not reached"  # below the line at the largest injection: threshold above range
    elif np.all(excess >= 0):
        kind = "below range"  # above the line everywhere: threshold_z is an upper bound
    else:
        kind = "crossing"
    return {
        "threshold_kind": kind,
        "threshold_z": learning_threshold(initial_z, mean),
        "threshold_z_std": spread(thresholds),
        "signal_for_5sigma": signal_for_discovery(injections, initial_z, mean[:, None])[0],
        "signal_for_5sigma_std": spread(signals),
        "threshold_defined": float(np.isfinite(thresholds).mean()),
        "signal_defined": float(np.isfinite(signals).mean()),
    }
