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
      inner_epochs: epochs of base learning over the support set (paper: 3); used when
        `inner_steps` is 0.
      inner_batch_size: minibatch size of base learning (paper: 500); used when `inner_steps`
        is 0.
      inner_steps: > 0: base learning is this many full-batch gradient steps on the whole
        support set (MAML's few-shot protocol: 1); 0: `inner_epochs` epochs of shuffled
        minibatches of `inner_batch_size` (the jet-image study).
      support_fraction: share of a task's training events used as support (rest: query);
        used when `support_size` is 0.
      support_size: support events per task (K shots); 0: from `support_fraction`.
      query_size: query events per task; 0: all training events not in the support set.
      meta_batch_size: tasks per outer step; 0 means all tasks (one step per episode); 1 is
        the paper's sequential updates.
      steps_per_episode: meta-steps per episode of the sampled loop (fresh tasks every step,
        `SampledMetaTrainer`); an evaluation and the early-stopping bookkeeping follow each
        episode. The episodic loop over a finite task set ignores it (an episode visits every
        task once).
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
      early_stopping_on: "updated" (the paper: the task loss of the updated parameters),
        "adapted" (the task loss after adapting on the support set; one more adaptation per
        task and step) or "none" (no validation events used, no early stopping: the last
        state is kept after `max_episodes`).
    """

    inner_epochs: int = 3
    inner_batch_size: int = 64
    inner_steps: int = 0
    support_fraction: float = 0.5
    support_size: int = 0
    query_size: int = 0
    meta_batch_size: int = 0
    steps_per_episode: int = 1000
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
        check(self.inner_steps >= 0, f"meta.inner_steps must be >= 0, got {self.inner_steps}")
        check(self.support_size >= 0, f"meta.support_size must be >= 0, got {self.support_size}")
        check(self.query_size >= 0, f"meta.query_size must be >= 0, got {self.query_size}")
        check(self.steps_per_episode >= 1, "meta.steps_per_episode must be >= 1")
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
            self.early_stopping_on in ("updated", "adapted", "none"),
            f"meta.early_stopping_on must be 'updated', 'adapted' or 'none', got "
            f"{self.early_stopping_on!r}",
        )
