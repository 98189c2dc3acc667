"""Weighted ROC curves, AUC, SIC and signal efficiency at fixed background efficiency.

Used to read the signal efficiency eps_s at chosen background efficiencies eps_b off the test
ROC curve, as in Sec. 3 of the CWoLa transfer/meta paper (../shared/seeds/001), and for SIC
curves (eps_s / sqrt(eps_b), the factor by which a cut multiplies N_s / sqrt(N_b)).

Conventions:

* Scores: higher = more signal-like. A cut at threshold t keeps events with score >= t.
* eps_s (true positive rate) and eps_b (false positive rate) are weighted fractions of the
  signal (label 1) and background (label 0) weight that pass. Weights are >= 0; weight-0
  events (padding) change nothing.
* Ties: events with equal scores pass or fail together, so one ROC point per distinct score.
  The ROC curve is the piecewise-linear path through these points from (0, 0) to (1, 1); a
  straight segment between two points is reached by a randomised cut, so it is achievable.
  With ties it is the diagonal piece that makes the trapezoid AUC equal to the Mann-Whitney
  P(score_s > score_b) + 1/2 P(score_s = score_b).
* eps_s at a given eps_b: linear interpolation along that path; where the path is vertical
  (several points share eps_b), the largest eps_s (the best cut with that eps_b).

The NumPy functions validate their inputs; `batched_signal_efficiency_and_auc` is the jitted
JAX version over a leading pseudo-experiment axis (fixed shapes: ragged sets are padded with
weight 0). On CPU the NumPy functions in a loop are faster; the JAX one is for accelerators
and for use inside jitted code.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike as JaxArrayLike
from numpy.typing import ArrayLike


@dataclasses.dataclass(frozen=True)
class RocCurve:
    """ROC points, one per distinct score plus the (0, 0) start.

    Attributes:
        background_efficiency: eps_b, shape (M,), non-decreasing from 0 to 1.
        signal_efficiency: eps_s, shape (M,), non-decreasing from 0 to 1.
        thresholds: cut (score >= threshold) of each point, decreasing; +inf for (0, 0).
    """

    background_efficiency: np.ndarray
    signal_efficiency: np.ndarray
    thresholds: np.ndarray


@dataclasses.dataclass(frozen=True)
class SicCurve:
    """Significance improvement characteristic eps_s / sqrt(eps_b) on the ROC points.

    Attributes:
        background_efficiency: eps_b of the kept points (all > the minimum asked for).
        signal_efficiency: eps_s of the kept points.
        sic: eps_s / sqrt(eps_b).
    """

    background_efficiency: np.ndarray
    signal_efficiency: np.ndarray
    sic: np.ndarray


def _check_inputs(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"scores and labels must be 1-d of equal length, got {scores.shape} and {labels.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"labels must be 0 (background) or 1 (signal), got {np.unique(labels)}")
    if weights is None:
        weights = np.ones_like(scores)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != scores.shape:
        raise ValueError(
            f"weights must have the shape of scores {scores.shape}, got {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and >= 0")
    labels = labels.astype(bool)
    for name, mask in (("signal", labels), ("background", ~labels)):
        if not weights[mask].sum() > 0:
            raise ValueError(f"the {name} class has zero total weight; its efficiency is undefined")
    return scores, labels, weights


def roc_curve(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> RocCurve:
    """Weighted ROC curve over all distinct thresholds.

    Args:
        scores: classifier outputs, shape (N,); higher = more signal-like.
        labels: truth, 1 signal / 0 background, shape (N,).
        weights: event weights >= 0, shape (N,); default 1.

    Returns:
        A RocCurve from (0, 0) (threshold +inf) to (1, 1) (threshold = min score).

    Raises:
        ValueError: if the shapes differ, a score or weight is not finite, a label is not 0
            or 1, a weight is negative, or a class has zero total weight.
    """
    scores, labels, weights = _check_inputs(scores, labels, weights)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    signal_weight = np.cumsum(np.where(labels[order], weights[order], 0.0))
    background_weight = np.cumsum(np.where(labels[order], 0.0, weights[order]))
    # Last index of each run of equal scores: the point where the whole tie has passed.
    group_end = np.flatnonzero(np.append(np.diff(sorted_scores) != 0, True))
    eps_s = np.concatenate([[0.0], signal_weight[group_end] / signal_weight[-1]])
    eps_b = np.concatenate([[0.0], background_weight[group_end] / background_weight[-1]])
    thresholds = np.concatenate([[np.inf], sorted_scores[group_end]])
    return RocCurve(background_efficiency=eps_b, signal_efficiency=eps_s, thresholds=thresholds)


def _trapezoid(x: np.ndarray | jax.Array, y: np.ndarray | jax.Array, xp: ModuleType):
    return xp.sum((x[..., 1:] - x[..., :-1]) * (y[..., 1:] + y[..., :-1]), axis=-1) / 2


def area_under_curve(curve: RocCurve) -> float:
    """Trapezoid area under the ROC path: P(s > b) + P(s = b) / 2 for weighted events."""
    return float(_trapezoid(curve.background_efficiency, curve.signal_efficiency, np))


def auc(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Weighted ROC AUC: P(score_s > score_b) + P(score_s = score_b) / 2 (0.5 = no separation)."""
    return area_under_curve(roc_curve(scores, labels, weights))


