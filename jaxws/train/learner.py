"""One pure training function: a static learner spec and `train(spec, key, pool, member, hparams)`.

The shape follows purejaxrl's `make_train` and evosax's spec / params / state split:
- `Learner` is the static, hashable spec: the model, the per-example loss, the optimizer as a
  factory of per-member hyperparameters, the trainable mask and the schedule with its
  early-stopping settings (`TrainConfig`). Changing any of it recompiles.
- `Hparams` are numbers (pytree leaves): a learning-rate sweep is one compiled program.
- `FitState` holds everything that changes, early stopping included (`done`, `bad_epochs`,
  the best variables so far), so a run can be cut into blocks of epochs anywhere.

`train(spec, key, pool, member, hparams) -> (state, history)` is the whole fit of one model as
a pure function: `jax.jit` of it is a solo fit, `jax.vmap` (or `lax.map`) of it an ensemble.
The host drivers (`jaxws.train.trainer.Trainer.run`, used by `fit` and `fit_ensemble`) run the
same `start` and `run_epochs` in blocks of epochs, only to show progress, to end as soon as
every member is done, and to compact or refill an ensemble chunk between blocks; their results
equal `train`'s (tests/train/test_learner.py).

Keys: `key` splits into an initialisation key and a training key; epoch e draws from
`fold_in(training key, e)`, so a run cut into blocks, or resumed, draws the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TypeAlias

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxws.data.members import MemberData
from jaxws.models import partition
from jaxws.train import early_stopping, flops, loop
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.state import FitResult, FitState, Hparams, LossFn, Pool, TrainConfig

# What a train step updates: (params, model_state, opt_state).
Carry: TypeAlias = tuple[dict, dict, optax.OptState]
Optimizer: TypeAlias = Callable[[Hparams], optax.GradientTransformation]

_select = early_stopping.select


def keras_adam(hparams: Hparams) -> optax.GradientTransformation:
    """Adam with Keras' defaults (b1 0.9, b2 0.999, eps 1e-7) as in arXiv:2312.06152.

    The learning rate is the member's `hparams.learning_rate` (a traced leaf, not a constant).
    """
    return optax.chain(
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7),
        optax.scale(-hparams.learning_rate),
    )


@dataclasses.dataclass(frozen=True)
class Learner:
    """What is trained and how: the static part of a fit (hashable; changing it recompiles).

    Attributes:
      model: a flax module with `__call__(x, train)` returning one output per example.
      config: `TrainConfig` (batch size, epochs, early-stopping patience and min_delta).
      loss_fn: per-example loss `(outputs, labels) -> (B,)`; the engine weights and reduces.
      trainable: predicate on parameter paths (`jaxws.models.partition`); the others are
        frozen (neither differentiated nor updated).
      optimizer: maps a member's `Hparams` to an optax transformation whose updates are added
        to the parameters (`keras_adam` by default).

    Flax modules and configs compare by value, functions by identity.
    """

    model: nn.Module
    config: TrainConfig
    loss_fn: LossFn = sigmoid_binary_cross_entropy
    trainable: partition.Predicate = partition.everything
    optimizer: Optimizer = keras_adam


@flax.struct.dataclass
class History:
    """Per-epoch weighted mean losses of one fit, shape (max_epochs,), NaN for epochs not run."""

    train_loss: jax.Array
    val_loss: jax.Array


def _gather(pool: Pool, index: jax.Array):
    return jax.tree.map(lambda a: a[index], pool)


def init_variables(spec: Learner, key: jax.Array, pool: Pool) -> dict:
    """Fresh model variables from `key` (shapes from one pool event)."""
    example = jax.tree.map(lambda a: a[:1], pool)
    params_key, sample_key = jax.random.split(key)
    return spec.model.init({"params": params_key, "sample": sample_key}, example, train=False)


def init_state(spec: Learner, variables: dict, hparams: Hparams) -> FitState:
    """Training state from model variables (fresh or pretrained)."""
    variables = dict(variables)
    params = variables.pop("params")
    trainable, _ = partition.split(params, spec.trainable)
    if not trainable:
        raise ValueError("no trainable parameters: the `trainable` predicate selects nothing")
    n = spec.config.max_epochs
    return FitState(
        params=params,
        model_state=variables,
        opt_state=spec.optimizer(hparams).init(trainable),
        best_params=params,
        best_model_state=variables,
        best_val_loss=jnp.array(jnp.inf, jnp.float32),
        best_epoch=jnp.array(-1, jnp.int32),
        bad_epochs=jnp.array(0, jnp.int32),
        epoch=jnp.array(0, jnp.int32),
        done=jnp.array(False),
        train_loss=jnp.full((n,), jnp.nan, jnp.float32),
        val_loss=jnp.full((n,), jnp.nan, jnp.float32),
    )


def _apply_train(spec: Learner, params: dict, model_state: dict, x: Pool, key: jax.Array):
    variables = {"params": params, **model_state}
    mutable = list(model_state)
    if mutable:
        outputs, new_state = spec.model.apply(
            variables, x, train=True, rngs={"sample": key}, mutable=mutable
        )
        return outputs, dict(new_state)
    return spec.model.apply(variables, x, train=True, rngs={"sample": key}), model_state


def _weighted_mean(losses: jax.Array, weights: jax.Array) -> jax.Array:
    return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def train_step(
    spec: Learner,
    carry: Carry,
    batch: tuple[Pool, jax.Array, jax.Array, jax.Array],
    hparams: Hparams,
) -> tuple[Carry, tuple[jax.Array, jax.Array]]:
    """One optimizer step on one minibatch; an all-padding batch leaves everything unchanged.

    Args:
      spec: the `Learner`.
      carry: (params, model_state, opt_state) before the step.
      batch: (inputs, labels, weights, key) of one minibatch; weight 0 marks padding.
      hparams: this member's hyperparameters (scalar leaves).

    Returns:
      The new carry, and (weighted mean loss before the step, total weight).
    """
    params, model_state, opt_state = carry
    x, labels, weights, key = batch
    trainable, frozen = partition.split(params, spec.trainable)

    def loss_of(trainable_params: dict):
        full = partition.merge(trainable_params, frozen)
        outputs, new_state = _apply_train(spec, full, model_state, x, key)
        return _weighted_mean(spec.loss_fn(outputs, labels), weights), new_state

    (loss, new_state), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
    updates, new_opt_state = spec.optimizer(hparams).update(grads, opt_state, trainable)
    new_trainable = optax.apply_updates(trainable, updates)
    new = (partition.merge(new_trainable, frozen), new_state, new_opt_state)
    has_events = jnp.sum(weights) > 0
    return _select(has_events, new, carry), (loss, jnp.sum(weights))


def step_flops(spec: Learner, state: FitState, pool: Pool, hparams: Hparams) -> float:
    """FLOPs of one member's training step: its matrix products and convolutions.

    Counted from the step's jaxpr (`jaxws.train.flops`), the same on every backend; nothing
    is compiled or run.

    Args:
      spec: the `Learner` (its `config.batch_size` sets the minibatch).
      state: one member's state, or its shapes (`jax.ShapeDtypeStruct` leaves).
      pool: the data pool, or its shapes; only the per-event shapes are used.
      hparams: one member's hyperparameters, or their shapes.

    Returns:
      FLOPs of the step (a multiply-add counts 2).
    """
    batch = spec.config.batch_size
    shape = lambda a: jax.ShapeDtypeStruct(jnp.shape(a), a.dtype)
    x = jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch, *a.shape[1:]), a.dtype), pool)
    vector = jax.ShapeDtypeStruct((batch,), jnp.float32)
    key = jax.eval_shape(lambda: jax.random.key(0))
    carry = jax.tree.map(shape, (state.params, state.model_state, state.opt_state))
    step = lambda c, b, h: train_step(spec, c, b, h)
    return flops.flops(step, carry, (x, vector, vector, key), jax.tree.map(shape, hparams))


def evaluate_loss(
    spec: Learner,
    variables: dict,
    pool: Pool,
    index: jax.Array,
    labels: jax.Array,
    weights: jax.Array,
) -> jax.Array:
    """Weighted mean loss in inference mode, in chunks of `config.eval_batch_size`."""
    size = min(spec.config.eval_batch_size, index.shape[0])
    n_chunks = math.ceil(index.shape[0] / size)
    pad = n_chunks * size - index.shape[0]
    index = jnp.pad(index, (0, pad)).reshape(n_chunks, size)
    labels = jnp.pad(labels, (0, pad)).reshape(n_chunks, size)
    weights = jnp.pad(weights, (0, pad)).reshape(n_chunks, size)

    def chunk_loss(args: tuple[jax.Array, jax.Array, jax.Array]):
        idx, lab, w = args
        outputs = spec.model.apply(variables, _gather(pool, idx), train=False)
        return jnp.sum(spec.loss_fn(outputs, lab) * w)

    total = jax.lax.map(chunk_loss, (index, labels, weights)).sum()
    return total / jnp.maximum(jnp.sum(weights), 1e-12)


def epoch(
    spec: Learner,
    state: FitState,
    key: jax.Array,
    pool: Pool,
    member: MemberData,
    hparams: Hparams,
) -> FitState:
    """One epoch for one member: shuffle, scan over minibatches, validate, early-stop.

    `key` is this member's training key; the epoch's randomness is `fold_in(key, epoch)`.
    A member that is done is returned unchanged (a select, so that it also holds per member
    under `vmap`).
    """
    config = spec.config
    epoch_key = jax.random.fold_in(key, state.epoch)
    shuffle_key, step_key = jax.random.split(epoch_key)
    n_train = member.train_index.shape[0]
    batch_size = min(config.batch_size, n_train)
    n_batches = math.ceil(n_train / batch_size)
    # Real events first, in random order; padding (weight 0) last.
    noise = jax.random.uniform(shuffle_key, (n_train,))
    order = jnp.argsort(jnp.where(member.train_weight > 0, noise, 2.0))
    pad = n_batches * batch_size - n_train
    order = jnp.pad(order, (0, pad))
    weights = jnp.pad(member.train_weight[order[:n_train]], (0, pad))
    batches = (
        member.train_index[order].reshape(n_batches, batch_size),
        member.train_label[order].reshape(n_batches, batch_size),
        weights.reshape(n_batches, batch_size),
        jax.random.split(step_key, n_batches),
    )

    def step(carry: Carry, batch: tuple[jax.Array, jax.Array, jax.Array, jax.Array]):
        index, labels, w, k = batch
        return train_step(spec, carry, (_gather(pool, index), labels, w, k), hparams)

    (params, model_state, opt_state), (losses, sizes) = jax.lax.scan(
        step, (state.params, state.model_state, state.opt_state), batches
    )
    train_loss = _weighted_mean(losses, sizes)
    val_loss = evaluate_loss(
        spec,
        {"params": params, **model_state},
        pool,
        member.val_index,
        member.val_label,
        member.val_weight,
    )
    progress = early_stopping.update(
        val_loss,
        state.best_val_loss,
        state.best_epoch,
        state.bad_epochs,
        state.epoch,
        min_delta=config.min_delta,
        patience=config.patience,
        max_steps=config.max_epochs,
        keep_last=not config.early_stopping,
    )
    new = FitState(
        params=params,
        model_state=model_state,
        opt_state=opt_state,
        best_params=_select(progress.improved, params, state.best_params),
        best_model_state=_select(progress.improved, model_state, state.best_model_state),
        best_val_loss=progress.best_loss,
        best_epoch=progress.best_step,
        bad_epochs=progress.bad_steps,
        epoch=state.epoch + 1,
        done=progress.done,
        train_loss=state.train_loss.at[state.epoch].set(train_loss),
        val_loss=state.val_loss.at[state.epoch].set(val_loss),
    )
    return _select(state.done, state, new)


def run_epochs(
    spec: Learner,
    state: FitState,
    key: jax.Array,
    pool: Pool,
    member: MemberData,
    hparams: Hparams,
    epochs: int,
) -> FitState:
    """Up to `epochs` more epochs, fewer if the member stops (`loop.steps`).

    Under `vmap` the loop runs while any member trains and stopped members stay frozen (the
    select in `epoch`); under `lax.map` each member's loop ends when it stops.
    """
    one_epoch = lambda current: epoch(spec, current, key, pool, member, hparams)
    return loop.steps(one_epoch, state, epochs, lambda current: current.done)


def split_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(initialisation key, training key) of a fit's key."""
    init_key, train_key = jax.random.split(key)
    return init_key, train_key


