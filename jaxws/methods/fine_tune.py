"""Fine-tuning a pretrained network on E CWoLa members at once (arXiv:2312.06152 sec. 4).

The feature extractor Theta (`features`) starts from its pretrained values and is frozen; the
dense head theta (`head`) is re-initialised randomly (per member, from that member's key) and
trained to separate the signal region from the sidebands, with Adam at learning rate 1e-4 and
early-stopping patience 30 (Table 2). With Theta frozen the input batch norm stays in inference
mode (`frozen_norm`), as a non-trainable Keras BatchNormalization does. Options: unfreeze Theta,
keep the pretrained theta instead of re-initialising it. Transfer learning (`methods.transfer`),
phase 3 of meta-transfer learning and every meta-learning variant's evaluation use it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import check
from jaxws.models import partition
from jaxws.models.surgery import extract_features, head_model, with_frozen_norm
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
    pass


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
      chunk_size: members trained at once (memory); 0: as many as fit the memory budget.
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