def auc_of_samples(signal: ArrayLike, background: ArrayLike) -> float:
    """`auc` of two unweighted score samples: signal (label 1) against background (label 0)."""
    signal, background = np.ravel(signal), np.ravel(background)
    labels = np.concatenate([np.ones(len(signal)), np.zeros(len(background))])
    return auc(np.concatenate([signal, background]), labels)


def _interpolate_path(
    x: np.ndarray | jax.Array,
    y: np.ndarray | jax.Array,
    queries: np.ndarray | jax.Array,
    xp: ModuleType,
):
    """Value of y on the path through (x, y) (both non-decreasing) at x = queries.

    Where the path is vertical (several points share x), the largest y.
    """
    last = x.shape[-1] - 1
    # Few queries against many points: JAX's compare_all compiles faster than its default.
    options = {} if xp is np else {"method": "compare_all"}
    upper = xp.clip(xp.searchsorted(x, queries, side="left", **options), 1, last)
    lower = upper - 1
    at_point = xp.searchsorted(x, queries, side="right", **options) - 1  # last x <= query
    exact = x[xp.clip(at_point, 0, last)] == queries
    width = x[upper] - x[lower]
    fraction = (queries - x[lower]) / xp.where(width > 0, width, 1.0)
    between = y[lower] + fraction * (y[upper] - y[lower])
    return xp.where(exact, y[xp.clip(at_point, 0, last)], between)


