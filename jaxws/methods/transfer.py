"""Transfer learning: fine-tune a pretrained network on the CWoLa task (arXiv:2312.06152 sec. 4).

The feature extractor Theta (`features`) starts from its pretrained values and is frozen; the
dense head theta (`head`) is re-initialised randomly (per pseudo-experiment, from that
member's key) and trained to separate the signal region from the sidebands, with Adam at
learning rate 1e-4 and early-stopping patience 30 (Table 2). With Theta frozen the input batch
norm stays in inference mode (`frozen_norm`), as a non-trainable Keras BatchNormalization does.
Options: unfreeze Theta, keep the pretrained theta instead of re-initialising it.

The same fine-tuning runs phase 3 of meta-transfer learning (sec. 5) and the CWoLa evaluation
of every meta-learning variant (`jaxws.methods.meta`). `study` / `run` are the CWoLa study with
transfer learning (`method=transfer`): the same pseudo-experiments and evaluation as CWoLa
(`jaxws.methods.injection_study`), the fine-tuning settings taken from the `training` section
(the paper uses the same learning rate and patience for CWoLa and fine-tuning).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import ConfigError, check, from_section
from jaxws.methods.pretrain import PretrainConfig, SourceSample, pretrain, source_sample
from jaxws.models import partition
from jaxws.models.surgery import extract_features, head_model, with_frozen_norm
from jaxws.track.curves import log_learning_curves
from jaxws.train import (
    FitResult,
    Hparams,
    MemberData,
    TrainConfig,
    Trainer,
    fit_ensemble,
    trainer_for,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from jaxws.methods.injection_study import StudyInputs, StudyResult, StudyTrainingConfig
    from jaxws.track import Tracker


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Fine-tuning settings (Table 2: learning rate 1e-4, patience 30).

    Attributes:
      learning_rate: Adam learning rate of the fine-tuning.
      patience: early-stopping patience.
      max_epochs: hard cap on epochs.
      batch_size: minibatch size.
      freeze_features: keep Theta (and the input batch norm) fixed at its pretrained values.
      reinit_head: re-initialise theta from each member's key (the paper); False keeps the
        pretrained head.
      chunk_size: members trained at once (memory); 0 trains all at once.
      cache_features: with Theta frozen, compute the feature extractor's output once and
        train the head on it (same numbers, one conv pass instead of one per epoch).
    """

    learning_rate: float = 1e-4
    patience: int = 30
    max_epochs: int = 300
    batch_size: int = 500
    freeze_features: bool = True
    reinit_head: bool = True
    chunk_size: int = 0
    cache_features: bool = True

    def __post_init__(self):
        check(
            self.learning_rate > 0, f"transfer.learning_rate must be > 0, got {self.learning_rate}"
        )
        check(self.patience >= 1, f"transfer.patience must be >= 1, got {self.patience}")
        check(self.max_epochs >= 1, f"transfer.max_epochs must be >= 1, got {self.max_epochs}")
        check(self.batch_size >= 1, f"transfer.batch_size must be >= 1, got {self.batch_size}")
        check(self.chunk_size >= 0, f"transfer.chunk_size must be >= 0, got {self.chunk_size}")

    def train_config(self) -> TrainConfig:
        """The engine settings of fine-tuning."""
        return TrainConfig(
            batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience
        )

    @property
    def trainable(self) -> partition.Predicate:
        """Parameters fine-tuning trains: the head, or Theta and theta (never MTL's S, S-bar)."""
        return partition.is_head if self.freeze_features else partition.is_network_parameter

    @property
    def reinit(self) -> partition.Predicate | None:
        """Parameters re-initialised per member before fine-tuning (None: none)."""
        return partition.is_head if self.reinit_head else None


def member_initial_variables(
    trainer: Trainer,
    keys: jax.Array,
    pool: np.ndarray,
    base_variables: dict,
    reinit: partition.Predicate | None,
) -> dict:
    """Per-member starting variables, with re-initialised parts drawn per member.

    `base_variables` broadcast to the member axis, with the parameters selected by `reinit`
    replaced by a fresh init from each member's key.

    The fresh init uses the same key as `fit_ensemble` would (the first half of
    `jax.random.split(key)`), so a re-initialised head equals the head of a fresh member.
    """
    n = keys.shape[0]
    broadcast = jax.tree.map(
        lambda a: jnp.broadcast_to(jnp.asarray(a), (n, *np.shape(a))), base_variables
    )
    if reinit is None:
        return broadcast
    init_keys = jax.vmap(jax.random.split)(keys)[:, 0]
    fresh = jax.jit(jax.vmap(trainer.init_variables, in_axes=(0, None)))(
        init_keys, jax.tree.map(lambda a: a[:1], pool)
    )
    missing = set(_flat_keys(broadcast["params"])) ^ set(_flat_keys(fresh["params"]))
    if missing:
        raise ValueError(
            "the pretrained variables and the fine-tuned network disagree on parameters "
            f"{sorted(missing)[:4]} (another architecture?)"
        )
    params = partition.replace(broadcast["params"], fresh["params"], reinit)
    return {**broadcast, "params": params}


