"""Meta-gradient estimators: how one task's adaptation becomes a gradient for the outer update.

Each estimator is a function with the `Estimator` signature; it returns the gradient with
the structure of `(meta-trained flat params, extra)` (see `inner.split_outer`) and the task's
query loss (which ranks tasks for the hard-task meta-batch).

- `second_order`: the exact gradient of the query loss after adaptation w.r.t. the outer
  parameters, through the whole inner loop (MAML, Finn et al. 2017, arXiv:1703.03400).
- `first_order`: the same with the inner gradients held constant: the query gradient at the
  adapted parameters applied to the starting ones (first-order MAML; arXiv:2312.06152 eq. 7).
- `reptile`: no query loss is differentiated; the gradient is the difference between the
  starting and the adapted parameters, the support and query halves both used for
  adaptation (Nichol, Achiam, Schulman 2018, arXiv:1803.02999). With the "sgd" outer
  optimizer and outer_lr = epsilon this is Reptile exactly; "adam" rescales it.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp

from jaxws.methods.meta.config import MetaHparams
from jaxws.methods.meta.inner import (
    InnerProblem,
    LearnerParts,
    MetaState,
    Task,
    adapt,
    merge_outer,
    split_outer,
)
from jaxws.models import partition


class Estimator(Protocol):
    """The meta-gradient of one task: `(grads, query loss)`."""

    def __call__(
        self,
        problem: InnerProblem,
        learner: LearnerParts,
        state: MetaState,
        model_state: dict,
        task: Task,
        hparams: MetaHparams,
        key: jax.Array,
    ) -> tuple[Any, jax.Array]:
        """`(grads, query loss)` of one task (grads shaped like `split_outer`'s first part)."""
        ...


def _through_adaptation(first_order: bool) -> Estimator:
    def query_loss(
        problem: InnerProblem,
        learner: LearnerParts,
        outer: tuple[dict, dict],
        frozen: dict,
        model_state: dict,
        task: Task,
        hparams: MetaHparams,
        key: jax.Array,
    ) -> jax.Array:
        start = merge_outer(outer, frozen)
        params = adapt(
            problem, learner, start, model_state, task.support, hparams, key,
            first_order=first_order,
        )  # fmt: skip
        return problem.task_loss(params, model_state, task.query)

    def estimate(
        problem: InnerProblem,
        learner: LearnerParts,
        state: MetaState,
        model_state: dict,
        task: Task,
        hparams: MetaHparams,
        key: jax.Array,
    ) -> tuple[Any, jax.Array]:
        outer, frozen = split_outer(learner, state)
        loss, grads = jax.value_and_grad(query_loss, argnums=2)(
            problem, learner, outer, frozen, model_state, task, hparams, key
        )
        return grads, loss

    estimate.__name__ = estimate.__qualname__ = "first_order" if first_order else "second_order"
    # The meta-loss itself: a loop that averages tasks with equal weights may differentiate the
    # mean of the meta-batch's losses once (one backward pass, as hand-written MAML does)
    # instead of averaging per-task gradients (`outer.SampledMetaTrainer`); same gradient.
    estimate.query_loss = query_loss
    return estimate


second_order: Estimator = _through_adaptation(first_order=False)
first_order: Estimator = _through_adaptation(first_order=True)


def reptile(
    problem: InnerProblem,
    learner: LearnerParts,
    state: MetaState,
    model_state: dict,
    task: Task,
    hparams: MetaHparams,
    key: jax.Array,
) -> tuple[Any, jax.Array]:
    """Reptile's meta-gradient: starting minus adapted parameters (adapted on support + query)."""
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), task.support, task.query)
    adapted = adapt(problem, learner, state, model_state, both, hparams, key)
    adapted = jax.lax.stop_gradient(adapted)
    loss = problem.task_loss(adapted, model_state, task.query)
    (start, extra), _ = split_outer(learner, state)
    end, _ = partition.split(adapted, learner.meta_trained)
    grads = {k: start[k] - end[k] for k in start}
    return (grads, jax.tree.map(jnp.zeros_like, extra)), loss


DIFFERENTIATING = (second_order, first_order)
