"""Classification without labels (CWoLa; Metodiev, Nachman, Thaler 2017), as in arXiv:2312.06152.

A classifier is trained to tell two mixed samples apart (signal region vs sidebands). If signal
and background look the same in both and only their proportions differ, the optimal classifier
between the mixtures is a monotone function of the signal/background likelihood ratio, so it is
also the optimal signal/background classifier.

Two entry points:
- `study(...)` / `run(...)`: the paper's study, an ensemble over injections x pseudo-experiments;
- `weak_supervision(mixed_a, mixed_b, ...)`: CWoLa on user data (numpy arrays of any feature
  shape), returning a trained ensemble scorer.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxws.config import ConfigError
from jaxws.data.quantile import QuantileNormal
from jaxws.methods import injection_study
from jaxws.models.cnn import SLIM_CNN, JetCNN
from jaxws.models.mlp import MLP
from jaxws.track.curves import log_learning_curves
from jaxws.train import (
    Hparams,
    MemberData,
    TrainConfig,
    fit_ensemble,
    predict_ensemble,
    trainer_for,
)

if TYPE_CHECKING:
    from pathlib import Path

    import flax.linen as nn
    from omegaconf import DictConfig

    from jaxws.track import Tracker


def study(
    cfg: DictConfig, inputs: injection_study.StudyInputs, key: jax.Array, tracker: Tracker
) -> injection_study.StudyResult:
    """Train CWoLa classifiers from scratch on every pseudo-experiment; evaluate them."""
    members = inputs.experiments.members
    n_members = len(inputs.experiments.injection)
    keys = jax.random.split(key, n_members)
    rates = jnp.full(n_members, inputs.training.learning_rate)
    start = time.perf_counter()
    result = fit_ensemble(
        keys,
        inputs.model,
        inputs.images,
        members,
        Hparams(rates),
        inputs.training.engine(),
        chunk_size=inputs.training.chunk_size,
        progress="CWoLa",
        checkpoint_dir=tracker.path("checkpoints/cwola"),
    )
    log_learning_curves(tracker, "cwola", result, time.perf_counter() - start)
    return injection_study.evaluate(
        inputs, inputs.model, result.variables, result.epochs, fit=result
    )


def run(cfg: DictConfig, key: jax.Array, run_dir: Path, tracker: Tracker) -> dict:
    """The CWoLa study: final-vs-initial significance over injections and pseudo-experiments."""
    inputs, train_key = injection_study.prepare_from_key(cfg, key)
    result = study(cfg, inputs, train_key, tracker)
    return injection_study.report(tracker, inputs, {"CWoLa": result})


@dataclasses.dataclass
class Scorer:
    """A trained CWoLa ensemble. Higher scores = more like `mixed_a` (the signal-enriched one).

    Attributes:
      model: the flax module.
      variables: member variables with a leading member axis.
      feature_shape: the per-event shape the scorer accepts.
      history: the engine's `FitResult` (losses, epochs).
      diverged: per member, why it is unusable ('' if fine; see
        `jaxws.methods.injection_study.diverged_members`); the ensemble score leaves such
        members out.
      input_transform: applied to every event before the members see it (`inputs="quantile"`:
        the `QuantileNormal` fitted on the training events); None: events as given.
    """

    model: object
    variables: dict
    feature_shape: tuple[int, ...]
    history: object
    diverged: list[str] = dataclasses.field(default_factory=list)
    input_transform: QuantileNormal | None = None

    def member_scores(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """(E, N) logits of each member."""
        x = _checked(x, "x")
        if x.shape[1:] != self.feature_shape:
            raise ConfigError(
                f"x has feature shape {x.shape[1:]}, the scorer was trained on {self.feature_shape}"
            )
        if self.input_transform is not None:
            x = self.input_transform.transform(x).astype(np.float32)
        return np.asarray(predict_ensemble(self.model, self.variables, jnp.asarray(x), batch_size))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Ensemble score: the mean probability of the members that did not diverge, (N,)."""
        probabilities = np.asarray(jax.nn.sigmoid(self.member_scores(x)))
        usable = np.array([not reason for reason in self.diverged], bool)
        if len(usable) == len(probabilities) and usable.any():
            probabilities = probabilities[usable]
        return probabilities.mean(axis=0)