def _flat_keys(params: dict) -> list[tuple[str, ...]]:
    selected, _ = partition.split(params, partition.everything)
    return list(selected)


def fine_tune(
    keys: jax.Array,
    model: nn.Module,
    pool: np.ndarray,
    members: MemberData,
    base_variables: dict,
    config: TransferConfig,
    *,
    trainable: partition.Predicate | None = None,
    reinit: partition.Predicate | str | None = "config",
    progress: bool | str = False,
    checkpoint_dir: str | Path | None = None,
) -> FitResult:
    """Fine-tune pretrained (or meta-trained) variables on E CWoLa members at once.

    Args:
      keys: (E,) member keys (pseudo-experiments).
      model: the network; its input batch norm is frozen when Theta is frozen.
      pool: the events (jet images) of all members.
      members: `MemberData` with leading member axis E (SR label 1 vs SB label 0).
      base_variables: pretrained variables (no member axis).
      config: `TransferConfig`.
      trainable: overrides `config.trainable` (e.g. a meta variant's choice).
      reinit: overrides `config.reinit` (None: keep every pretrained parameter).
      progress: progress bar.
      checkpoint_dir: save finished chunks of members there and resume from them
        (`jaxws.train.resume`); None trains everything.

    Returns:
      `FitResult` with leading member axis E (full-network variables). With Theta frozen and
      `config.cache_features`, the head is trained on the feature extractor's output computed
      once (same numbers; tested against the uncached path).
    """
    trainable = config.trainable if trainable is None else trainable
    reinit = config.reinit if isinstance(reinit, str) else reinit
    frozen_features = not any(
        trainable(path)
        for path in _flat_keys(base_variables["params"])
        if partition.is_feature_extractor(path)
    )
    model = with_frozen_norm(model, frozen_features)
    train_config = config.train_config()
    trainer = trainer_for(model, train_config, trainable=trainable)
    init = member_initial_variables(trainer, keys, pool, base_variables, reinit)
    n = keys.shape[0]
    only_head = all(
        partition.is_head(path) for path in _flat_keys(base_variables["params"]) if trainable(path)
    )
    head = head_model(model)
    if config.cache_features and frozen_features and only_head and head is not None:
        # Theta and the input norm are fixed: train the head on their output, computed once.
        features = extract_features(model, base_variables, pool)
        result = fit_ensemble(
            keys,
            head,
            features,
            members,
            Hparams(jnp.full((n,), config.learning_rate, jnp.float32)),
            train_config,
            chunk_size=config.chunk_size or None,
            trainable=partition.is_head,
            init_variables={"params": {"head": init["params"]["head"]}},
            progress=progress,
            checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / "head",
        )
        params = {**init["params"], "head": result.variables["params"]["head"]}
        return result.replace(variables={**init, "params": params})
    return fit_ensemble(
        keys,
        model,
        pool,
        members,
        Hparams(jnp.full((n,), config.learning_rate, jnp.float32)),
        train_config,
        chunk_size=config.chunk_size or None,
        trainable=trainable,
        init_variables=init,
        trainer=trainer,
        progress=progress,
        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / "network",
    )


# -- the study (method=transfer) ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """`method.source`: the leave-one-out source sample (pure SR events).

    Attributes:
      n_background: background events (pretraining uses them all; meta tasks draw from them).
      n_signal_per_model: events per source model.
    """

    n_background: int = 4000
    n_signal_per_model: int = 400

    def __post_init__(self):
        check(self.n_background >= 2, "method.source.n_background must be >= 2")
        check(self.n_signal_per_model >= 2, "method.source.n_signal_per_model must be >= 2")


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """`method.fine_tune`: what is frozen and re-initialised.

    Training numbers come from the `training` section unless set here.
    """

    freeze_features: bool = True
    reinit_head: bool = True
    learning_rate: float | None = None
    patience: int | None = None
    max_epochs: int | None = None

    def config(self, training: StudyTrainingConfig) -> TransferConfig:
        """The full fine-tuning settings, filling unset numbers from `training`."""
        return TransferConfig(
            learning_rate=self.learning_rate or training.learning_rate,
            patience=self.patience or training.patience,
            max_epochs=self.max_epochs or training.max_epochs,
            batch_size=training.batch_size,
            freeze_features=self.freeze_features,
            reinit_head=self.reinit_head,
            chunk_size=training.chunk_size,
        )


def method_sections(method_cfg: DictConfig, allowed_extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Split a transfer-like `method` section into validated parts (unknown keys refused)."""
    from jaxws.config import to_plain
    from jaxws.paths import absolute, cache_dir

    section = dict(to_plain(method_cfg) or {})
    known = {
        "name",
        "artifact_dir",
        "pretrain_seed",
        "source",
        "pretrain",
        "fine_tune",
        *allowed_extra,
    }
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in config section 'method'; allowed: {sorted(known)}"
        )
    return {
        "name": section.get("name", "transfer"),
        "artifact_dir": str(absolute(section.get("artifact_dir") or cache_dir() / "artifacts")),
        "pretrain_seed": section.get("pretrain_seed"),
        "source": from_section(SourceConfig, section.get("source"), "method.source"),
        "pretrain": from_section(PretrainConfig, section.get("pretrain"), "method.pretrain"),
        "fine_tune": from_section(FineTuneConfig, section.get("fine_tune"), "method.fine_tune"),
        **{k: section.get(k) for k in allowed_extra},
    }


