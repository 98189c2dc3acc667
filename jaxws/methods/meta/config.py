"""Settings of meta-learning: per-run learning rates (pytree leaves) and static loop settings.

The learning rates follow arXiv:2312.06152 Table 2 (beta = 1e-3 for base learning, gamma =
1e-4 for the meta-learner); the static settings are the `method.meta` section of a variant's
YAML (conf/method/meta_base.yaml).
"""

from __future__ import annotations

import dataclasses

import flax
import jax
import numpy as np

from jaxws.config import check


@flax.struct.dataclass
class MetaHparams:
    """Per-run learning rates (pytree leaves: a sweep does not recompile).

    Attributes:
      inner_lr: beta, the base-learning (inner loop) step size; Table 2: 1e-3.
      outer_lr: gamma, the meta-learner step size; Table 2: 1e-4.
    """

    inner_lr: jax.Array | float
    outer_lr: jax.Array | float


def check_hparams(hparams: MetaHparams) -> None:
    """Refuse learning rates that are not finite and > 0.

    Args:
      hparams: the learning rates.

    Raises:
      ValueError: naming the bad rate.
    """
    for name in ("inner_lr", "outer_lr"):
        value = np.asarray(getattr(hparams, name))
        if not np.all(np.isfinite(value)) or np.any(value <= 0):
            raise ValueError(f"meta-learning rate {name} must be finite and > 0, got {value}")


OUTER_OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """Static settings of the inner and outer loops (`method.meta`).

    Defaults: `method.meta` of conf/method/meta_base.yaml (CPU scale, pinned by
    tests/test_config_schemas.py); the paper's numbers are conf/method/mtl_paper.yaml.

    Attributes:
      inner_epochs: epochs of base learning over the support set (paper: 3).
      inner_batch_size: minibatch size of base learning (paper: 500).
      support_fraction: share of a task's training events used as support (rest: query).
      meta_batch_size: tasks per outer step; 0 means all tasks (one step per episode); 1 is
        the paper's sequential updates.
      max_episodes: hard cap on episodes.
      patience: episodes without improvement of the task-averaged loss before stopping
        (paper: 20).
      min_delta: an improvement must exceed this.
      first_order: None keeps the learner's meta-gradient estimator; True makes a
        differentiating learner first-order (the paper's eq. 7), False second-order. Refused
        for learners that differentiate no meta-loss (Reptile) and when it contradicts the
        variant (`fomaml` with False).
      hard_tasks: re-sample this many hardest tasks into one extra meta-batch per episode.
      outer_optimizer: None keeps the learner's outer optimizer; "adam" (Keras' defaults, as
        the paper's optimizer) or "sgd" (eq. 7 literally) replace it.
      early_stopping_on: "updated" (the paper: the task loss of the updated parameters) or
        "adapted" (the task loss after adapting on the support set).
    """

    inner_epochs: int = 3
    inner_batch_size: int = 64
    support_fraction: float = 0.5
    meta_batch_size: int = 0
    max_episodes: int = 20
    patience: int = 5
    min_delta: float = 0.0
    first_order: bool | None = None
    hard_tasks: int = 0
    outer_optimizer: str | None = None
    early_stopping_on: str = "adapted"

    def __post_init__(self):
        check(self.inner_epochs >= 1, f"meta.inner_epochs must be >= 1, got {self.inner_epochs}")
        check(self.inner_batch_size >= 1, "meta.inner_batch_size must be >= 1")
        check(
            0 < self.support_fraction < 1,
            f"meta.support_fraction must be in (0, 1), got {self.support_fraction}",
        )
        check(self.meta_batch_size >= 0, "meta.meta_batch_size must be >= 0")
        check(self.max_episodes >= 1, "meta.max_episodes must be >= 1")
        check(self.patience >= 1, "meta.patience must be >= 1")
        check(self.min_delta >= 0, "meta.min_delta must be >= 0")
        check(self.hard_tasks >= 0, "meta.hard_tasks must be >= 0")
        check(
            self.first_order in (None, True, False),
            f"meta.first_order must be null, true or false, got {self.first_order!r}",
        )
        check(
            self.outer_optimizer in (None, *OUTER_OPTIMIZERS),
            f"meta.outer_optimizer must be null, 'adam' or 'sgd', got {self.outer_optimizer!r}",
        )
        check(
            self.early_stopping_on in ("updated", "adapted"),
            f"meta.early_stopping_on must be 'updated' or 'adapted', got "
            f"{self.early_stopping_on!r}",
        )