def _checked(x: object, name: str) -> np.ndarray:
    """`x` as float32 (N, ...) events, refusing non-numbers and NaN or inf (naming `name`)."""
    try:
        x = np.asarray(x, np.float32)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name} must be an array of numbers: {error}") from error
    if x.ndim < 2:
        raise ConfigError(f"{name} must have shape (N, features...), got {x.shape}")
    bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if bad.any():
        raise ConfigError(
            f"{name} contains NaN or inf values in {int(bad.sum())} of {len(x)} events (first "
            f"at index {int(np.argmax(bad))})"
        )
    return x


def _integer(value: object, name: str, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DecayingAdam:
    """Adam (Keras' constants, as `jaxws.train.keras_adam`) whose learning rate decays per epoch.

    The rate at optimizer step t is `hparams.learning_rate * decay ** (t / steps_per_epoch)`:
    multiplied by `decay` every epoch, smoothly. A frozen dataclass, so equal settings share
    the engine's compiled programs.

    Attributes:
      steps_per_epoch: minibatches per epoch.
      decay: factor per epoch, in (0, 1] (1: constant rate).
    """

    steps_per_epoch: int
    decay: float

    def __call__(self, hparams: Hparams) -> optax.GradientTransformation:
        """The member's optimizer (its `hparams.learning_rate` is a traced leaf)."""

        def rate(count: jax.Array) -> jax.Array:
            return -hparams.learning_rate * self.decay ** (count / self.steps_per_epoch)

        return optax.chain(
            optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7), optax.scale_by_schedule(rate)
        )


#: The neural defaults for feature vectors (N, D): an MLP with hidden `widths` (the last one
#: the head's) and input standardisation, `n_members` members averaged in probability, Adam
#: at a constant `learning_rate` (the argument, 1e-3), early stopping on each member's
#: validation loss after `patience` epochs without improvement (the best epoch's weights
#: kept). Chosen on LHCO validation data that never includes sr_test
#: (experiments/lhco_neural_tuning.py; docs/cwola.md). `n_members` is also the trees' default.
#: `inputs`: "raw" (the MLP's input batch norm standardises); "quantile" raised the LHCO
#: validation AUC but lowered the SIC at the tight cuts (4-fold cross-fitting, docs/cwola.md).
VECTOR_DEFAULTS = {
    "inputs": "raw",
    "widths": (128, 128, 128),
    "n_members": 10,
    "batch_size": 256,
    "max_epochs": 100,
    "patience": 30,
}
#: The defaults for two-jet images (the slim CNN), as before the LHCO tuning.
IMAGE_DEFAULTS = {
    "n_members": 5,
    "batch_size": 256,
    "max_epochs": 100,
    "patience": 10,
}


def _check_arguments(
    learning_rate: object,
    seed: object,
    n_members: object,
    validation_fraction: object,
    chunk_size: object,
    min_events: object,
) -> None:
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, int | float | np.floating | np.integer)
        or not np.isfinite(learning_rate)
        or learning_rate <= 0
    ):
        raise ConfigError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    _integer(seed, "seed", 0)
    _integer(n_members, "n_members", 1, allow_none=True)
    _integer(chunk_size, "chunk_size", 1, allow_none=True)
    _integer(min_events, "min_events", 1)
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, int | float | np.floating)
        or not 0 < validation_fraction < 1
    ):
        raise ConfigError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")