def _used_background(inputs: StudyInputs) -> np.ndarray:
    experiments = inputs.experiments
    used = [
        np.asarray(experiments.members.train_index).ravel(),
        np.asarray(experiments.members.val_index).ravel(),
        np.asarray(experiments.test_index).ravel(),
    ]
    return np.unique(np.concatenate(used))


def pretrained_for_study(
    cfg: DictConfig, inputs: StudyInputs, sections: dict, progress: bool | str = "pretraining"
) -> tuple[dict, SourceSample, bool]:
    """The leave-one-out source sample and the pretrained plain network (cached artifact).

    The pretraining key comes from `method.pretrain_seed` (default: the run's `seed`), not from
    the method's training key, so transfer, MTL and every variant share one artifact.
    """
    from jaxws.config import to_plain
    from jaxws.methods import injection_study

    source_cfg = sections["source"]
    pre = sections["pretrain"]
    if pre.n_background > source_cfg.n_background:
        raise ConfigError("method.pretrain.n_background exceeds method.source.n_background")
    if pre.n_signal > source_cfg.n_signal_per_model * (len(inputs.source.model_names()) - 1):
        raise ConfigError(
            "method.pretrain.n_signal exceeds the source signal events "
            "(method.source.n_signal_per_model x source models)"
        )
    resolution = inputs.source.config.resolution
    sample = source_sample(
        inputs.source,
        inputs.signal_name,
        source_cfg.n_background,
        source_cfg.n_signal_per_model,
        lambda events: injection_study.event_pool_images(events, inputs.source.config),
        exclude_background=_used_background(inputs),
    )
    seed = sections["pretrain_seed"]
    seed = int(cfg.seed) if seed is None else int(seed)
    artifact = {
        "architecture": to_plain(cfg.model),
        "resolution": resolution,
        "data": {
            k: v
            for k, v in dataclasses.asdict(inputs.source.config).items()
            if k not in ("signal",)
        },
        "sources": sample.sources,
        "source_sizes": dataclasses.asdict(source_cfg),
        "seed": seed,
    }
    index = sample.pretraining_subset(pre.n_signal, pre.n_background)
    variables, loaded = pretrain(
        jax.random.key(seed),
        inputs.model,
        sample.images[index],
        sample.labels[index],
        pre,
        artifact_root=sections["artifact_dir"],
        artifact_config=artifact,
        progress=progress,
    )
    return variables, sample, loaded


def study(cfg: DictConfig, inputs: StudyInputs, key: jax.Array, tracker: Tracker) -> StudyResult:
    """Transfer learning on every pseudo-experiment of the study; evaluated like CWoLa."""
    from jaxws.methods import injection_study

    sections = method_sections(cfg.method)
    variables, _, loaded = pretrained_for_study(cfg, inputs, sections)
    tracker.log_metrics({"transfer/pretrain_loaded_from_artifact": int(loaded)})
    members = inputs.experiments.members
    n = len(inputs.experiments.injection)
    start = time.perf_counter()
    result = fine_tune(
        jax.random.split(key, n),
        inputs.model,
        inputs.images,
        members,
        variables,
        sections["fine_tune"].config(inputs.training),
        progress="transfer",
        checkpoint_dir=tracker.path("checkpoints/transfer"),
    )
    log_learning_curves(tracker, "transfer", result, time.perf_counter() - start)
    return injection_study.evaluate(
        inputs, inputs.model, result.variables, result.epochs, fit=result
    )


def run(cfg: DictConfig, key: jax.Array, run_dir: Path, tracker: Tracker) -> dict:
    """The transfer-learning study: final-vs-initial significance (paper Fig. 4)."""
    from jaxws.methods import injection_study

    data_key, train_key = jax.random.split(key)
    inputs = injection_study.prepare(cfg, int(jax.random.randint(data_key, (), 0, 2**31 - 1)))
    result = study(cfg, inputs, train_key, tracker)
    return injection_study.report(tracker, inputs, {"Transfer": result})
