"""Evaluation of a trained ensemble on the study's pure SR test sets: one `StudyResult`.

Per member: the test-set scores, ROC AUC, signal efficiency at each background-efficiency
working point, initial significance (eq. 2 or 8 before any cut) and final significance at each
working point and at the best one; members whose training diverged are flagged, not dropped.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.injection_study.inputs import StudyInputs
from jaxws.stats import roc, significance
from jaxws.train import FitResult, predict_ensemble

if TYPE_CHECKING:
    import flax.linen as nn

#: A member whose best validation loss stays above this never beat predicting one half for
#: every event (binary cross-entropy ln 2 nats, about what a fresh initialisation scores), by
#: half again: it never improved on its initial validation loss, which the engine does not record.
DIVERGED_LOSS = 1.5 * float(np.log(2.0))


def diverged_members(fit: FitResult, max_loss: float = DIVERGED_LOSS) -> list[str]:
    """Why each member of an ensemble fit is unusable ('' for a healthy member).

    A member is flagged when a training or validation loss of an epoch it ran is NaN or inf,
    when no epoch had a finite validation loss (the engine then keeps its initial weights,
    best epoch -1), or when its best validation loss stays above `max_loss` (see
    `DIVERGED_LOSS`). Derived from the engine's `FitResult` alone.

    Args:
      fit: a `FitResult` with a leading member axis (train_loss, val_loss: (E, max_epochs),
        NaN after a member stopped; best_epoch, best_val_loss, epochs: (E,)).
      max_loss: best validation loss above which a member counts as never improved.

    Returns:
      One reason string per member.
    """
    train = np.asarray(fit.train_loss, float).reshape(len(np.asarray(fit.epochs)), -1)
    val = np.asarray(fit.val_loss, float).reshape(train.shape)
    ran = np.arange(train.shape[1])[None, :] < np.asarray(fit.epochs)[:, None]
    bad = ran & ~(np.isfinite(train) & np.isfinite(val))
    best_epoch = np.asarray(fit.best_epoch)
    best_loss = np.asarray(fit.best_val_loss, float)
    reasons = []
    for member in range(len(train)):
        if bad[member].any():
            epoch = int(np.argmax(bad[member]))
            reasons.append(f"loss not finite from epoch {epoch}")
        elif best_epoch[member] < 0 or not np.isfinite(best_loss[member]):
            reasons.append("no finite validation loss; initial weights kept")
        elif best_loss[member] > max_loss:
            reasons.append(
                f"never improved: best validation loss {best_loss[member]:.3g} > {max_loss:.3g}"
            )
        else:
            reasons.append("")
    return reasons


@dataclasses.dataclass
class StudyResult:
    """Per-member evaluation (leading axis E = injections x pseudo-experiments).

    `diverged` holds, per member, why it is unusable ('' if it is fine, see
    `diverged_members`); flagged members are kept in the per-member tables but left out of
    every mean, spread and discovery estimate, with their number stated.
    """

    injection: np.ndarray
    experiment: np.ndarray
    initial_z: np.ndarray
    auc: np.ndarray
    background_efficiencies: np.ndarray
    signal_efficiencies: np.ndarray  # (E, K)
    final_z: np.ndarray  # (E, K)
    best_z: np.ndarray  # (E,)
    epochs: np.ndarray
    sculpting: Any = None  # jaxws.methods.sculpting.Sculpting of the no-signal members
    diverged: list[str] = dataclasses.field(default_factory=list)

    def usable(self) -> np.ndarray:
        """(E,) True for members that did not diverge."""
        if not self.diverged:
            return np.ones(len(self.injection), bool)
        return np.array([not reason for reason in self.diverged])


def evaluate(
    inputs: StudyInputs,
    model: nn.Module,
    variables: dict,
    epochs: np.ndarray | None = None,
    fit: FitResult | None = None,
) -> StudyResult:
    """Score the pure SR test sets with every member and compute efficiencies and significances.

    Args:
      inputs: the study inputs.
      model: the flax module the variables belong to.
      variables: model variables with a leading member axis E.
      epochs: (E,) epochs each member trained (for the record).
      fit: the engine's `FitResult`, if any: its losses flag diverged members.
    """
    experiments, study = inputs.experiments, inputs.study
    n_members = len(experiments.injection)
    chunk = inputs.training.chunk_size

    def score(members: np.ndarray, images: np.ndarray) -> np.ndarray:
        images = jnp.asarray(images)
        return np.concatenate(
            [
                np.asarray(
                    predict_ensemble(
                        model,
                        jax.tree.map(lambda a, m=members[s : s + chunk]: a[m], variables),
                        images,
                        inputs.training.eval_batch_size,
                    )
                )
                for s in range(0, len(members), chunk)
            ]
        )

    scores = score(np.arange(n_members), inputs.images[experiments.test_index])
    sculpted = None
    no_signal = np.flatnonzero(experiments.injection == 0)
    if len(no_signal) and inputs.background_mjj is not None:
        from jaxws.methods.sculpting import sculpting_check

        n_background = len(inputs.background_mjj)
        members = experiments.members
        usable = np.ones((len(no_signal), n_background), bool)
        for row, member in enumerate(no_signal):
            for index, weight in (
                (members.train_index[member], members.train_weight[member]),
                (members.val_index[member], members.val_weight[member]),
            ):
                seen = np.asarray(index)[np.asarray(weight) > 0]
                usable[row, seen[seen < n_background]] = False
        sculpted = sculpting_check(
            score(no_signal, inputs.images[:n_background]),
            inputs.background_mjj,
            inputs.background_region,
            usable=usable,
        )
    labels = experiments.test_label
    eps_b = np.asarray(study.background_efficiencies, float)
    eps_s = np.empty((n_members, len(eps_b)))
    auc = np.empty(n_members)
    for member in range(n_members):
        curve = roc.roc_curve(scores[member], labels)
        auc[member] = roc.area_under_curve(curve)
        eps_s[member] = [roc.signal_efficiency_at(curve, e) for e in eps_b]
    injection = experiments.injection.astype(float)
    working = significance.significance_at_working_points(
        injection,
        float(experiments.n_background_sr),
        eps_s,
        eps_b,
        relative_uncertainty=study.relative_uncertainty,
    )
    initial = significance.initial_significance(
        injection,
        float(experiments.n_background_sr),
        relative_uncertainty=study.relative_uncertainty,
    )
    return StudyResult(
        injection=experiments.injection,
        experiment=experiments.experiment,
        initial_z=np.asarray(initial),
        auc=auc,
        background_efficiencies=eps_b,
        signal_efficiencies=eps_s,
        final_z=np.asarray(working.significance),
        best_z=np.asarray(working.best_significance),
        epochs=np.zeros(n_members, int) if epochs is None else np.asarray(epochs),
        sculpting=sculpted,
        diverged=[""] * n_members if fit is None else diverged_members(fit),
    )
