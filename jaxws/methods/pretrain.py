"""Pretraining on simulated source data, cached as an artifact (arXiv:2312.06152 sec. 4).

The network first learns to separate pure background from a pure mixture of all signal
models except the benchmark it will later be tested on (leave-one-out source data; "in a real
experiment, this would represent training on simulations"). A fifth of the source sample is
used for validation, also on pure samples; Adam at learning rate 1e-3, early stopping with
patience 20 (Table 2), through the ensemble engine.

The result is saved with orbax-checkpoint as an artifact keyed by a hash of everything that
determines it (model, resolution, source models, seed, sample sizes, training settings), and
reused by every pseudo-experiment, sweep point and method with the same key: a second call
loads it and does not train.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import numpy as np

from jaxws.config import check
from jaxws.models import partition
from jaxws.rng import numpy_generator
from jaxws.track import checkpoints
from jaxws.train import Hparams, MemberData, TrainConfig, fit

if TYPE_CHECKING:
    from jaxws.data.events import JetEvents
    from jaxws.simulate.sources import PythiaSource, SimulatorSource


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Pretraining settings (Table 2 and sec. 4 of arXiv:2312.06152).

    Defaults: `method.pretrain` of conf/method/transfer.yaml (CPU scale, pinned by
    tests/test_config_schemas.py); the paper's numbers are conf/method/transfer_paper.yaml.

    Attributes:
      learning_rate: Adam learning rate (paper: 1e-3).
      patience: early-stopping patience (paper: 20).
      max_epochs: hard cap on epochs.
      batch_size: minibatch size (paper: 500).
      validation_fraction: share of the source sample used for validation (a fifth).
      n_signal, n_background: source sample sizes (250k each in the paper).
    """

    learning_rate: float = 1e-3
    patience: int = 5
    max_epochs: int = 30
    batch_size: int = 256
    validation_fraction: float = 0.2
    n_signal: int = 2_600
    n_background: int = 3_000

    def __post_init__(self):
        check(
            self.learning_rate > 0, f"pretrain.learning_rate must be > 0, got {self.learning_rate}"
        )
        check(self.patience >= 1, f"pretrain.patience must be >= 1, got {self.patience}")
        check(self.max_epochs >= 1, f"pretrain.max_epochs must be >= 1, got {self.max_epochs}")
        check(self.batch_size >= 1, f"pretrain.batch_size must be >= 1, got {self.batch_size}")
        check(
            0 < self.validation_fraction < 1,
            f"pretrain.validation_fraction must be in (0, 1), got {self.validation_fraction}",
        )
        check(self.n_signal >= 2, f"pretrain.n_signal must be >= 2, got {self.n_signal}")
        check(
            self.n_background >= 2, f"pretrain.n_background must be >= 2, got {self.n_background}"
        )

    def train_config(self) -> TrainConfig:
        """The engine settings of pretraining."""
        return TrainConfig(
            batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience
        )


def source_models(models: Sequence[str], target: str) -> list[str]:
    """The leave-one-out source models: every model of `models` except the `target` benchmark.

    Raises:
      ValueError: `target` is not one of `models`, or no other model is left.
    """
    models = list(models)
    if target not in models:
        raise ValueError(
            f"target benchmark {target!r} is not in the model list {models}; the source data "
            "are all models except the target, so the target must be one of them"
        )
    sources = [m for m in models if m != target]
    if not sources:
        raise ValueError(f"no source models left after removing the target {target!r}")
    return sources