def _check_efficiencies(values: ArrayLike, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if np.any(~(values >= 0) | ~(values <= 1)):
        raise ValueError(f"{name} must be in [0, 1], got {values}")
    return values


def signal_efficiency_at(curve: RocCurve, background_efficiencies: ArrayLike) -> np.ndarray:
    """eps_s at given eps_b, linearly interpolated along the ROC path (see module docstring).

    Args:
        curve: a RocCurve.
        background_efficiencies: eps_b values in [0, 1], any shape.

    Returns:
        eps_s with the shape of background_efficiencies.
    """
    queries = _check_efficiencies(background_efficiencies, "background_efficiencies")
    return _interpolate_path(curve.background_efficiency, curve.signal_efficiency, queries, np)


def significance_improvement(
    curve: RocCurve, *, min_background_efficiency: float = 0.0
) -> SicCurve:
    """SIC = eps_s / sqrt(eps_b) on the ROC points with eps_b > min_background_efficiency.

    At small eps_b the SIC is dominated by a handful of background events; pass e.g.
    min_background_efficiency = 10 / (number of test background events) to cut that off.

    Args:
        curve: a RocCurve.
        min_background_efficiency: keep points with eps_b strictly above this (>= 0).

    Returns:
        A SicCurve.
    """
    if not min_background_efficiency >= 0:
        raise ValueError(f"min_background_efficiency must be >= 0, got {min_background_efficiency}")
    keep = curve.background_efficiency > min_background_efficiency
    eps_b = curve.background_efficiency[keep]
    eps_s = curve.signal_efficiency[keep]
    return SicCurve(
        background_efficiency=eps_b, signal_efficiency=eps_s, sic=eps_s / np.sqrt(eps_b)
    )


def _roc_path(scores: jax.Array, labels: jax.Array, weights: jax.Array):
    """Fixed-shape ROC path (N + 1 points, repeated points allowed) for one experiment (JAX)."""
    order = jnp.argsort(-scores, stable=True)
    descending = scores[order]
    is_signal = labels[order].astype(bool)
    weights = weights[order]
    is_new_score = jnp.append(True, descending[1:] != descending[:-1])
    # One cumulative sum for all three running totals (each such op costs compile time).
    totals = jnp.cumsum(
        jnp.stack(
            [
                jnp.where(is_signal, 0.0, weights),
                jnp.where(is_signal, weights, 0.0),
                is_new_score.astype(weights.dtype),
            ]
        ),
        axis=-1,
    )
    # Every member of a tie takes the values at the end of its tie (the last index of its
    # group), so that a tie passes as a whole.
    group = totals[2].astype(jnp.int32) - 1
    index = jnp.arange(descending.shape[-1])
    group_end = jnp.zeros_like(index).at[group].max(index)[group]
    zero = jnp.zeros((1,), weights.dtype)
    eps_b = jnp.concatenate([zero, totals[0, group_end] / totals[0, -1]])
    eps_s = jnp.concatenate([zero, totals[1, group_end] / totals[1, -1]])
    return eps_b, eps_s


def _efficiency_and_auc_single(
    scores: jax.Array, labels: jax.Array, weights: jax.Array, queries: jax.Array
):
    eps_b, eps_s = _roc_path(scores, labels, weights)
    return _interpolate_path(eps_b, eps_s, queries, jnp), _trapezoid(eps_b, eps_s, jnp)


_batched_efficiency_and_auc = jax.jit(jax.vmap(_efficiency_and_auc_single, in_axes=(0, 0, 0, None)))


def _batched_inputs(scores: JaxArrayLike, labels: JaxArrayLike, weights: JaxArrayLike | None):
    scores = jnp.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (experiments, events), got {scores.shape}")
    labels = jnp.asarray(labels)
    weights = jnp.ones_like(scores) if weights is None else jnp.asarray(weights, scores.dtype)
    if labels.shape != scores.shape or weights.shape != scores.shape:
        raise ValueError(
            f"scores, labels and weights must share a shape, got {scores.shape}, "
            f"{labels.shape}, {weights.shape}"
        )
    return scores, labels, weights


def batched_signal_efficiency_and_auc(
    scores: JaxArrayLike,
    labels: JaxArrayLike,
    weights: JaxArrayLike | None,
    background_efficiencies: ArrayLike,
) -> tuple[jax.Array, jax.Array]:
    """eps_s at given eps_b and the ROC AUC for many pseudo-experiments at once (jit + vmap).

    Same conventions and numbers (up to float32 rounding) as
    `signal_efficiency_at(roc_curve(...), ...)` and `area_under_curve(roc_curve(...))`; one
    compiled function for both, as an evaluation needs both. Each experiment needs positive
    signal and background weight (not checked under jit: the results are NaN otherwise).

    Args:
        scores: shape (E, N); higher = more signal-like.
        labels: shape (E, N), 1 signal / 0 background.
        weights: shape (E, N), >= 0 (0 for padding), or None for all 1.
        background_efficiencies: eps_b working points in [0, 1], shape (K,).

    Returns:
        eps_s of shape (E, K) and AUC of shape (E,).

    Raises:
        ValueError: if the shapes do not match or a working point is outside [0, 1].
    """
    scores, labels, weights = _batched_inputs(scores, labels, weights)
    queries = _check_efficiencies(background_efficiencies, "background_efficiencies")
    if queries.ndim != 1:
        raise ValueError(f"background_efficiencies must be 1-d, got shape {queries.shape}")
    return _batched_efficiency_and_auc(scores, labels, weights, jnp.asarray(queries, scores.dtype))
