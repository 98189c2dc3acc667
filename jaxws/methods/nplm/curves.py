"""Learning curves of NPLM fits, logged from the host after the compiled training loop.

The NPLM fits (D'Agnolo & Wulzer, arXiv:1806.02350) record ``t = -2 L`` at the recorded epochs
(``method.checkpoints`` and the last epoch) inside the compiled ``lax.scan``; nothing is logged
from inside it. After the toys are trained, :func:`log_toy_curves` turns their t histories into

- one metrics line per recorded epoch (``metrics.jsonl``, and W&B): ``<name>/epoch``, the
  median, mean, 16% and 84% quantiles, smallest and largest t over the toys, and how many toys
  there are, so that a sweep view shows whether t has reached its plateau or drifts;
- a table ``t_curves_<name>.csv`` (and a W&B table) with one row per toy and recorded epoch:
  toy, epoch, t;
- ``<name>/fit_seconds`` when given.

:func:`log_observed_curve` logs the observed fit's training curve: per recorded epoch
``<name>/epoch``, ``<name>/t`` and the training loss ``<name>/loss = -t / 2`` (the summed
weighted NPLM loss; for the symmetrized test the sum of the A and B fits' losses). The
sibling of :func:`jaxws.track.curves.log_learning_curves` (CWoLa's per-epoch losses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def toy_curve_summaries(
    checkpoints: Sequence[int], t_history: np.ndarray, name: str
) -> list[dict[str, Any]]:
    """Per recorded epoch, statistics of t over the toys (see the module docstring).

    Args:
        checkpoints: the recorded epochs (ascending).
        t_history: (n_toys, n_checkpoints) t values.
        name: prefix of the metric names.

    Returns:
        One dict per recorded epoch.
    """
    t_history = np.asarray(t_history, np.float64).reshape(-1, len(checkpoints))
    lines = []
    for column, epoch in enumerate(checkpoints):
        t = t_history[:, column]
        lines.append(
            {
                f"{name}/epoch": int(epoch),
                f"{name}/n_toys": int(t.size),
                f"{name}/t_median": float(np.median(t)),
                f"{name}/t_mean": float(np.mean(t)),
                f"{name}/t_q16": float(np.quantile(t, 0.16)),
                f"{name}/t_q84": float(np.quantile(t, 0.84)),
                f"{name}/t_min": float(np.min(t)),
                f"{name}/t_max": float(np.max(t)),
            }
        )
    return lines


def toy_curve_rows(checkpoints: Sequence[int], t_history: np.ndarray) -> list[dict[str, Any]]:
    """One row per toy and recorded epoch: toy, epoch, t."""
    t_history = np.asarray(t_history, np.float64).reshape(-1, len(checkpoints))
    return [
        {"toy": toy, "epoch": int(epoch), "t": float(t_history[toy, column])}
        for toy in range(len(t_history))
        for column, epoch in enumerate(checkpoints)
    ]


def log_toy_curves(
    tracker: Any,
    name: str,
    checkpoints: Sequence[int],
    t_history: np.ndarray,
    fit_seconds: float | None = None,
) -> None:
    """Log the t-against-epochs curves of trained toys under ``name``.

    Args:
        tracker: ``jaxws.track.Tracker``-like (``log_metrics``, ``save_table``).
        name: prefix, e.g. ``nplm_null``.
        checkpoints: the recorded epochs.
        t_history: (n_toys, n_checkpoints) t values.
        fit_seconds: wall time of the toys' training, if measured.
    """
    for line in toy_curve_summaries(checkpoints, t_history, name):
        tracker.log_metrics(line)
    rows = toy_curve_rows(checkpoints, t_history)
    if rows:
        tracker.save_table(f"t_curves_{name}", rows)
    if fit_seconds is not None:
        tracker.log_metrics({f"{name}/fit_seconds": float(fit_seconds)})


def observed_curve(
    checkpoints: Sequence[int], t_history: Sequence[float], name: str
) -> list[dict[str, Any]]:
    """Per recorded epoch of the observed fit: epoch, t and the training loss ``-t / 2``."""
    return [
        {f"{name}/epoch": int(epoch), f"{name}/t": float(t), f"{name}/loss": -0.5 * float(t)}
        for epoch, t in zip(checkpoints, np.asarray(t_history, np.float64), strict=True)
    ]


def log_observed_curve(
    tracker: Any, name: str, checkpoints: Sequence[int], t_history: Sequence[float]
) -> None:
    """Log the observed fit's training curve (one metrics line per recorded epoch).

    Args:
        tracker: ``jaxws.track.Tracker``-like (``log_metrics``).
        name: prefix, e.g. ``observed_curve``.
        checkpoints: the recorded epochs.
        t_history: t of the observed fit at each of them.
    """
    for line in observed_curve(checkpoints, t_history, name):
        tracker.log_metrics(line)
