"""The inner problem of meta-learning: a task's loss and base learning (arXiv:2312.06152 eq. 6).

Base learning is plain gradient descent on the parameters a learner adapts: either
`inner_steps` full-batch steps on a task's whole support set (the few-shot protocol of MAML,
Finn et al. 2017: one step, no shuffling) or `inner_epochs` epochs over the support set in
shuffled minibatches (the jet-image study), with a step size given by the learner's
inner step-size rule: the inner learning rate beta for every parameter (`plain_step_size`),
or one meta-learned rate per parameter entry (`learned_step_sizes`, Meta-SGD, Li et al. 2017,
arXiv:1707.09835). With `first_order=True` the inner gradients are constants
(`stop_gradient`), so a meta-gradient taken through `adapt` is first-order MAML's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import flax
import jax
import jax.numpy as jnp

from jaxws.methods.meta.config import MetaConfig, MetaHparams
from jaxws.models import partition
from jaxws.train.losses import sigmoid_binary_cross_entropy

ApplyFn = Callable[[dict, dict, Any], jax.Array]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]
Batch = tuple[Any, jax.Array, jax.Array]  # (inputs, labels, weights)
UNROLLED_INNER_STEPS = 5  # full-batch inner steps written out; more become a scan


@flax.struct.dataclass
class MetaState:
    """What the outer loop learns: model parameters and learner-specific extras.

    Attributes:
      params: the model's parameter tree.
      extra: meta-parameters of the inner step-size rule (Meta-SGD: `{"inner_lr": rates}`,
        keyed by parameter path); {} for a plain step size.
    """

    params: dict
    extra: dict


@flax.struct.dataclass
class Task:
    """One task's data for one meta-step (or a batch of tasks, with a leading task axis).

    Attributes:
      support: `(inputs, labels, weights)` that base learning adapts on.
      query: the events of the meta-loss.
      validation: events of the early-stopping loss of the episodic loop
        (`early_stopping_on` "updated" / "adapted"); None where nothing uses them.
    """

    support: Batch
    query: Batch
    validation: Batch | None = None


@dataclasses.dataclass(frozen=True)
class InnerProblem:
    """The network a learner adapts, its per-example loss and the base-learning settings.

    Attributes:
      apply_fn: `(params, model_state, x) -> outputs` in inference mode (batch-norm running
        statistics fixed), one output per example.
      loss_fn: per-example loss `(outputs, labels) -> (B,)`.
      inner_epochs: epochs of base learning over the support set (when `inner_steps` is 0).
      inner_batch_size: minibatch size of base learning (when `inner_steps` is 0).
      inner_steps: > 0: base learning is this many full-batch gradient steps on the whole
        support set, in order, no shuffling (MAML's few-shot protocol: 1); 0: `inner_epochs`
        epochs of shuffled minibatches of `inner_batch_size`.
    """

    apply_fn: ApplyFn
    loss_fn: LossFn = sigmoid_binary_cross_entropy
    inner_epochs: int = 3
    inner_batch_size: int = 500
    inner_steps: int = 0

    def __post_init__(self):
        if self.inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {self.inner_steps}")

    @classmethod
    def from_config(
        cls, apply_fn: ApplyFn, config: MetaConfig, loss_fn: LossFn = sigmoid_binary_cross_entropy
    ) -> InnerProblem:
        """The inner problem of `apply_fn` with the base-learning settings of `config`."""
        return cls(
            apply_fn, loss_fn, config.inner_epochs, config.inner_batch_size, config.inner_steps
        )

    def task_loss(self, params: dict, model_state: dict, batch: Batch) -> jax.Array:
        """Weighted mean loss of `params` on a batch."""
        x, labels, weights = batch
        losses = self.loss_fn(self.apply_fn(params, model_state, x), labels)
        return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


class StepSizeRule(NamedTuple):
    """How base learning chooses its step size (an optax-style pair of functions).

    Attributes:
      init: `(adapted flat params, hparams) -> extra`: the rule's meta-parameters.
      rates: `(extra, hparams) -> step size`: a scalar, or a flat dict like the adapted params.
    """

    init: Callable[[dict, MetaHparams], dict]
    rates: Callable[[dict, MetaHparams], Any]


def _no_meta_parameters(adapted: dict, hparams: MetaHparams) -> dict:
    return {}


def _inner_lr(extra: dict, hparams: MetaHparams) -> jax.Array | float:
    return hparams.inner_lr


def _rates_from_inner_lr(adapted: dict, hparams: MetaHparams) -> dict:
    return {
        "inner_lr": {k: jnp.full(v.shape, hparams.inner_lr, v.dtype) for k, v in adapted.items()}
    }


def _learned_rates(extra: dict, hparams: MetaHparams) -> dict:
    return extra["inner_lr"]


def plain_step_size() -> StepSizeRule:
    """The inner learning rate beta for every adapted parameter (eq. 6)."""
    return StepSizeRule(init=_no_meta_parameters, rates=_inner_lr)


def learned_step_sizes() -> StepSizeRule:
    """Meta-SGD: one meta-learned rate per adapted parameter entry, initialised to beta."""
    return StepSizeRule(init=_rates_from_inner_lr, rates=_learned_rates)


class LearnerParts(Protocol):
    """What base learning and the estimators read of a learner (`learners.MetaLearner`)."""

    adapted: partition.Predicate
    meta_trained: partition.Predicate
    step_size: StepSizeRule


def split_outer(learner: LearnerParts, state: MetaState) -> tuple[tuple[dict, dict], dict]:
    """The outer update's parameters `(meta-trained flat params, extra)` and the frozen rest."""
    trainable, frozen = partition.split(state.params, learner.meta_trained)
    return (trainable, state.extra), frozen


def merge_outer(outer: tuple[dict, dict], frozen: dict) -> MetaState:
    """Inverse of `split_outer`."""
    trainable, extra = outer
    return MetaState(params=partition.merge(trainable, frozen), extra=extra)


def adapt(
    problem: InnerProblem,
    learner: LearnerParts,
    state: MetaState,
    model_state: dict,
    support: Batch,
    hparams: MetaHparams,
    key: jax.Array,
    *,
    first_order: bool = False,
) -> dict:
    """Base learning (eq. 6): gradient descent on the support set.

    `problem.inner_steps` > 0: that many full-batch steps (the key is not used); otherwise
    `problem.inner_epochs` epochs of shuffled minibatches.

    Args:
      problem: the network, loss and base-learning settings.
      learner: says which parameters adapt (`adapted`) and the step-size rule.
      state: the meta-state adapted from.
      model_state: non-trained variables, held fixed.
      support: the support batch `(inputs, labels, weights)`.
      hparams: the learning rates.
      key: shuffles the minibatches of each epoch.
      first_order: treat the inner gradients as constants.

    Returns:
      The adapted parameter tree (only `adapted` parameters differ from `state.params`).
    """
    adapted, fixed = partition.split(state.params, learner.adapted)
    step_size = learner.step_size.rates(state.extra, hparams)
    x, labels, weights = support

    def descend(adapted_params: dict, grads: dict) -> dict:
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        if isinstance(step_size, dict):
            return {k: p - step_size[k] * grads[k] for k, p in adapted_params.items()}
        return jax.tree.map(lambda p, g: p - step_size * g, adapted_params, grads)

    if problem.inner_steps > 0:
        # Full batch: no permutation, no gather; a handful of steps is unrolled (fast to
        # compile and run), more are a scan.
        def full_batch(adapted_params: dict, _: Any = None) -> tuple[dict, None]:
            grads = jax.grad(
                lambda a: problem.task_loss(partition.merge(a, fixed), model_state, support)
            )(adapted_params)
            return descend(adapted_params, grads), None

        if problem.inner_steps <= UNROLLED_INNER_STEPS:
            for _ in range(problem.inner_steps):
                adapted, _ = full_batch(adapted)
        else:
            adapted, _ = jax.lax.scan(full_batch, adapted, length=problem.inner_steps)
        return partition.merge(adapted, fixed)

    n = labels.shape[0]
    batch_size = min(problem.inner_batch_size, n)
    n_batches = math.ceil(n / batch_size)
    pad = n_batches * batch_size - n

    def loss_of(adapted_params: dict, batch: Batch) -> jax.Array:
        return problem.task_loss(partition.merge(adapted_params, fixed), model_state, batch)

    def step(adapted_params: dict, index_and_weight: tuple) -> tuple[dict, None]:
        index, w = index_and_weight
        batch = (jax.tree.map(lambda a: a[index], x), labels[index], weights[index] * w)
        return descend(adapted_params, jax.grad(loss_of)(adapted_params, batch)), None

    # All epochs' minibatches in one scan (a nested scan compiles much more slowly).
    epochs = problem.inner_epochs
    orders = jax.vmap(lambda k: jnp.pad(jax.random.permutation(k, n), (0, pad)))(
        jax.random.split(key, epochs)
    )
    valid = jnp.broadcast_to(jnp.pad(jnp.ones((n,), labels.dtype), (0, pad)), (epochs, n + pad))
    n_steps = epochs * n_batches
    batches = (orders.reshape(n_steps, batch_size), valid.reshape(n_steps, batch_size))
    adapted, _ = jax.lax.scan(step, adapted, batches)
    return partition.merge(adapted, fixed)
