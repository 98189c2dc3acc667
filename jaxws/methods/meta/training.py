"""`meta_train`: check a task family, configure the learner and run the outer loop."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.meta.config import MetaConfig, MetaHparams, check_hparams
from jaxws.methods.meta.inner import InnerProblem
from jaxws.methods.meta.learners import MetaLearner, configure
from jaxws.methods.meta.outer import MetaResult, MetaTrainer
from jaxws.train import MemberData


def check_tasks(tasks: MemberData, n_pool: int) -> int:
    """Refuse a task family meta-learning cannot use; returns the number of tasks.

    Raises:
      ValueError: fewer than 2 tasks, indices outside the pool, fewer than 2 training events
        per task, or negative, non-finite or all-zero weights.
    """
    shape = np.shape(tasks.train_index)
    if len(shape) != 2:
        raise ValueError(f"tasks need a leading task axis: train_index has shape {shape}")
    n_tasks = shape[0]
    if n_tasks < 2:
        raise ValueError(
            f"meta-learning needs a task family of at least 2 tasks, got {n_tasks}; with one "
            "task there is nothing to learn across tasks (use transfer learning)"
        )
    for name in ("train_index", "val_index"):
        index = np.asarray(getattr(tasks, name))
        if index.min() < 0 or index.max() >= n_pool:
            raise ValueError(f"tasks.{name} holds indices outside the pool of {n_pool} events")
    if shape[1] < 2:
        raise ValueError("every task needs >= 2 training events (support and query)")
    for name in ("train_weight", "val_weight"):
        w = np.asarray(getattr(tasks, name))
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"tasks.{name} must be finite and >= 0")
        if np.any(w.sum(axis=1) <= 0):
            raise ValueError(f"every task needs events with {name} > 0")
    return n_tasks


def meta_train(
    learner: MetaLearner,
    problem: InnerProblem,
    config: MetaConfig,
    key: jax.Array,
    params: dict,
    model_state: dict,
    pool: Any,
    tasks: MemberData,
    hparams: MetaHparams,
    *,
    trainer: MetaTrainer | None = None,
    progress: bool | str = False,
) -> MetaResult:
    """Meta-train `learner` from `params` on a task family.

    Args:
      learner: a variant (`learners.VARIANTS[name]`) or any `MetaLearner` record.
      problem: the network, loss and base-learning settings (`InnerProblem.from_config`).
      config: the loop's settings; its `first_order` / `outer_optimizer` replace the
        learner's parts (`learners.configure`).
      key: typed PRNG key (its second split key drives the episodes).
      params: starting model parameters (e.g. pretrained, with MTL S = 1, S-bar = 0).
      model_state: non-trained variables (batch-norm running statistics), held fixed.
      pool: events (array or pytree with leading event axis).
      tasks: `MemberData` with a leading task axis T >= 2 (train: support + query events;
        val: early-stopping events).
      hparams: `MetaHparams` (both > 0).
      trainer: reuse a `MetaTrainer` (compiled episode) across calls; it must hold the
        configured learner, `problem` and `config`.
      progress: progress bar (a string is its label).

    Returns:
      `MetaResult` with the best meta-state.

    Raises:
      ConfigError: `config` asks for a part that means nothing for this learner.
      ValueError: bad learning rates, pool or task family.
    """
    learner = configure(learner, config)
    check_hparams(hparams)
    leaves = jax.tree.leaves(pool)
    if not leaves:
        raise ValueError("the event pool is empty")
    n_tasks = check_tasks(tasks, leaves[0].shape[0])
    if config.hard_tasks > n_tasks:
        raise ValueError(f"meta.hard_tasks = {config.hard_tasks} exceeds the {n_tasks} tasks")
    tasks = jax.tree.map(jnp.asarray, tasks)
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    state = learner.init(params, hparams)
    # The first half of the split seeded learners' extras once; the episodes keep the second so
    # that runs reproduce those of earlier versions.
    _, run_key = jax.random.split(key)
    trainer = trainer or MetaTrainer(learner, problem, config)
    return trainer.run(run_key, state, jax.device_put(pool), tasks, model_state, hparams, progress)
