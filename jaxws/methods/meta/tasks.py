"""Task families as values: a sampler is a pytree whose `sample(key)` draws a meta-batch of tasks.

A task sampler is any pytree (a `flax.struct.dataclass`) with a static `meta_batch_size` and a
pure method `sample(key) -> Task` returning that many tasks (leading task axis) with their
support and query batches `(inputs, labels, weights)`. Because the sampler is a jit argument,
its arrays (an event pool, task parameters) are inputs of the compiled step, not constants,
and the outer loop (`outer.SampledMetaTrainer`) draws fresh tasks on the device every meta-step
from `fold_in(key, step)`. Two families ship:

- `SinusoidTasks`: regression on y = A sin(x + phi) with A ~ U[0.1, 5], phi ~ U[0, pi],
  x ~ U[-5, 5] (Finn, Abbeel, Levine 2017, arXiv:1703.03400 sec. 5.1): K support and Q query
  points per task, every task new.
- `FiniteTaskSet`: a fixed set of tasks indexed into an event pool (`MemberData` with a leading
  task axis, as the jet-image study builds it, `study.task_family`); each draw picks
  `meta_batch_size` distinct tasks and a random support/query split of each task's training
  events. The jet-image study's episodic loop (`outer.MetaTrainer`: every task once per
  episode, early stopping on the validation events) reads the same set through `gather_tasks`.

A new family is one such dataclass (docs/meta_learning.md, "A new task family").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp

from jaxws.methods.meta.inner import Task
from jaxws.train import MemberData


class TaskSampler(Protocol):
    """What the sampled outer loop needs of a task family."""

    meta_batch_size: int

    def sample(self, key: jax.Array) -> Task:
        """`meta_batch_size` tasks (leading task axis) drawn from `key`."""
        ...


def with_meta_batch_size(sampler: Any, n: int) -> Any:
    """The same family drawing `n` tasks per call (e.g. 1000 test tasks)."""
    return dataclasses.replace(sampler, meta_batch_size=n)


@flax.struct.dataclass
class SinusoidTasks:
    """Sinusoid regression tasks (Finn et al. 2017): y = A sin(x + phi), inputs of shape (n, 1).

    The ranges are pytree leaves (sweeping them does not recompile); the sizes are static.

    Attributes:
      amplitude: (low, high) of the uniform amplitude A.
      phase: (low, high) of the uniform phase phi.
      x_range: (low, high) of the uniform inputs x.
      n_support: K, support points per task.
      n_query: query points per task.
      meta_batch_size: tasks per draw.
    """

    amplitude: tuple = (0.1, 5.0)
    phase: tuple = (0.0, jnp.pi)
    x_range: tuple = (-5.0, 5.0)
    n_support: int = flax.struct.field(pytree_node=False, default=5)
    n_query: int = flax.struct.field(pytree_node=False, default=10)
    meta_batch_size: int = flax.struct.field(pytree_node=False, default=25)

    def __post_init__(self):
        for name in ("n_support", "n_query", "meta_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SinusoidTasks.{name} must be >= 1, got {getattr(self, name)}")

    def sample(self, key: jax.Array) -> Task:
        """`meta_batch_size` new sinusoid tasks: support = first K points, query = the rest."""
        n, k = self.meta_batch_size, self.n_support
        amplitude_key, phase_key, x_key = jax.random.split(key, 3)
        amplitude = jax.random.uniform(amplitude_key, (n, 1), minval=self.amplitude[0],
                                       maxval=self.amplitude[1])  # fmt: skip
        phase = jax.random.uniform(phase_key, (n, 1), minval=self.phase[0], maxval=self.phase[1])
        x = jax.random.uniform(x_key, (n, k + self.n_query, 1), minval=self.x_range[0],
                               maxval=self.x_range[1])  # fmt: skip
        y = amplitude * jnp.sin(x[..., 0] + phase)
        w = jnp.ones_like(y)
        return Task(support=(x[:, :k], y[:, :k], w[:, :k]), query=(x[:, k:], y[:, k:], w[:, k:]))


def gather_tasks(
    pool: Any,
    tasks: MemberData,
    task_ids: jax.Array,
    split_perm: jax.Array,
    n_support: int,
    n_query: int = 0,
) -> Task:
    """Tasks `task_ids` with support/query rows from the per-task permutations `split_perm`.

    Support: the first `n_support` permuted training events; query: the next `n_query`
    (0: all the rest); validation: the task's validation events.
    """
    query_end = n_support + n_query if n_query else None

    def one(t: jax.Array) -> Task:
        perm = split_perm[t]

        def batch(index: jax.Array, labels: jax.Array, weights: jax.Array, rows: jax.Array):
            events = index[t][rows]
            return (jax.tree.map(lambda a: a[events], pool), labels[t][rows], weights[t][rows])

        train = (tasks.train_index, tasks.train_label, tasks.train_weight)
        return Task(
            support=batch(*train, perm[:n_support]),
            query=batch(*train, perm[n_support:query_end]),
            validation=(
                jax.tree.map(lambda a: a[tasks.val_index[t]], pool),
                tasks.val_label[t],
                tasks.val_weight[t],
            ),
        )

    return jax.vmap(one)(task_ids)


def split_sizes(
    n_train: int, support_size: int, query_size: int, support_fraction: float
) -> tuple[int, int]:
    """(support, query) events per task: explicit sizes, else `support_fraction` rounded.

    Raises:
      ValueError: sizes that do not fit in `n_train` training events.
    """
    n_support = support_size or max(1, min(n_train - 1, round(support_fraction * n_train)))
    n_query = query_size or n_train - n_support
    if n_support + n_query > n_train or n_query < 1:
        raise ValueError(
            f"support_size {n_support} + query_size {n_query} exceed the {n_train} training "
            "events per task"
        )
    return n_support, n_query


@flax.struct.dataclass
class FiniteTaskSet:
    """A fixed set of tasks in an event pool; each draw: distinct tasks, fresh splits.

    Attributes:
      pool: events (array or pytree with a leading event axis).
      tasks: `MemberData` with a leading task axis (training events: support + query).
      n_support: support events per task.
      n_query: query events per task.
      meta_batch_size: tasks per draw (<= the number of tasks).
    """

    pool: Any
    tasks: MemberData
    n_support: int = flax.struct.field(pytree_node=False, default=1)
    n_query: int = flax.struct.field(pytree_node=False, default=1)
    meta_batch_size: int = flax.struct.field(pytree_node=False, default=1)

    def sample(self, key: jax.Array) -> Task:
        """`meta_batch_size` distinct tasks, each with a random support/query split."""
        n_tasks, n_train = self.tasks.train_index.shape
        pick_key, split_key = jax.random.split(key)
        ids = jax.random.choice(pick_key, n_tasks, (self.meta_batch_size,), replace=False)
        perms = jax.vmap(lambda k: jax.random.permutation(k, n_train))(
            jax.random.split(split_key, n_tasks)
        )
        return gather_tasks(self.pool, self.tasks, ids, perms, self.n_support, self.n_query)