def weak_supervision(
    mixed_a: np.ndarray,
    mixed_b: np.ndarray,
    *,
    model: nn.Module | None = None,
    n_members: int | None = None,
    seed: int = 0,
    learning_rate: float = 1e-3,
    config: TrainConfig | None = None,
    validation_fraction: float = 0.2,
    chunk_size: int | None = None,
    min_events: int = 20,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    classifier: str = "neural",
    tree_options: dict | None = None,
    learning_rate_decay: float = 1.0,
    inputs: str | None = None,
) -> Scorer | TreeScorer:
    """CWoLa on user data: train an ensemble to tell `mixed_a` (label 1) from `mixed_b` (0).

    Each member gets its own random train/validation split and initialisation. Sample sizes
    may differ; no class weights are applied (the classifier's output is then a monotone
    function of the mixture likelihood ratio either way).

    Args:
      mixed_a: (N_a, ...) events of the first mixed sample: feature vectors (an MLP is used)
        or two-jet images (N, 2, R, R) (the slim CNN).
      mixed_b: (N_b, ...) events of the second mixed sample, the same per-event shape.
      model: a flax module (`__call__(x, train)` -> logits) to use instead of the default
        (feature vectors: an MLP with `VECTOR_DEFAULTS["widths"]` and input standardisation;
        images: the slim CNN).
      n_members: ensemble size (None: 10 for feature vectors, neural or trees; 5 for images).
      seed: random seed (same seed and inputs give the same scorer).
      learning_rate: Adam learning rate (of the first epoch).
      config: `TrainConfig` (default for feature vectors: batch 256, up to 100 epochs,
        patience 30, `VECTOR_DEFAULTS`; for images: batch 256, up to 100 epochs, patience 10).
        For a search at tight cuts on tens of thousands of feature vectors,
        `TrainConfig(batch_size=256, max_epochs=100, early_stopping=False)` trains longer and
        keeps the last epoch: on the LHCO data it beats the boosted trees (max SIC 14.2
        against 12.3) but loses at loose cuts and overfits strong-signal toys (docs/cwola.md,
        "Training length").
      validation_fraction: held out per member for early stopping.
      chunk_size: members trained at once (None: as many as fit the memory budget).
      min_events: refuse samples smaller than this.
      progress: show a progress bar per chunk of members (epochs, members still training).
      checkpoint_dir: save each finished chunk of members there and, called again with the
        same inputs, load it instead of retraining (resume after a crash).
      classifier: "neural" (the flax model above, trained with `fit_ensemble`) or "trees":
        an ensemble of `n_members` scikit-learn `HistGradientBoostingClassifier`s, each with
        its own seed and validation split (used for early stopping), for tabular
        high-level features (N, D); on those, boosted trees are the strongest weakly
        supervised classifiers (Finke et al., arXiv:2309.13111). `model`, `config`,
        `chunk_size`, `checkpoint_dir` and `learning_rate` belong to the neural classifier;
        with "trees" the first four are refused if given.
      tree_options: with "trees" only, overrides of `TREE_DEFAULTS` (keys: learning_rate,
        max_iter, max_leaf_nodes, max_depth, min_samples_leaf, l2_regularization,
        max_bins, n_iter_no_change, tol).

      learning_rate_decay: the neural learning rate is multiplied by this every epoch
        (`DecayingAdam`; 1: constant, the default: on the LHCO validation data a decay
        of 0.97 did not help, docs/cwola.md).
      inputs: what the neural members see of feature vectors: "raw" (the events as given;
        the default MLP standardises them with its input batch norm) or "quantile" (each
        feature mapped through its empirical CDF and the inverse normal CDF,
        `jaxws.data.quantile.QuantileNormal`, fitted on all events of `mixed_a` and
        `mixed_b` together, no labels used; the scorer applies the same map, and events
        outside the fitted range saturate at |z| = 5.2). None: `VECTOR_DEFAULTS["inputs"]`
        for feature vectors, "raw" for images ("quantile" is refused for images and with
        trees, which are invariant to monotone transforms of each input anyway).

    Returns:
      A `Scorer`; members that diverged are named in `Scorer.diverged` (and a warning) and
      left out of its ensemble score. With "trees": a `TreeScorer` (same interface); members
      whose early stopping did not trigger within `max_iter` are named in
      `TreeScorer.not_converged` (and a warning).

    Raises:
      ConfigError: a bad argument or array, named, before anything is trained.
    """
    if classifier not in ("neural", "trees"):
        raise ConfigError(f"classifier must be 'neural' or 'trees', got {classifier!r}")
    if (
        isinstance(learning_rate_decay, bool)
        or not isinstance(learning_rate_decay, int | float | np.floating)
        or not 0 < learning_rate_decay <= 1
    ):
        raise ConfigError(f"learning_rate_decay must be in (0, 1], got {learning_rate_decay!r}")
    _check_arguments(learning_rate, seed, n_members, validation_fraction, chunk_size, min_events)
    if inputs not in (None, "raw", "quantile"):
        raise ConfigError(f"inputs must be 'raw' or 'quantile', got {inputs!r}")
    if classifier == "trees":
        given = {
            "model": model,
            "config": config,
            "chunk_size": chunk_size,
            "checkpoint_dir": checkpoint_dir,
            "learning_rate_decay": None if learning_rate_decay == 1 else learning_rate_decay,
            "inputs": inputs,
        }
        unused = [name for name, value in given.items() if value is not None]
        if unused:
            raise ConfigError(f"{', '.join(unused)}: not used with classifier='trees'")
        options = _tree_options(tree_options)
    elif tree_options is not None:
        raise ConfigError("tree_options: only used with classifier='trees'")
    mixed_a, mixed_b = _checked(mixed_a, "mixed_a"), _checked(mixed_b, "mixed_b")
    if mixed_a.shape[1:] != mixed_b.shape[1:]:
        raise ConfigError(
            f"mixed samples have different feature shapes: mixed_a {mixed_a.shape[1:]}, "
            f"mixed_b {mixed_b.shape[1:]}"
        )
    for name, sample in (("mixed_a", mixed_a), ("mixed_b", mixed_b)):
        if len(sample) < min_events:
            raise ConfigError(f"{name} has {len(sample)} events; need at least {min_events}")
    feature_shape = mixed_a.shape[1:]
    vectors = len(feature_shape) == 1
    defaults = VECTOR_DEFAULTS if vectors else IMAGE_DEFAULTS
    if n_members is None:
        n_members = defaults["n_members"]
    if classifier == "trees":
        if not vectors:
            raise ConfigError(
                f"classifier='trees' needs feature vectors (N, D), got feature shape "
                f"{feature_shape}"
            )
        return _fit_trees(mixed_a, mixed_b, n_members, seed, validation_fraction, options)
    if model is None:
        if len(feature_shape) == 3 and feature_shape[0] == 2:
            model = JetCNN(**SLIM_CNN)
        elif vectors:
            widths = VECTOR_DEFAULTS["widths"]
            model = MLP(feature_widths=widths[:-1], head_widths=widths[-1:])
        else:
            raise ConfigError(
                f"no default model for feature shape {feature_shape}: pass `model=` "
                "(vectors (N, D) and two-jet images (N, 2, R, R) have defaults)"
            )
    config = config or TrainConfig(
        batch_size=defaults["batch_size"],
        max_epochs=defaults["max_epochs"],
        patience=defaults["patience"],
    )
    if inputs is None:
        inputs = defaults.get("inputs", "raw")
    if inputs == "quantile" and not vectors:
        raise ConfigError(f"inputs='quantile' needs feature vectors (N, D), got {feature_shape}")
    pool = np.concatenate([mixed_a, mixed_b])
    input_transform = None
    if inputs == "quantile":
        input_transform = QuantileNormal.fit(pool)
        pool = input_transform.transform(pool).astype(np.float32)
    labels = np.concatenate([np.ones(len(mixed_a)), np.zeros(len(mixed_b))]).astype(np.float32)
    members = member_splits(labels, n_members, seed, validation_fraction)
    keys = jax.random.split(jax.random.key(seed), n_members)
    trainer = None
    if learning_rate_decay != 1:
        n_train = members.train_index.shape[1]
        steps_per_epoch = math.ceil(n_train / min(config.batch_size, n_train))
        optimizer = DecayingAdam(steps_per_epoch, float(learning_rate_decay))
        trainer = trainer_for(model, config, optimizer=optimizer)
    result = fit_ensemble(
        keys,
        model,
        pool,
        members,
        Hparams(jnp.full(n_members, learning_rate)),
        config,
        chunk_size=chunk_size,
        progress="weak supervision" if progress else False,
        checkpoint_dir=checkpoint_dir,
        trainer=trainer,
    )
    diverged = injection_study.diverged_members(result)
    flagged = [f"member {m}: {reason}" for m, reason in enumerate(diverged) if reason]
    if flagged:
        warnings.warn(
            f"weak_supervision: {len(flagged)} of {n_members} members diverged and are left out "
            f"of the ensemble score: {'; '.join(flagged)}",
            stacklevel=2,
        )
    return Scorer(model, result.variables, feature_shape, result, diverged, input_transform)


