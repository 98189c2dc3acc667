"""The outer loops shared by every meta-learner (arXiv:2312.06152 sec. 5, eq. 7).

Two loops, one meta-training state (`OuterState`, a pytree that is checkpointed and resumed):

- `SampledMetaTrainer`: fresh tasks every meta-step from a task sampler
  (`jaxws.methods.meta.tasks`; the few-shot protocol of MAML, any simulator-driven family).
- `MetaTrainer`: the episodic loop of arXiv:2312.06152 over a finite task set, described
  below (the jet-image study).

Tasks are stacked as a `MemberData` with a leading task axis T, indexed into a shared event
pool. Every episode re-splits each task's training events at random into a *support* half
(base learning) and a *query* half (the meta-loss); its validation events serve the
early-stopping loss, so the three steps of an episode see different events, as in the paper.

Each episode visits every task once, in random order, in meta-batches of `meta_batch_size`
tasks that are `jax.vmap`ped (not looped); the learner's estimator gives each task's
meta-gradient, they are averaged, and the learner's outer optimizer makes one step. The paper
applies the tasks' updates one after the other; that is `meta_batch_size = 1`. After each
outer step the updated parameters' validation loss of the meta-batch's tasks is recorded; the
task-averaged loss of an episode drives early stopping and the best meta-parameters are kept.
Optionally the `hard_tasks` tasks with the highest query loss in the episode are re-sampled
(fresh support/query splits) into one extra meta-batch: the hard-task meta-batch of Sun et al.
2019 (arXiv:1812.02391), which the paper left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxws.methods.meta.config import MetaConfig, MetaHparams
from jaxws.methods.meta.inner import InnerProblem, MetaState, Task, adapt, merge_outer, split_outer
from jaxws.methods.meta.learners import MetaLearner, outer_step
from jaxws.methods.meta.tasks import TaskSampler, gather_tasks, split_sizes
from jaxws.train import MemberData, early_stopping, loop
from jaxws.train.resume import StateCheckpoint


@flax.struct.dataclass
class OuterState:
    """The whole meta-training state, one pytree: what a checkpoint saves and a resume loads.

    Attributes:
      state: the current `MetaState` (parameters and meta-parameters, e.g. Meta-SGD's rates).
      opt_state: the outer optimizer's state (Adam's moments).
      best_state: the best `MetaState` so far (kept by select).
      best_loss: its evaluation loss.
      best_episode: its episode (-1 before the first).
      bad_episodes: episodes since the last improvement.
      episode: episodes run (the counter the per-step keys are folded with).
      done: early stopping or `max_episodes` reached.
      history: (max_episodes,) evaluation loss per episode, NaN where not run.
    """

    state: MetaState
    opt_state: Any
    best_state: MetaState
    best_loss: jax.Array
    best_episode: jax.Array
    bad_episodes: jax.Array
    episode: jax.Array
    done: jax.Array
    history: jax.Array


@flax.struct.dataclass
class MetaResult:
    """Outcome of meta-training.

    Attributes:
      state: the best `MetaState` (lowest task-averaged evaluation loss).
      history: (max_episodes,) task-averaged evaluation loss per episode, NaN after stopping.
      best_episode: 0-based episode of the kept state.
      episodes: episodes run.
      outer: the whole meta-training state (`OuterState`: parameters, meta-parameters,
        optimizer and early-stopping state, episode counter); `meta_train` accepts it in
        place of starting parameters to go on from it.
    """

    state: MetaState
    history: jax.Array
    best_episode: jax.Array
    episodes: jax.Array
    outer: Any = None


def finish_episode(
    config: MetaConfig,
    outer: OuterState,
    state: MetaState,
    opt_state: Any,
    loss: jax.Array,
    keep_last: bool,
) -> OuterState:
    """Early-stopping bookkeeping after an episode whose evaluation loss is `loss`.

    With `keep_last` (no validation loss: `early_stopping_on = "none"` in the episodic loop,
    no validation tasks in the sampled one) nothing stops early and the kept state is the
    last one (`loss`, recorded in the history, is then the episode's mean query loss).
    """
    progress = early_stopping.update(
        loss,
        outer.best_loss,
        outer.best_episode,
        outer.bad_episodes,
        outer.episode,
        min_delta=config.min_delta,
        patience=config.patience,
        max_steps=config.max_episodes,
    )
    if keep_last:
        last = outer.episode + 1 >= config.max_episodes
        progress = progress._replace(
            improved=jnp.array(True), best_loss=loss, best_step=outer.episode, done=last
        )
    new = OuterState(
        state=state,
        opt_state=opt_state,
        best_state=early_stopping.select(progress.improved, state, outer.best_state),
        best_loss=progress.best_loss,
        best_episode=progress.best_step,
        bad_episodes=progress.bad_steps,
        episode=outer.episode + 1,
        done=progress.done,
        history=outer.history.at[outer.episode].set(loss),
    )
    return early_stopping.select(outer.done, outer, new)


def init_outer(learner: MetaLearner, config: MetaConfig, state: MetaState) -> OuterState:
    """The meta-training state at episode 0 from the learner's initial meta-state."""
    outer, _ = split_outer(learner, state)
    opt_state: optax.OptState = learner.outer_optimizer.init(outer)
    return OuterState(
        state=state,
        opt_state=opt_state,
        best_state=state,
        best_loss=jnp.array(jnp.inf, jnp.float32),
        best_episode=jnp.array(-1, jnp.int32),
        bad_episodes=jnp.array(0, jnp.int32),
        episode=jnp.array(0, jnp.int32),
        done=jnp.array(False),
        history=jnp.full((config.max_episodes,), jnp.nan, jnp.float32),
    )


def run_episodes(
    block: Any,
    outer: OuterState,
    total: int,
    progress: bool | str,
    checkpoint: StateCheckpoint | None,
) -> OuterState:
    """Compiled blocks of one episode from the host until done; checkpointed per episode."""
    if checkpoint is not None:
        restored = checkpoint.restore(outer)
        if restored is not None:
            outer = jax.tree.map(jnp.asarray, restored)
    return loop.run(
        block,
        outer,
        done=lambda current: bool(current.done),
        position=lambda current: int(current.episode),
        total=total,
        progress=progress,
        desc="meta-train",
        after_block=None
        if checkpoint is None
        else lambda current: checkpoint.save(int(current.episode), current),
    )


def to_result(outer: OuterState) -> MetaResult:
    """The `MetaResult` of a finished meta-training state."""
    return MetaResult(
        state=outer.best_state,
        history=outer.history,
        best_episode=outer.best_episode,
        episodes=outer.episode,
        outer=outer,
    )


class _OuterLoop:
    """What both outer loops share: settings, jitted episodes, start and host loop.

    The learner, inner problem and settings; `episodes` (jitted) over the subclass's
    `episode`; the starting state; and the host loop over episodes (`run_episodes`).
    """

    def __init__(self, learner: MetaLearner, problem: InnerProblem, config: MetaConfig):
        self.learner = learner
        self.problem = problem
        self.config = config
        self._episodes = jax.jit(self.episodes, static_argnums=6)

    def episodes(
        self,
        outer: OuterState,
        key: jax.Array,
        first: Any,
        second: Any,
        model_state: dict,
        hparams: MetaHparams,
        n: int,
    ) -> OuterState:
        """Up to `n` more episodes, fewer once early stopping ends the loop (`loop.steps`).

        `first`, `second`: the loop's task inputs as its `episode` takes them (pool and
        tasks, or sampler and validation tasks).
        """
        step = lambda current: self.episode(current, key, first, second, model_state, hparams)
        return loop.steps(step, outer, n, lambda current: current.done)

    def init(self, state: MetaState) -> OuterState:
        """The outer loop's starting carry from the learner's initial meta-state."""
        return init_outer(self.learner, self.config, state)

    def _run(
        self,
        state: MetaState | OuterState,
        episodes: Callable[[OuterState, int], OuterState],
        progress: bool | str,
        checkpoint: StateCheckpoint | None,
    ) -> MetaResult:
        outer = state if isinstance(state, OuterState) else self.init(state)
        outer = run_episodes(episodes, outer, self.config.max_episodes, progress, checkpoint)
        return to_result(outer)


class MetaTrainer(_OuterLoop):
    """The jitted episode of one learner on one inner problem (reuse it to avoid recompiling).

    Args:
      learner: the learner, with `configure(learner, config)` already applied.
      problem: the network, loss and base-learning settings.
      config: the outer loop's settings.
    """

    def evaluation_loss(
        self, state: MetaState, model_state: dict, task: Task, hparams: MetaHparams, key: jax.Array
    ) -> jax.Array:
        """The task loss for early stopping on the validation events."""
        params = state.params
        if self.config.early_stopping_on == "adapted":
            params = adapt(
                self.problem, self.learner, state, model_state, task.support, hparams, key
            )
        return self.problem.task_loss(params, model_state, task.validation)

    def _meta_batch_step(
        self,
        carry: tuple,
        batch: tuple,
        pool: Any,
        tasks: MemberData,
        split_perms: jax.Array,
        n_support: int,
        model_state: dict,
        hparams: MetaHparams,
    ) -> tuple[tuple, None]:
        learner, problem = self.learner, self.problem
        state, opt_state, val_losses, query_losses = carry
        ids, mask, key, is_hard = batch
        n_tasks = tasks.train_index.shape[0]
        width = ids.shape[0]
        # The hard-task meta-batch (last step of an episode, if enabled): the tasks with the
        # highest query loss so far, each with a fresh support/query split. Choosing it inside
        # the step keeps one compiled step for regular and hard meta-batches.
        n_hard = min(self.config.hard_tasks, n_tasks)
        split_perm = split_perms[0]
        if n_hard > 0:  # (without hard tasks, no sort over every task's loss in every step)
            hardest = jnp.argsort(-jnp.nan_to_num(query_losses, nan=-jnp.inf))[:width]
            hardest = jnp.pad(hardest, (0, width - hardest.shape[0]), constant_values=n_tasks)
            hard_mask = (jnp.arange(width) < n_hard).astype(mask.dtype)
            ids = jnp.where(is_hard, jnp.where(hard_mask > 0, hardest, n_tasks), ids)
            mask = jnp.where(is_hard, hard_mask, mask)
            split_perm = jnp.where(is_hard, split_perms[1], split_perms[0])
        n_support, n_query = n_support
        task = gather_tasks(
            pool, tasks, jnp.minimum(ids, n_tasks - 1), split_perm, n_support, n_query
        )
        grad_keys, eval_keys = jnp.split(jax.random.split(key, 2 * width), 2)
        estimate = jax.vmap(learner.estimator, in_axes=(None, None, None, None, 0, None, 0))
        grads, losses = estimate(problem, learner, state, model_state, task, hparams, grad_keys)
        weight = mask / jnp.maximum(mask.sum(), 1.0)
        grads = jax.tree.map(lambda g: jnp.tensordot(weight, g, axes=1), grads)
        outer, frozen = split_outer(learner, state)
        outer, opt_state = outer_step(learner, outer, opt_state, grads, hparams.outer_lr)
        state = merge_outer(outer, frozen)
        if self.config.early_stopping_on == "none":
            evaluation = losses  # no validation events used: the query losses, for the record
        else:
            evaluation = jax.vmap(self.evaluation_loss, in_axes=(None, None, 0, None, 0))(
                state, model_state, task, hparams, eval_keys
            )
        # Padding slots carry the out-of-range id n_tasks and are dropped by the scatter.
        val_losses = val_losses.at[ids].set(evaluation, mode="drop")
        query_losses = query_losses.at[ids].set(losses, mode="drop")
        return (state, opt_state, val_losses, query_losses), None

    def episode(
        self,
        outer: OuterState,
        key: jax.Array,
        pool: Any,
        tasks: MemberData,
        model_state: dict,
        hparams: MetaHparams,
    ) -> OuterState:
        """One episode: every task once (in meta-batches), optional hard tasks, early stopping."""
        config = self.config
        n_tasks, n_train = tasks.train_index.shape
        n_support = split_sizes(
            n_train, config.support_size, config.query_size, config.support_fraction
        )
        split_key, order_key, step_key = jax.random.split(jax.random.fold_in(key, outer.episode), 3)
        # Two independent support/query splits per task: regular and hard-task meta-batches.
        split_perms = jax.vmap(jax.vmap(lambda k: jax.random.permutation(k, n_train)))(
            jax.random.split(split_key, (2, n_tasks))
        )
        size = min(config.meta_batch_size or n_tasks, n_tasks)
        n_hard = min(config.hard_tasks, n_tasks)
        width = max(size, n_hard)
        n_batches = math.ceil(n_tasks / size)
        pad = n_batches * size - n_tasks
        order = jnp.pad(
            jax.random.permutation(order_key, n_tasks), (0, pad), constant_values=n_tasks
        ).reshape(n_batches, size)
        mask = jnp.pad(jnp.ones((n_tasks,), jnp.float32), (0, pad)).reshape(n_batches, size)
        order = jnp.pad(order, ((0, 0), (0, width - size)), constant_values=n_tasks)
        mask = jnp.pad(mask, ((0, 0), (0, width - size)))
        n_steps = n_batches + (1 if n_hard > 0 else 0)
        if n_hard > 0:  # placeholder row, filled with the hardest tasks inside the step
            order = jnp.concatenate([order, jnp.full((1, width), n_tasks, order.dtype)])
            mask = jnp.concatenate([mask, jnp.zeros((1, width), mask.dtype)])
        steps = (order, mask, jax.random.split(step_key, n_steps), jnp.arange(n_steps) >= n_batches)

        def step(carry: tuple, batch: tuple) -> tuple[tuple, None]:
            return self._meta_batch_step(
                carry, batch, pool, tasks, split_perms, n_support, model_state, hparams
            )

        nan = jnp.full((n_tasks,), jnp.nan, jnp.float32)
        (state, opt_state, val_losses, _), _ = jax.lax.scan(
            step, (outer.state, outer.opt_state, nan, nan), steps
        )
        loss = jnp.mean(val_losses)
        return finish_episode(
            config, outer, state, opt_state, loss, config.early_stopping_on == "none"
        )

    def run(
        self,
        key: jax.Array,
        state: MetaState | OuterState,
        pool: Any,
        tasks: MemberData,
        model_state: dict,
        hparams: MetaHparams,
        progress: bool | str = False,
        checkpoint: StateCheckpoint | None = None,
    ) -> MetaResult:
        """Episodes until early stopping; returns the best meta-state (and the whole state).

        Args:
          key: the run's key (episodes fold in their index).
          state: a starting `MetaState`, or an `OuterState` to go on from.
          pool: events (array or pytree with a leading event axis).
          tasks: the task set (`MemberData` with a leading task axis).
          model_state: non-trained variables, held fixed.
          hparams: the learning rates.
          progress: progress bar (a string is its label).
          checkpoint: save the state after every episode and resume from the newest one.
        """
        return self._run(
            state,
            lambda current, n: self._episodes(current, key, pool, tasks, model_state, hparams, n),
            progress,
            checkpoint,
        )


class SampledMetaTrainer(_OuterLoop):
    """The outer loop on a task sampler: fresh tasks every meta-step (compiled once).

    An episode is `config.steps_per_episode` meta-steps; meta-step s (counted over all
    episodes) draws its meta-batch with `sampler.sample(fold_in(key, s))`, so the tasks, and
    the result, do not depend on where a run was cut into blocks or resumed. Each task's
    meta-gradient comes from the learner's estimator (`jax.vmap` over the meta-batch), they
    are averaged and the outer optimizer makes one step. After each episode, if validation
    tasks are given, their mean query loss after adaptation drives early stopping and the
    best state is kept; without them the history holds the episode's mean query loss before
    each update and the last state is kept. (`config.early_stopping_on` is the episodic
    loop's choice of per-task validation loss; this loop does not read it.)

    Args:
      learner: the learner, with `configure(learner, config)` already applied.
      problem: the network, loss and base-learning settings.
      config: the loop's settings (`steps_per_episode`, `max_episodes`, `patience`, ...).
    """

    def meta_step(
        self,
        carry: tuple[MetaState, Any],
        step: jax.Array,
        key: jax.Array,
        sampler: TaskSampler,
        model_state: dict,
        hparams: MetaHparams,
    ) -> tuple[tuple[MetaState, Any], jax.Array]:
        """One outer step on a fresh meta-batch; returns the new carry and the mean query loss."""
        learner = self.learner
        state, opt_state = carry
        task_key, adapt_key = jax.random.split(jax.random.fold_in(key, step))
        task = sampler.sample(task_key)
        keys = jax.random.split(adapt_key, sampler.meta_batch_size)
        outer, frozen = split_outer(learner, state)
        query_loss = getattr(learner.estimator, "query_loss", None)
        if query_loss is not None:  # the gradient of the mean meta-loss: one backward pass
            losses_of = jax.vmap(query_loss, in_axes=(None, None, None, None, None, 0, None, 0))

            def mean_loss(outer: tuple) -> tuple[jax.Array, jax.Array]:
                losses = losses_of(self.problem, learner, outer, frozen, model_state, task,
                                   hparams, keys)  # fmt: skip
                return jnp.mean(losses), losses

            (_, losses), grads = jax.value_and_grad(mean_loss, has_aux=True)(outer)
        else:  # e.g. Reptile: per-task directions, averaged
            estimate = jax.vmap(learner.estimator, in_axes=(None, None, None, None, 0, None, 0))
            grads, losses = estimate(self.problem, learner, state, model_state, task, hparams,
                                     keys)  # fmt: skip
            grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
        outer, opt_state = outer_step(learner, outer, opt_state, grads, hparams.outer_lr)
        return (merge_outer(outer, frozen), opt_state), jnp.mean(losses)

    def evaluation_loss(
        self,
        state: MetaState,
        model_state: dict,
        tasks: Task,
        hparams: MetaHparams,
        key: jax.Array,
    ) -> jax.Array:
        """Mean query loss of a batch of tasks after adapting on their support sets."""

        def one(task: Task, key: jax.Array) -> jax.Array:
            params = adapt(self.problem, self.learner, state, model_state, task.support,
                           hparams, key)  # fmt: skip
            return self.problem.task_loss(params, model_state, task.query)

        n = jax.tree.leaves(tasks.query)[0].shape[0]
        return jnp.mean(jax.vmap(one)(tasks, jax.random.split(key, n)))

    def episode(
        self,
        outer: OuterState,
        key: jax.Array,
        sampler: TaskSampler,
        validation: Task | None,
        model_state: dict,
        hparams: MetaHparams,
    ) -> OuterState:
        """`steps_per_episode` meta-steps, then the evaluation and early stopping."""
        config = self.config
        train_key, eval_key = jax.random.split(key)
        first = outer.episode * config.steps_per_episode
        (state, opt_state), losses = jax.lax.scan(
            lambda carry, step: self.meta_step(
                carry, step, train_key, sampler, model_state, hparams
            ),
            (outer.state, outer.opt_state),
            first + jnp.arange(config.steps_per_episode),
        )
        if validation is None:
            loss = jnp.mean(losses)
        else:
            loss = self.evaluation_loss(state, model_state, validation, hparams, eval_key)
        return finish_episode(config, outer, state, opt_state, loss, validation is None)

    def run(
        self,
        key: jax.Array,
        state: MetaState | OuterState,
        sampler: TaskSampler,
        model_state: dict,
        hparams: MetaHparams,
        *,
        validation: Task | None = None,
        progress: bool | str = False,
        checkpoint: StateCheckpoint | None = None,
    ) -> MetaResult:
        """Episodes until early stopping or `max_episodes`; see the class docstring.

        Args:
          key: the run's key (meta-steps fold in their index).
          state: a starting `MetaState`, or an `OuterState` to go on from.
          sampler: the task family.
          model_state: non-trained variables, held fixed.
          hparams: the learning rates.
          validation: optional fixed batch of tasks for early stopping.
          progress: progress bar (a string is its label).
          checkpoint: save the state after every episode and resume from the newest one.
        """
        return self._run(
            state,
            lambda current, n: self._episodes(
                current, key, sampler, validation, model_state, hparams, n
            ),
            progress,
            checkpoint,
        )
