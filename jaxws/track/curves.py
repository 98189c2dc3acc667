"""Learning curves of an ensemble fit, logged from the host after the compiled loop.

The engine records every member's training and validation loss per epoch (NaN after the
member stopped) and its stopping and best epochs. `log_learning_curves` turns them into

- one metrics line per epoch (`metrics.jsonl`, and W&B): `<name>/epoch`, the mean, smallest and
  largest validation loss and the mean training loss over the members still training, and how
  many still train, so that a sweep view shows where and why a setting fails;
- a table `learning_curves_<name>.csv` (and a W&B table) with one row per member and epoch
  it ran: member, epoch, train_loss, val_loss;
- scalars `<name>/stop_epoch_mean`, `<name>/stop_epoch_max`, `<name>/best_epoch_mean` and, when
  given, `<name>/fit_seconds`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from jaxws.track.tracker import Tracker


def curve_rows(train_loss: np.ndarray, val_loss: np.ndarray, epochs: np.ndarray) -> list[dict]:
    """One row per member and epoch it ran (epochs beyond a member's stop are left out)."""
    train_loss = np.asarray(train_loss, float).reshape(len(np.atleast_1d(epochs)), -1)
    val_loss = np.asarray(val_loss, float).reshape(train_loss.shape)
    epochs = np.atleast_1d(np.asarray(epochs))
    return [
        {
            "member": m,
            "epoch": t,
            "train_loss": float(train_loss[m, t]),
            "val_loss": float(val_loss[m, t]),
        }
        for m in range(len(epochs))
        for t in range(int(epochs[m]))
    ]


def epoch_summaries(
    train_loss: np.ndarray, val_loss: np.ndarray, epochs: np.ndarray, name: str
) -> list[dict[str, Any]]:
    """Per epoch, statistics over the members that ran it (see module docstring)."""
    train_loss = np.asarray(train_loss, float).reshape(len(np.atleast_1d(epochs)), -1)
    val_loss = np.asarray(val_loss, float).reshape(train_loss.shape)
    epochs = np.atleast_1d(np.asarray(epochs))
    lines = []
    for t in range(int(epochs.max(initial=0))):
        active = epochs > t
        val, train = val_loss[active, t], train_loss[active, t]
        finite = np.isfinite(val)
        lines.append(
            {
                f"{name}/epoch": t,
                f"{name}/members_training": int(active.sum()),
                f"{name}/train_loss_mean": float(np.mean(train)) if finite.all() else None,
                f"{name}/val_loss_mean": float(np.mean(val[finite])) if finite.any() else None,
                f"{name}/val_loss_min": float(np.min(val[finite])) if finite.any() else None,
                f"{name}/val_loss_max": float(np.max(val[finite])) if finite.any() else None,
            }
        )
    return lines


def log_learning_curves(
    tracker: Tracker, name: str, fit: Any, fit_seconds: float | None = None
) -> None:
    """Log an ensemble fit's curves (`FitResult` with a leading member axis) under `name`."""
    epochs = np.atleast_1d(np.asarray(fit.epochs))
    for line in epoch_summaries(fit.train_loss, fit.val_loss, epochs, name):
        tracker.log_metrics({k: v for k, v in line.items() if v is not None})
    rows = curve_rows(fit.train_loss, fit.val_loss, epochs)
    if rows:
        tracker.save_table(f"learning_curves_{name}", rows)
    scalars = {
        f"{name}/stop_epoch_mean": float(epochs.mean()),
        f"{name}/stop_epoch_max": int(epochs.max()),
        f"{name}/best_epoch_mean": float(np.mean(np.asarray(fit.best_epoch))),
    }
    if fit_seconds is not None:
        scalars[f"{name}/fit_seconds"] = float(fit_seconds)
    tracker.log_metrics(scalars)