def member_splits(
    labels: np.ndarray, n_members: int, seed: int, validation_fraction: float
) -> MemberData:
    """The neural members' train/validation splits of `weak_supervision` (leading member axis).

    Member m holds out the first `validation_fraction` of the m-th permutation of the pool
    drawn from `np.random.default_rng(seed)`.
    """
    rng = np.random.default_rng(seed)
    n_val = max(1, round(validation_fraction * len(labels)))
    rows = []
    for _ in range(n_members):
        order = rng.permutation(len(labels))
        val, train = order[:n_val], order[n_val:]
        rows.append(MemberData.from_arrays(train, labels[train], val, labels[val]))
    return jax.tree.map(lambda *a: np.stack(a), *rows)


#: Defaults of the boosted-tree members (scikit-learn's, with more iterations; early stopping
#: on each member's own validation split, never on the training rows).
TREE_DEFAULTS = {
    "learning_rate": 0.1,
    "max_iter": 200,
    "max_leaf_nodes": 31,
    "max_depth": None,
    "min_samples_leaf": 20,
    "l2_regularization": 0.0,
    "max_bins": 255,
    "n_iter_no_change": 10,
    "tol": 1e-7,
}


def _tree_options(options: object) -> dict:
    """`TREE_DEFAULTS` updated with `options`, refusing unknown keys and bad values by name."""
    if options is None:
        return dict(TREE_DEFAULTS)
    if not isinstance(options, dict):
        raise ConfigError(f"tree_options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(TREE_DEFAULTS))
    if unknown:
        raise ConfigError(f"tree_options: unknown {unknown}; choose from {sorted(TREE_DEFAULTS)}")
    merged = {**TREE_DEFAULTS, **options}
    for name in ("learning_rate", "l2_regularization", "tol"):
        value, low = merged[name], 0 if name != "learning_rate" else None
        bad = isinstance(value, bool) or not isinstance(value, int | float | np.number)
        if bad or not np.isfinite(value) or (value <= 0 if low is None else value < 0):
            rule = "> 0" if low is None else ">= 0"
            raise ConfigError(f"tree_options.{name} must be a finite number {rule}, got {value!r}")
    for name, low in (("max_iter", 1), ("max_leaf_nodes", 2), ("min_samples_leaf", 1)):
        _integer(merged[name], f"tree_options.{name}", low)
    _integer(merged["n_iter_no_change"], "tree_options.n_iter_no_change", 1)
    _integer(merged["max_depth"], "tree_options.max_depth", 1, allow_none=True)
    _integer(merged["max_bins"], "tree_options.max_bins", 2)
    if merged["max_bins"] > 255:
        raise ConfigError(f"tree_options.max_bins must be <= 255, got {merged['max_bins']!r}")
    return merged


@dataclasses.dataclass
class TreeScorer:
    """A trained boosted-tree CWoLa ensemble; the interface of `Scorer`.

    Attributes:
      members: the fitted scikit-learn `HistGradientBoostingClassifier`s.
      feature_shape: the per-event shape the scorer accepts, (D,).
      n_iter: boosting iterations each member kept (early stopping on its validation split).
      not_converged: per member, '' if early stopping triggered before `max_iter`, else why
        not (such a member may be under-fitted; it is kept in the ensemble and warned about).
    """

    members: list
    feature_shape: tuple[int, ...]
    n_iter: list[int]
    not_converged: list[str] = dataclasses.field(default_factory=list)

    def member_scores(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """(E, N) logits (log-odds) of each member; `batch_size` is accepted and unused."""
        del batch_size
        x = _checked(x, "x")
        if x.shape[1:] != self.feature_shape:
            raise ConfigError(
                f"x has feature shape {x.shape[1:]}, the scorer was trained on {self.feature_shape}"
            )
        return np.stack([m.decision_function(x) for m in self.members]).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Ensemble score: the mean member probability, (N,)."""
        logits = self.member_scores(x).astype(np.float64)
        return (1.0 / (1.0 + np.exp(-logits))).mean(axis=0)


def _fit_trees(
    mixed_a: np.ndarray,
    mixed_b: np.ndarray,
    n_members: int,
    seed: int,
    validation_fraction: float,
    options: dict,
) -> TreeScorer:
    """`n_members` boosted-tree classifiers, each on its own split, seeded `seed`-derived."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    pool = np.concatenate([mixed_a, mixed_b])
    labels = np.concatenate([np.ones(len(mixed_a)), np.zeros(len(mixed_b))]).astype(np.int8)
    rng = np.random.default_rng(seed)
    n_val = max(1, round(validation_fraction * len(pool)))
    members, n_iter, not_converged = [], [], []
    for m in range(n_members):
        order = rng.permutation(len(pool))
        val, train = order[:n_val], order[n_val:]
        member = HistGradientBoostingClassifier(
            **options,
            early_stopping=True,
            scoring="loss",
            random_state=int(rng.integers(2**31 - 1)),
        )
        member.fit(pool[train], labels[train], X_val=pool[val], y_val=labels[val])
        members.append(member)
        n_iter.append(int(member.n_iter_))
        stopped = member.n_iter_ < options["max_iter"]
        not_converged.append(
            "" if stopped else f"member {m}: early stopping did not trigger in max_iter"
        )
    flagged = [reason for reason in not_converged if reason]
    if flagged:
        warnings.warn(
            f"weak_supervision(classifier='trees'): {len(flagged)} of {n_members} members did "
            f"not converge (raise tree_options['max_iter']): {'; '.join(flagged)}",
            stacklevel=3,
        )
    return TreeScorer(members, pool.shape[1:], n_iter, not_converged)
