"""k-fold scoring: every event is scored by classifiers that never saw it.

CWoLa hunting's classifiers are trained on the data they select from; to keep a trained
classifier's fluctuations out of the events it scores, the events are split into k folds
(default 5; Collins, Howe, Nachman, PRD 99 (2019) 014038, Sec. III, describe the scheme and
did not implement it). For window w and fold f, `n_seeds` members train SR (label 1) against
SB (label 0) on the window's events outside fold f, of which a `validation_fraction` (fixed per
event and fold) is the inner validation set for early stopping; they score the window's
events of fold f, and an event's score is the members' mean probability. All windows x folds x
seeds train as members of one ensemble through the engine (`jaxws.train.fit_ensemble`), padded
to one length with weight 0. Classes are weighted to equal total weight in each member's
training and validation sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.train import Hparams, MemberData, TrainConfig, fit_ensemble


def assign_folds(n_events: int, k: int, seed: int) -> np.ndarray:
    """(N,) fold of each event: a random permutation dealt round-robin (balanced folds)."""
    if k < 2:
        raise ValueError(f"hunt: k_folds must be >= 2, got {k}")
    folds = np.empty(n_events, np.int32)
    folds[np.random.default_rng(seed).permutation(n_events)] = np.arange(n_events) % k
    return folds


@dataclasses.dataclass(frozen=True)
class FoldPlan:
    """Members of the k-fold ensemble, in (window, fold, seed) order.

    Attributes:
        members: stacked `MemberData` (leading axis n_windows * k * n_seeds).
        window: (E,) window of each member.
        fold: (E,) held-out fold of each member.
        score_index: (E, M) pool indices each member scores (its window's events of its fold;
            padded with index 0 where `score_mask` is False).
        score_mask: (E, M) bool.
    """

    members: MemberData
    window: np.ndarray
    fold: np.ndarray
    score_index: np.ndarray
    score_mask: np.ndarray


def _balanced_weights(labels: np.ndarray) -> np.ndarray:
    weights = np.ones(labels.size, np.float32)
    for value in (0, 1):
        n = np.sum(labels == value)
        if n:
            weights[labels == value] = 0.5 * labels.size / n
    return weights


def _pad(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    width = max(1, max(a.size for a in arrays))
    out = np.zeros((len(arrays), width), dtype)
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
    return out


def plan_folds(
    regions: np.ndarray,
    folds: np.ndarray,
    k: int,
    n_seeds: int = 1,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> FoldPlan:
    """The members' training, validation and scoring indices.

    Args:
        regions: (n_windows, N) 1 SR, 0 SB, -1 outside (`HuntLayout.regions`).
        folds: (N,) fold of each event (`assign_folds`).
        k: number of folds.
        n_seeds: members per (window, fold), averaged when scoring.
        validation_fraction: share of the training folds' events used for early stopping.
        seed: seed of the inner validation split.

    Returns:
        FoldPlan.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError("hunt: validation_fraction must lie in (0, 1)")
    n_windows, n_events = regions.shape
    inner = np.random.default_rng(seed).random((k, n_events)) < validation_fraction
    parts: dict[str, list[np.ndarray]] = {
        k_: [] for k_ in ("ti", "tl", "tw", "vi", "vl", "vw", "si")
    }
    window, fold = [], []
    for w in range(n_windows):
        in_window = regions[w] >= 0
        for f in range(k):
            train_pool = in_window & (folds != f)
            train = np.flatnonzero(train_pool & ~inner[f])
            val = np.flatnonzero(train_pool & inner[f])
            scored = np.flatnonzero(in_window & (folds == f))
            train_label = (regions[w, train] == 1).astype(np.float32)
            val_label = (regions[w, val] == 1).astype(np.float32)
            for _ in range(n_seeds):
                parts["ti"].append(train)
                parts["tl"].append(train_label)
                parts["tw"].append(_balanced_weights(train_label))
                parts["vi"].append(val)
                parts["vl"].append(val_label)
                parts["vw"].append(_balanced_weights(val_label))
                parts["si"].append(scored)
                window.append(w)
                fold.append(f)
    members = MemberData(
        train_index=_pad(parts["ti"], np.int32),
        train_label=_pad(parts["tl"], np.float32),
        train_weight=_pad(parts["tw"], np.float32),
        val_index=_pad(parts["vi"], np.int32),
        val_label=_pad(parts["vl"], np.float32),
        val_weight=_pad(parts["vw"], np.float32),
    )
    return FoldPlan(
        members=members,
        window=np.asarray(window),
        fold=np.asarray(fold),
        score_index=_pad(parts["si"], np.int32),
        score_mask=_pad([np.ones(a.size, bool) for a in parts["si"]], bool),
    )


#: A hunt classifier: `(key, features, plan) -> (probabilities (E, M), epochs (E,))`. Member e
#: trains on `plan.members[e]` only and returns the signal probability of each event of
#: `plan.score_index[e]` (padding entries are ignored); `epochs[e]` is how long it trained.
MemberScores = Callable[[jax.Array, np.ndarray, FoldPlan], tuple[np.ndarray, np.ndarray]]


def member_probabilities(
    model: object, variables: dict, pool: np.ndarray, plan: FoldPlan
) -> np.ndarray:
    """(E, M) sigmoid of member e's logit on the events `plan.score_index[e]`."""
    pool = jnp.asarray(pool)

    @jax.jit
    def apply(member_variables: dict, index: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(model.apply(member_variables, pool[index], train=False))

    return np.asarray(
        jax.lax.map(lambda args: apply(*args), (variables, jnp.asarray(plan.score_index)))
    )


def aggregate_scores(
    probabilities: np.ndarray, plan: FoldPlan, n_events: int, n_windows: int
) -> np.ndarray:
    """(n_windows, N) each event's mean probability over the members that scored it.

    NaN outside a window. Member e contributes only to `plan.score_index[e]` (its window's
    events of its held-out fold).
    """
    total = np.zeros((n_windows, n_events))
    count = np.zeros((n_windows, n_events))
    for e in range(plan.window.size):
        index = plan.score_index[e][plan.score_mask[e]]
        np.add.at(total[plan.window[e]], index, probabilities[e][plan.score_mask[e]])
        np.add.at(count[plan.window[e]], index, 1.0)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


def score_events(
    model: object, variables: dict, pool: np.ndarray, plan: FoldPlan, n_windows: int
) -> np.ndarray:
    """(n_windows, N) each event's mean member probability (NaN outside a window).

    Member e scores only `plan.score_index[e]`: its window's events of its held-out fold.
    """
    probabilities = member_probabilities(model, variables, pool, plan)
    return aggregate_scores(probabilities, plan, np.shape(pool)[0], n_windows)


def neural_member_scores(
    model: object,
    train_config: TrainConfig,
    learning_rate: float,
    *,
    chunk_size: int | None = None,
    checkpoint_dir: str | None = None,
    progress: bool | str = False,
) -> MemberScores:
    """The CWoLa classifier: `model` trained from scratch per member through the engine.

    All members (windows x folds x seeds) are one `fit_ensemble` call (chunked and resumable
    there); member e's key is `jax.random.split(key, E)[e]`.
    """

    def member_scores(key: jax.Array, pool: np.ndarray, plan: FoldPlan):
        n_members = plan.window.size
        fitted = fit_ensemble(
            jax.random.split(key, n_members),
            model,
            jnp.asarray(pool),
            plan.members,
            Hparams(jnp.full(n_members, learning_rate)),
            train_config,
            chunk_size=chunk_size,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
        )
        return member_probabilities(model, fitted.variables, pool, plan), np.asarray(fitted.epochs)

    return member_scores
