"""`meta_train` (finite task set, episodic) and `meta_train_sampled` (fresh tasks per step).

Both configure the learner, check their inputs, and run an outer loop from starting
parameters or from a previous meta-training state (`OuterState`, in `MetaResult.outer`),
optionally checkpointed after every episode into a directory so a killed run resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.meta.config import MetaConfig, MetaHparams, check_hparams
from jaxws.methods.meta.inner import InnerProblem, MetaState
from jaxws.methods.meta.learners import MetaLearner, configure
from jaxws.methods.meta.outer import MetaResult, MetaTrainer, OuterState, SampledMetaTrainer
from jaxws.methods.meta.tasks import TaskSampler, split_sizes
from jaxws.train import MemberData
from jaxws.train.resume import StateCheckpoint, function_digest


def check_tasks(tasks: MemberData, n_pool: int, needs_validation: bool = True) -> int:
    """Refuse a task family meta-learning cannot use; returns the number of tasks.

    Validation events may be absent (zero columns) when nothing uses them
    (`needs_validation` False: `early_stopping_on = "none"`).

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
        if index.size == 0:
            continue
        if index.min() < 0 or index.max() >= n_pool:
            raise ValueError(f"tasks.{name} holds indices outside the pool of {n_pool} events")
    if shape[1] < 2:
        raise ValueError("every task needs >= 2 training events (support and query)")
    for name in ("train_weight", "val_weight"):
        w = np.asarray(getattr(tasks, name))
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"tasks.{name} must be finite and >= 0")
        if name == "val_weight" and not needs_validation:
            continue
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
    checkpoint_dir: str | Path | None = None,
) -> MetaResult:
    """Meta-train `learner` from `params` on a finite task family (episodic loop).

    Args:
      learner: a variant (`learners.VARIANTS[name]`) or any `MetaLearner` record.
      problem: the network, loss and base-learning settings (`InnerProblem.from_config`).
      config: the loop's settings; its `first_order` / `outer_optimizer` replace the
        learner's parts (`learners.configure`).
      key: typed PRNG key (its second split key drives the episodes).
      params: starting model parameters (e.g. pretrained, with MTL S = 1, S-bar = 0), or
        the `OuterState` of an earlier run (`MetaResult.outer`) to go on from.
      model_state: non-trained variables (batch-norm running statistics), held fixed.
      pool: events (array or pytree with leading event axis).
      tasks: `MemberData` with a leading task axis T >= 2 (train: support + query events;
        val: early-stopping events, may have zero columns with early_stopping_on "none").
      hparams: `MetaHparams` (both > 0).
      trainer: reuse a `MetaTrainer` (compiled episode) across calls; it must hold the
        configured learner, `problem` and `config`.
      progress: progress bar (a string is its label).
      checkpoint_dir: save the meta-training state after every episode there and resume
        from the newest saved state of the same inputs (kill -9 safe).

    Returns:
      `MetaResult` with the best meta-state and the whole final state (`outer`).

    Raises:
      ConfigError: `config` asks for a part that means nothing for this learner.
      ValueError: bad learning rates, pool or task family.
    """
    learner = configure(learner, config)
    check_hparams(hparams)
    leaves = jax.tree.leaves(pool)
    if not leaves:
        raise ValueError("the event pool is empty")
    n_tasks = check_tasks(tasks, leaves[0].shape[0], config.early_stopping_on != "none")
    split_sizes(
        np.shape(tasks.train_index)[1],
        config.support_size,
        config.query_size,
        config.support_fraction,
    )
    if config.hard_tasks > n_tasks:
        raise ValueError(f"meta.hard_tasks = {config.hard_tasks} exceeds the {n_tasks} tasks")
    tasks = jax.tree.map(jnp.asarray, tasks)
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    state = start_state(learner, params, hparams)
    # The first half of the split seeded learners' extras once; the episodes keep the second so
    # that runs reproduce those of earlier versions.
    _, run_key = jax.random.split(key)
    trainer = trainer or MetaTrainer(learner, problem, config)
    checkpoint = None
    if checkpoint_dir is not None:
        digest = fingerprint(learner, problem, config, run_key, state, model_state, hparams,
                             pool, tasks)  # fmt: skip
        checkpoint = StateCheckpoint(checkpoint_dir, digest)
    return trainer.run(run_key, state, jax.device_put(pool), tasks, model_state, hparams,
                       progress, checkpoint)  # fmt: skip


