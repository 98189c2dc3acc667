"""Transfer learning: fine-tune a pretrained network on the CWoLa task (arXiv:2312.06152 sec. 4).

The feature extractor Theta (`features`) starts from its pretrained values and is frozen; the
dense head theta (`head`) is re-initialised randomly (per pseudo-experiment, from that
member's key) and trained to separate the signal region from the sidebands, with Adam at
learning rate 1e-4 and early-stopping patience 30 (Table 2). With Theta frozen the input batch
norm stays in inference mode (`frozen_norm`), as a non-trainable Keras BatchNormalization does.
Options: unfreeze Theta, keep the pretrained theta instead of re-initialising it.

The same fine-tuning runs phase 3 of meta-transfer learning (sec. 5) and the CWoLa evaluation
of every meta-learning variant (`jaxws.methods.meta`). The study entry point `run` lives in
`jaxws.methods.transfer_study` so that this module stays a small library.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import check
from jaxws.models import partition
from jaxws.train import FitResult, Hparams, MemberData, TrainConfig, Trainer, fit_ensemble


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
    """

    learning_rate: float = 1e-4
    patience: int = 30
    max_epochs: int = 300
    batch_size: int = 500
    freeze_features: bool = True
    reinit_head: bool = True
    chunk_size: int = 0

    def __post_init__(self):
        check(
            self.learning_rate > 0, f"transfer.learning_rate must be > 0, got {self.learning_rate}"
        )
        check(self.patience >= 1, f"transfer.patience must be >= 1, got {self.patience}")
        check(self.max_epochs >= 1, f"transfer.max_epochs must be >= 1, got {self.max_epochs}")
        check(self.batch_size >= 1, f"transfer.batch_size must be >= 1, got {self.batch_size}")
        check(self.chunk_size >= 0, f"transfer.chunk_size must be >= 0, got {self.chunk_size}")

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience
        )

    @property
    def trainable(self) -> partition.Predicate:
        return partition.is_head if self.freeze_features else _not_meta

    @property
    def reinit(self) -> partition.Predicate | None:
        return partition.is_head if self.reinit_head else None


def _not_meta(path) -> bool:
    # Unfrozen transfer trains Theta and theta; MTL scale/shift stay what meta-training made them.
    return not partition.is_meta(path)


def with_frozen_norm(model: nn.Module, frozen: bool) -> nn.Module:
    """The same network with its input batch norm in inference mode while training (if frozen)."""
    if not hasattr(model, "frozen_norm"):
        raise ValueError(f"{type(model).__name__} has no `frozen_norm` attribute")
    return model.clone(frozen_norm=frozen)


def add_meta_parameters(variables: dict, meta_template: dict) -> dict:
    """Pretrained plain-network variables extended with MTL S = 1, S-bar = 0.

    Args:
      variables: variables of the network without meta parameters (pretrained).
      meta_template: a fresh init of the same network with `meta=True` (its S = 1, S-bar = 0
        are kept; everything else is taken from `variables`).

    Returns:
      Variables for the meta network that compute exactly what `variables` computed.
    """
    params = partition.replace(
        meta_template["params"], variables["params"], lambda p: not partition.is_meta(p)
    )
    return {**variables, "params": params}


def member_initial_variables(
    trainer: Trainer,
    keys: jax.Array,
    pool,
    base_variables: dict,
    reinit: partition.Predicate | None,
) -> dict:
    """Per-member starting variables: `base_variables` broadcast to the member axis, with the
    parameters selected by `reinit` replaced by a fresh init from each member's key.

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
    pool,
    members: MemberData,
    base_variables: dict,
    config: TransferConfig,
    *,
    trainable: partition.Predicate | None = None,
    reinit: partition.Predicate | None | str = "config",
    progress: bool | str = False,
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

    Returns:
      `FitResult` with leading member axis E.
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
    trainer = Trainer(model, train_config, trainable=trainable)
    init = member_initial_variables(trainer, keys, pool, base_variables, reinit)
    n = keys.shape[0]
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
    )
