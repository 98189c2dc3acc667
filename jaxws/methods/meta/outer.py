"""The outer loop shared by every meta-learner (arXiv:2312.06152 sec. 5, eq. 7).

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
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxws.methods.meta.config import MetaConfig, MetaHparams
from jaxws.methods.meta.inner import InnerProblem, MetaState, Task, adapt, merge_outer, split_outer
from jaxws.methods.meta.learners import MetaLearner, outer_step
from jaxws.train import MemberData, early_stopping, loop


@flax.struct.dataclass
class OuterState:
    """The outer loop's carry between episodes (best state kept by select)."""

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
    """

    state: MetaState
    history: jax.Array
    best_episode: jax.Array
    episodes: jax.Array


def gather_tasks(
    pool: Any, tasks: MemberData, task_ids: jax.Array, split_perm: jax.Array, n_support: int
) -> Task:
    """Tasks `task_ids` with support/query rows from the per-task permutations `split_perm`."""

    def one(t: jax.Array) -> Task:
        perm = split_perm[t]

        def batch(index: jax.Array, labels: jax.Array, weights: jax.Array, rows: jax.Array):
            events = index[t][rows]
            return (jax.tree.map(lambda a: a[events], pool), labels[t][rows], weights[t][rows])

        train = (tasks.train_index, tasks.train_label, tasks.train_weight)
        return Task(
            support=batch(*train, perm[:n_support]),
            query=batch(*train, perm[n_support:]),
            validation=(
                jax.tree.map(lambda a: a[tasks.val_index[t]], pool),
                tasks.val_label[t],
                tasks.val_weight[t],
            ),
        )

    return jax.vmap(one)(task_ids)


class MetaTrainer:
    """The jitted episode of one learner on one inner problem (reuse it to avoid recompiling).

    Args:
      learner: the learner, with `configure(learner, config)` already applied.
      problem: the network, loss and base-learning settings.
      config: the outer loop's settings.
    """

    def __init__(self, learner: MetaLearner, problem: InnerProblem, config: MetaConfig):
        self.learner = learner
        self.problem = problem
        self.config = config
        self._episodes = jax.jit(self.episodes, static_argnums=6)

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
        hardest = jnp.argsort(-jnp.nan_to_num(query_losses, nan=-jnp.inf))[:width]
        hardest = jnp.pad(hardest, (0, width - hardest.shape[0]), constant_values=n_tasks)
        hard_mask = (jnp.arange(width) < n_hard).astype(mask.dtype)
        ids = jnp.where(is_hard, jnp.where(hard_mask > 0, hardest, n_tasks), ids)
        mask = jnp.where(is_hard, hard_mask, mask)
        split_perm = jnp.where(is_hard, split_perms[1], split_perms[0])
        task = gather_tasks(pool, tasks, jnp.minimum(ids, n_tasks - 1), split_perm, n_support)
        grad_keys, eval_keys = jnp.split(jax.random.split(key, 2 * width), 2)
        estimate = jax.vmap(learner.estimator, in_axes=(None, None, None, None, 0, None, 0))
        grads, losses = estimate(problem, learner, state, model_state, task, hparams, grad_keys)
        weight = mask / jnp.maximum(mask.sum(), 1.0)
        grads = jax.tree.map(lambda g: jnp.tensordot(weight, g, axes=1), grads)
        outer, frozen = split_outer(learner, state)
        outer, opt_state = outer_step(learner, outer, opt_state, grads, hparams.outer_lr)
        state = merge_outer(outer, frozen)
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
        n_support = max(1, min(n_train - 1, round(config.support_fraction * n_train)))
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

    def episodes(
        self,
        outer: OuterState,
        key: jax.Array,
        pool: Any,
        tasks: MemberData,
        model_state: dict,
        hparams: MetaHparams,
        n: int,
    ) -> OuterState:
        """Up to `n` more episodes, fewer once early stopping ends the loop (`loop.steps`)."""
        step = lambda current: self.episode(current, key, pool, tasks, model_state, hparams)
        return loop.steps(step, outer, n, lambda current: current.done)

    def init(self, state: MetaState) -> OuterState:
        """The outer loop's starting carry from the learner's initial meta-state."""
        outer, _ = split_outer(self.learner, state)
        opt_state: optax.OptState = self.learner.outer_optimizer.init(outer)
        return OuterState(
            state=state,
            opt_state=opt_state,
            best_state=state,
            best_loss=jnp.array(jnp.inf, jnp.float32),
            best_episode=jnp.array(-1, jnp.int32),
            bad_episodes=jnp.array(0, jnp.int32),
            episode=jnp.array(0, jnp.int32),
            done=jnp.array(False),
            history=jnp.full((self.config.max_episodes,), jnp.nan, jnp.float32),
        )

    def run(
        self,
        key: jax.Array,
        state: MetaState,
        pool: Any,
        tasks: MemberData,
        model_state: dict,
        hparams: MetaHparams,
        progress: bool | str = False,
    ) -> MetaResult:
        """Episodes until early stopping; returns the best meta-state."""
        outer = loop.run(
            lambda current, n: self._episodes(current, key, pool, tasks, model_state, hparams, n),
            self.init(state),
            done=lambda current: bool(current.done),
            position=lambda current: int(current.episode),
            total=self.config.max_episodes,
            progress=progress,
            desc="meta-train",
        )
        return MetaResult(
            state=outer.best_state,
            history=outer.history,
            best_episode=outer.best_episode,
            episodes=outer.episode,
        )