def split_signal_counts(n_signal: int, n_models: int) -> np.ndarray:
    """Events per source model for a pure mixture of `n_signal` signal events (equal shares)."""
    if n_models < 1:
        raise ValueError("a signal mixture needs at least one model")
    counts = np.full(n_models, n_signal // n_models, np.int64)
    counts[: n_signal % n_models] += 1
    return counts


def pure_sample_member(
    key: jax.Array, labels: np.ndarray, validation_fraction: float
) -> MemberData:
    """Random train/validation split of a pure labelled sample (stratified by label).

    Args:
      key: typed PRNG key (consumed).
      labels: (N,) truth labels 0 background / 1 signal of the whole pool.
      validation_fraction: share of each class used for validation.

    Returns:
      `MemberData` indexing the pool, unit weights.
    """
    labels = np.asarray(labels)
    rng = numpy_generator(key)
    train, val = [], []
    for value in (0, 1):
        index = rng.permutation(np.flatnonzero(labels == value))
        if len(index) < 2:
            raise ValueError(f"the source sample needs >= 2 events of label {value}")
        n_val = max(1, round(validation_fraction * len(index)))
        val.append(index[:n_val])
        train.append(index[n_val:])
    train, val = np.concatenate(train), np.concatenate(val)
    return MemberData.from_arrays(train, labels[train], val, labels[val])


def pretrain(
    key: jax.Array,
    model: nn.Module,
    pool: np.ndarray,
    labels: np.ndarray,
    config: PretrainConfig,
    *,
    artifact_root: str | Path | None = None,
    artifact_config: dict | None = None,
    trainable: partition.Predicate = partition.everything,
    progress: bool | str = False,
) -> tuple[dict, bool]:
    """Pretrain `model` on pure source data, or load the artifact made by an identical call.

    Args:
      key: typed PRNG key (consumed: split into the validation split and the fit).
      model: the network (its hyperparameters must be part of `artifact_config`).
      pool: source events (e.g. jet images (N, 2, R, R)).
      labels: (N,) 0 background / 1 signal.
      config: `PretrainConfig`.
      artifact_root: directory of artifacts; None disables caching.
      artifact_config: everything that determines the result besides `config` (model
        architecture under "architecture", "resolution", source models, seed, ...). The
        artifact key is the hash of this plus `config`.
      trainable: which parameters are trained (MTL phase 1 keeps S = 1, S-bar = 0 by leaving
        them out).
      progress: progress bar.

    Returns:
      (variables, loaded): the best variables, and whether they came from an existing artifact.
    """
    path = None
    if artifact_root is not None:
        if artifact_config is None:
            raise ValueError("artifact_root is set but artifact_config is missing")
        full = {**artifact_config, "pretrain": dataclasses.asdict(config)}
        path = checkpoints.artifact_path(artifact_root, "pretrain", full)
        if checkpoints.exists(path):
            return checkpoints.load_variables(path, expected=artifact_config), True
    split_key, fit_key = jax.random.split(key)
    member = pure_sample_member(split_key, labels, config.validation_fraction)
    result = fit(
        fit_key,
        model,
        pool,
        member,
        Hparams(config.learning_rate),
        config.train_config(),
        trainable=trainable,
        progress=progress,
    )
    variables = jax.tree.map(np.asarray, jax.device_get(result.variables))
    if path is not None:
        checkpoints.save_variables(path, variables, full)
    return variables, False


@dataclasses.dataclass
class SourceSample:
    """Pure signal-region source events for pretraining and meta-learning tasks.

    Attributes:
      images: (N, 2, R, R) jet images: background first, then each source model's signal.
      labels: (N,) 0 background / 1 signal.
      model_index: (N,) -1 background, k for `sources[k]`.
      sources: the source models (never the target).
    """

    images: np.ndarray
    labels: np.ndarray
    model_index: np.ndarray
    sources: list[str]

    def pretraining_subset(self, n_signal: int, n_background: int) -> np.ndarray:
        """Pool indices of a pure mixture of background and source-model signal.

        `n_background` background events and `n_signal` signal events shared equally among
        the source models (the first events of each).
        """
        background = np.flatnonzero(self.model_index == -1)
        if len(background) < n_background:
            raise ValueError(
                f"source sample holds {len(background)} background events, "
                f"pretraining needs {n_background}"
            )
        parts = [background[:n_background]]
        for k, count in enumerate(split_signal_counts(n_signal, len(self.sources))):
            events = np.flatnonzero(self.model_index == k)
            if len(events) < count:
                raise ValueError(
                    f"source model {self.sources[k]!r} has {len(events)} events, "
                    f"pretraining needs {count}"
                )
            parts.append(events[:count])
        return np.concatenate(parts)


def _signal_region(events: JetEvents, n: int, what: str) -> JetEvents:
    from jaxws.data.events import SIGNAL_REGION

    index = np.flatnonzero(np.asarray(events.region) == SIGNAL_REGION)
    if len(index) < n:
        raise ValueError(f"{what}: {len(index)} signal-region events available, {n} needed")
    return events.take(index[:n])


def source_sample(
    source: SimulatorSource | PythiaSource,
    target: str,
    n_background: int,
    n_signal_per_model: int,
    images_fn: Callable[[JetEvents], np.ndarray],
    *,
    exclude_background: np.ndarray | None = None,
) -> SourceSample:
    """Leave-one-out source events in the signal region, as jet images.

    Background: for the built-in simulator a fresh draw with data seed + 1 (independent of the
    CWoLa study's events); for other sources the background events the study does not use
    (`exclude_background`: indices into `source.background()`).

    Args:
      source: a `jaxws.simulate.sources` source (model_names, background, signal).
      target: the benchmark under study (left out).
      n_background: SR background events wanted.
      n_signal_per_model: SR events wanted per source model.
      images_fn: events -> (N, 2, R, R) images.
      exclude_background: background indices already used by the study.

    Returns:
      `SourceSample`.
    """
    from jaxws.data.events import JetEvents

    sources = source_models(source.model_names(), target)
    config = source.config
    if hasattr(config, "seed") and hasattr(config, "n_background"):
        # About 49 % of simulated background falls in the SR; draw with margin.
        fresh = type(source)(
            dataclasses.replace(
                config, seed=config.seed + 1, n_background=int(2.3 * n_background) + 100
            )
        )
        background = fresh.background()
    else:
        background = source.background()
        if exclude_background is not None:
            keep = np.setdiff1d(np.arange(len(background)), exclude_background)
            background = background.take(keep)
    parts = [_signal_region(background, n_background, "source background")]
    model_index = [np.full(n_background, -1)]
    simulated = hasattr(config, "seed") and hasattr(config, "n_background")
    for k, name in enumerate(sources):
        # Most signal falls in the SR: simulate 2x and keep the first SR events; from shards,
        # read every event of the model (its SR events may be fewer than asked: named below).
        events = source.signal(name, 2 * n_signal_per_model + 100 if simulated else None)
        parts.append(_signal_region(events, n_signal_per_model, f"source model {name}"))
        model_index.append(np.full(n_signal_per_model, k))
    events = JetEvents.concatenate(parts)
    model_index = np.concatenate(model_index)
    return SourceSample(
        images=np.asarray(images_fn(events), np.float32),
        labels=(model_index >= 0).astype(np.float32),
        model_index=model_index,
        sources=sources,
    )
