"""Training settings, per-member hyperparameters and the state and result of a fit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

import flax
import jax
import jax.numpy as jnp

LossFn = Callable[[Any, jnp.ndarray], jnp.ndarray]
# The data pool: an array or a pytree of arrays, every leaf with a leading event axis.
Pool: TypeAlias = Any


# On one accelerator, "auto" maps the members of a convolutional network whose training step
# costs at least this many FLOPs (`learner.step_flops`): one such member fills the device. One
# H200, 8 members: the paper CNN at batch 500 (119 GFLOP per step; measured with TF32),
# lax.map 1.33x vmap; at batch 100 (24 GFLOP, full float32), vmap 1.28x lax.map; the slim CNN
# at batch 500 (1.4 GFLOP), vmap 1.14x lax.map (bench/gpu.sh, bench/README.md). The threshold
# lies between the measured cases.
MAP_STEP_FLOPS = 50e9


@flax.struct.dataclass
class Hparams:
    """Per-member numeric hyperparameters (leaves get a leading member axis in ensembles)."""

    learning_rate: jax.Array | float


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static training settings (changing one recompiles).

    Attributes:
      batch_size: minibatch size (Table 2: 500).
      max_epochs: hard cap on epochs.
      patience: epochs without validation improvement before a member stops (Table 2: 30 for
        CWoLa and fine-tuning, 20 for pretraining).
      eval_batch_size: events per forward pass when computing the validation loss.
      min_delta: an improvement must exceed this to reset the patience counter.
      early_stopping: False: no early stopping: every member trains `max_epochs` epochs and
        keeps its last epoch's variables (the last with a finite validation loss; `patience`
        and `min_delta` unused). The validation loss is still computed and recorded, and
        `FitResult.best_epoch` / `best_val_loss` then describe the kept epoch. On the LHCO
        validation data, early stopping on the validation loss (dominated by the bulk of the
        background) stopped the weakly supervised MLP before it resolved the signal's corner
        at tight cuts (docs/cwola.md).
      compact_members: in ensembles, once at most half of a chunk's members still train,
        continue with those only (see `Trainer.run`); results are unchanged.
      member_map: how an ensemble chunk's members share one compiled epoch: "vmap" (batched:
        pays off on accelerators and for small networks), "map" (`lax.map`: one member after
        another inside the program, a single member's memory) or "auto", "map" where one
        member already fills the device: convolutional networks on a CPU with one device, and
        on one accelerator convolutional networks whose training step costs at least
        `MAP_STEP_FLOPS`; "vmap" elsewhere. Measured (bench/member_map.py, bench/compare.py
        members): 2-core CPU, slim CNN E = 8, map 1.50x vmap; 64-64 MLP E = 16, vmap 1.11x
        map. One H200: see `MAP_STEP_FLOPS`; a 64-64 MLP E = 16, vmap 5.1x map. Results agree
        to float32 rounding per step (on a GPU with `jaxws.precision`'s full float32), not bit
        for bit: tests/train/test_engine.py holds each member to its solo fit within 1e-5 on
        small networks, but over long trainings the rounding differences grow (the LHCO
        default network: logits up to 0.03 apart after its early-stopped epochs,
        `bench/lhco_epoch.py --compare-maps`), so a changed `member_map` changes the numbers
        as a last-bit change of the inputs would.
      epochs_per_block: epochs compiled into one call between host checks (progress, early
        exit of the whole chunk, compaction, refill); results do not depend on it.
      queue_members: in ensembles, members queued per chunk beyond its rows: a row whose
        member stopped takes the next queued member between blocks (0: no queue, a chunk's
        rows hold its own members only). Results are unchanged.
      memory_budget_gb: when `fit_ensemble` is given no `chunk_size`, the rows of a chunk are
        as many as fit this many GB by `jaxws.train.memory`'s estimate of the compiled
        block; None budgets half of the memory available now (`memory.available_bytes`).
    """

    batch_size: int = 500
    max_epochs: int = 200
    patience: int = 30
    eval_batch_size: int = 2048
    min_delta: float = 0.0
    early_stopping: bool = True
    compact_members: bool = True
    member_map: str = "auto"
    epochs_per_block: int = 1
    queue_members: int = 0
    memory_budget_gb: float | None = None

    def __post_init__(self):
        """Raise ValueError naming the field (no config path: callers add their section's)."""
        for name in ("batch_size", "max_epochs", "patience", "eval_batch_size", "epochs_per_block"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping must be true or false, got {self.early_stopping!r}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.queue_members < 0:
            raise ValueError(f"queue_members must be >= 0, got {self.queue_members}")
        if self.memory_budget_gb is not None and not self.memory_budget_gb > 0:
            raise ValueError(f"memory_budget_gb must be > 0, got {self.memory_budget_gb}")
        if self.member_map not in ("auto", "vmap", "map"):
            raise ValueError(f"member_map must be auto, vmap or map, got {self.member_map!r}")

    def resolved_member_map(
        self, convolutional: bool = True, step_flops: float | None = None
    ) -> str:
        """`member_map` with "auto" decided for the backend, device count and network.

        Args:
          convolutional: whether the network has a convolution.
          step_flops: one member's training step in FLOPs (`learner.step_flops`); needed on
            accelerators only, where None counts as small.
        """
        if self.member_map != "auto":
            return self.member_map
        if jax.local_device_count() > 1 or not convolutional:
            return "vmap"
        if jax.default_backend() == "cpu":
            return "map"
        return "map" if step_flops is not None and step_flops >= MAP_STEP_FLOPS else "vmap"


@flax.struct.dataclass
class FitState:
    """Training state of one member (leading member axis on every leaf for ensembles).

    Attributes:
      params: current model parameters.
      model_state: the other model variables (e.g. batch statistics).
      opt_state: optimizer state of the trainable parameters.
      best_params, best_model_state: the variables of the best epoch so far.
      best_val_loss: lowest validation loss so far (+inf before the first epoch).
      best_epoch: 0-based epoch of best_val_loss (-1 before the first epoch).
      bad_epochs: epochs since the last improvement.
      epoch: epochs run so far.
      done: early stopping has ended this member (its state is frozen from then on).
      train_loss, val_loss: per-epoch weighted mean losses, shape (max_epochs,), NaN for
        epochs not run.
    """

    params: dict
    model_state: dict
    opt_state: Any
    best_params: dict
    best_model_state: dict
    best_val_loss: jax.Array
    best_epoch: jax.Array
    bad_epochs: jax.Array
    epoch: jax.Array
    done: jax.Array
    train_loss: jax.Array
    val_loss: jax.Array


@flax.struct.dataclass
class FitResult:
    """Outcome of a fit (leading member axis on every leaf for ensembles).

    Attributes:
      variables: the best model variables ({"params": ..., "batch_stats": ...}).
      train_loss, val_loss: per-epoch weighted mean losses, NaN after the member stopped.
      best_epoch: 0-based epoch whose parameters were kept.
      best_val_loss: its validation loss.
      epochs: epochs actually run.
    """

    variables: dict
    train_loss: jax.Array
    val_loss: jax.Array
    best_epoch: jax.Array
    best_val_loss: jax.Array
    epochs: jax.Array
