"""CWoLa hunting: a weakly supervised bump hunt that runs on data.

Collins, Howe, Nachman, PRL 121 (2018) 241803 and PRD 99 (2019) 014038; ATLAS, PRL 125 (2020)
131801. The dijet spectrum is binned (`windows.HuntLayout`); in each sliding window a
classifier learns SR against SB with k-fold scoring (`kfold`: every event is scored by models
that never saw it; windows x folds x seeds are one ensemble of the engine); the most
signal-like events are kept at fixed efficiencies, the selected spectrum is fitted outside the
SR with the dijet function and the SR tested against the fit (`search`, `jaxws.stats.
dijet_fit`); the global p-value comes from toys drawn from the background-only fits.

`hunt(...)` runs the whole chain on arrays (features, mjj); `jaxws.methods.hunt.experiment`
is the `experiment=hunt` entry point on the simulator.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxws.methods.hunt.kfold import (
    FoldPlan,
    MemberScores,
    aggregate_scores,
    assign_folds,
    neural_member_scores,
    plan_folds,
    score_events,
)
from jaxws.methods.hunt.search import (
    DEFAULT_EFFICIENCIES,
    HuntResult,
    search,
    selected_spectra,
    truth_significance,
)
from jaxws.methods.hunt.windows import HuntLayout
from jaxws.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class HuntOutput:
    """Scores, selections and the search result of `hunt`."""

    scores: np.ndarray  # (n_windows, N), NaN outside a window
    thresholds: np.ndarray  # (n_windows, n_eff)
    result: HuntResult
    plan: FoldPlan
    epochs: np.ndarray  # (E,) epochs each member trained


def hunt(
    key: jax.Array,
    features: np.ndarray,
    mjj: np.ndarray,
    layout: HuntLayout,
    *,
    model: object | None = None,
    train_config: TrainConfig | None = None,
    learning_rate: float | None = None,
    member_scores: MemberScores | None = None,
    k_folds: int = 5,
    n_seeds: int = 1,
    validation_fraction: float = 0.2,
    efficiencies: tuple[float, ...] = DEFAULT_EFFICIENCIES,
    n_params: int | str = 3,
    n_toys: int = 1000,
    seed: int = 0,
    chunk_size: int | None = None,
    checkpoint_dir: str | None = None,
    progress: bool | str = False,
) -> HuntOutput:
    """The search on one data set: k-fold scoring, selections, fits, local and global p.

    Args:
        key: typed key for the members' initialisation and training.
        features: (N, ...) classifier inputs (must not carry mjj, or the fit flags sculpting).
        mjj: (N,) GeV.
        layout: bins and windows.
        model: flax module, `__call__(x, train)` -> one logit per event, trained from scratch
            by the engine (the CWoLa classifier); with `train_config` and `learning_rate`.
        train_config: the engine's settings.
        learning_rate: every member's learning rate.
        member_scores: instead of `model`: any classifier, `(key, features, plan) ->
            (probabilities (E, M), epochs (E,))` that trains member e on `plan.members[e]` only
            and scores `plan.score_index[e]` (`jaxws.methods.hunt.classifiers`: boosted trees,
            transfer learning, meta-transfer learning).
        k_folds: folds (>= 2).
        n_seeds: members per window and fold.
        validation_fraction: inner validation share of the training folds.
        efficiencies: selection efficiencies in (0, 1].
        n_params: 3, 4 or "f_test" (`search.search`).
        n_toys: toys for the global p-value.
        seed: seed of the folds, the inner splits and the toys.
        chunk_size: members trained together (the engine's default when None).
        checkpoint_dir: the engine saves finished chunks there and resumes from them.
        progress: the engine's progress bar.

    Returns:
        HuntOutput.
    """
    mjj = np.asarray(mjj, np.float64)
    if len(mjj) != len(features):
        raise ValueError(f"hunt: {len(features)} feature rows but {len(mjj)} mjj values")
    if any(not 0 < e <= 1 for e in efficiencies):
        raise ValueError(f"hunt: efficiencies must lie in (0, 1], got {efficiencies}")
    regions = layout.regions(mjj)
    folds = assign_folds(len(mjj), k_folds, seed)
    plan = plan_folds(regions, folds, k_folds, n_seeds, validation_fraction, seed + 1)
    if member_scores is None:
        if model is None or train_config is None or learning_rate is None:
            raise ValueError("hunt: give model, train_config and learning_rate, or member_scores")
        member_scores = neural_member_scores(
            model,
            train_config,
            learning_rate,
            chunk_size=chunk_size,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
        )
    probabilities, epochs = member_scores(key, features, plan)
    scores = aggregate_scores(probabilities, plan, len(mjj), layout.n_windows)
    counts, thresholds = selected_spectra(layout, mjj, scores, tuple(efficiencies))
    result = search(
        layout, counts, tuple(efficiencies), n_params=n_params, n_toys=n_toys, seed=seed + 2
    )
    return HuntOutput(scores, thresholds, result, plan, np.asarray(epochs))


__all__ = [
    "DEFAULT_EFFICIENCIES",
    "FoldPlan",
    "HuntLayout",
    "HuntOutput",
    "HuntResult",
    "MemberScores",
    "aggregate_scores",
    "assign_folds",
    "hunt",
    "neural_member_scores",
    "plan_folds",
    "score_events",
    "search",
    "selected_spectra",
    "truth_significance",
]