def start_state(
    learner: MetaLearner, params: dict | OuterState, hparams: MetaHparams
) -> MetaState | OuterState:
    """The learner's initial `MetaState` from parameters, or an `OuterState` as given."""
    if isinstance(params, OuterState):
        return jax.tree.map(jnp.asarray, params)
    return learner.init(params, hparams)


def fingerprint(
    learner: MetaLearner, problem: Any, config: MetaConfig, key: jax.Array, *trees: Any
) -> str:
    """Digest of what a meta-training run depends on (for its checkpoints).

    The learner's parts enter through their code (`function_digest`; closures' captured
    values are not seen, see there), the adapted and meta-trained parameter names through
    the tree of `trees`' first entry, and the settings and arrays by value.
    """
    from jaxws.hashing import json_digest, tree_digest
    from jaxws.models import partition

    start = trees[0]
    params = start.state.params if isinstance(start, OuterState) else start.params
    parts = [
        function_digest(learner.estimator),
        function_digest(learner.step_size.init),
        function_digest(learner.step_size.rates),
        function_digest(learner.outer_optimizer.update),
        function_digest(problem.apply_fn),
        function_digest(problem.loss_fn),
        repr(sorted(partition.split(params, learner.adapted)[0])),
        repr(sorted(partition.split(params, learner.meta_trained)[0])),
        json_digest(dataclasses.asdict(config)),
        repr((problem.inner_epochs, problem.inner_batch_size, problem.inner_steps)),
    ]
    return tree_digest(parts, jax.random.key_data(key), *trees)


def meta_train_sampled(
    learner: MetaLearner,
    problem: InnerProblem,
    config: MetaConfig,
    key: jax.Array,
    params: dict | OuterState,
    model_state: dict,
    sampler: TaskSampler,
    hparams: MetaHparams,
    *,
    validation: Any = None,
    trainer: SampledMetaTrainer | None = None,
    progress: bool | str = False,
    checkpoint_dir: str | Path | None = None,
) -> MetaResult:
    """Meta-train `learner` on fresh tasks drawn from `sampler` every meta-step.

    `config.steps_per_episode` meta-steps make an episode; `config.max_episodes` episodes at
    most; early stopping on `validation` (a fixed batch of tasks, e.g.
    `sampler.sample(key)` with a larger `meta_batch_size`) when given, else the last state is
    kept (see `SampledMetaTrainer`).

    Args:
      learner: a variant or any `MetaLearner`.
      problem: the network, loss and base-learning settings (`InnerProblem.from_config`).
      config: the loop's settings.
      key: typed PRNG key (its second split key draws the tasks).
      params: starting parameters, or the `OuterState` of an earlier run to go on from.
      model_state: non-trained variables, held fixed.
      sampler: the task family (`tasks.SinusoidTasks`, `tasks.FiniteTaskSet`, ...).
      hparams: `MetaHparams` (both > 0).
      validation: optional `Task` batch for early stopping.
      trainer: reuse a `SampledMetaTrainer` (compiled loop) across calls.
      progress: progress bar (a string is its label).
      checkpoint_dir: save the state after every episode and resume from the newest one.

    Returns:
      `MetaResult` with the kept meta-state and the whole final state (`outer`).
    """
    learner = configure(learner, config)
    check_hparams(hparams)
    if getattr(sampler, "meta_batch_size", 0) < 1:
        raise ValueError("the task sampler needs a meta_batch_size >= 1")
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    state = start_state(learner, params, hparams)
    _, run_key = jax.random.split(key)
    trainer = trainer or SampledMetaTrainer(learner, problem, config)
    checkpoint = None
    if checkpoint_dir is not None:
        digest = fingerprint(learner, problem, config, run_key, state, model_state, hparams,
                             sampler, validation)  # fmt: skip
        checkpoint = StateCheckpoint(checkpoint_dir, digest)
    return trainer.run(run_key, state, sampler, model_state, hparams, validation=validation,
                       progress=progress, checkpoint=checkpoint)  # fmt: skip