def start(
    spec: Learner,
    key: jax.Array,
    pool: Pool,
    hparams: Hparams,
    variables: dict | None = None,
) -> FitState:
    """The state before the first epoch: fresh variables from `key`, or `variables` as given."""
    if variables is None:
        variables = init_variables(spec, split_key(key)[0], pool)
    return init_state(spec, variables, hparams)


def history(state: FitState) -> History:
    """The loss curves of a state."""
    return History(train_loss=state.train_loss, val_loss=state.val_loss)


def train(
    spec: Learner,
    key: jax.Array,
    pool: Pool,
    member: MemberData,
    hparams: Hparams,
    variables: dict | None = None,
) -> tuple[FitState, History]:
    """A whole fit of one model as a pure function: init, then epochs until early stopping.

    Args:
      spec: the `Learner` (static: pass it with `functools.partial` or as a static argument).
      key: typed PRNG key, split into an initialisation and a training key (`split_key`).
      pool: events (array or pytree with a leading event axis), shared by all members.
      member: this model's train/validation indices, labels and weights (`MemberData`).
      hparams: `Hparams` with scalar leaves.
      variables: start from these variables (e.g. pretrained) instead of a fresh init.

    Returns:
      (final `FitState`, `History`); `result(state)` holds the best variables.
    """
    state = start(spec, key, pool, hparams, variables)
    state = run_epochs(
        spec, state, split_key(key)[1], pool, member, hparams, spec.config.max_epochs
    )
    return state, history(state)


def result(state: FitState) -> FitResult:
    """The `FitResult` of a state: its best variables and its loss history."""
    return FitResult(
        variables={"params": state.best_params, **state.best_model_state},
        train_loss=state.train_loss,
        val_loss=state.val_loss,
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val_loss,
        epochs=state.epoch,
    )
