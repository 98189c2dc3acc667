"""The ensemble training engine: one model (`fit`) or E independent models at once (`fit_ensemble`).

This module holds the compiled epoch (`Trainer`); `jaxws.train.ensemble` the fit functions,
`jaxws.train.state` the settings and results, `jaxws.train.predict` inference.

Design (STYLE.md; purejaxrl, learned_optimization):
- Data sit once on the device as a *pool* (array or pytree, leading event axis). A member sees
  its events through index sets with labels and weights (`MemberData`); ragged sizes are
  padded with weight 0, so every member has the same shapes and E members are one `vmap`.
- One epoch is a pure, jitted function of (state, key, pool, member, hparams): a `lax.scan`
  over minibatches of a fresh per-member permutation, then the validation loss, then
  early-stopping bookkeeping. Members that have stopped are frozen by a select on their `done`
  flag inside the compiled code, so the ensemble keeps running until its last member stops
  and each member's result equals its solo run (`fit_ensemble(keys)[i] == fit(keys[i])`).
- The epoch loop itself runs on the host: it shows a progress bar, ends as soon as every
  member is done, and never logs from inside jit. Between epochs it compacts an ensemble
  chunk: once at most half of its members still train, the others are set aside and the
  running ones continue in a chunk of the next power of two (`compact_width`), so stopped
  members stop costing compute (a bounded set of compiled sizes; each member's result is
  unchanged, being a pure function of its own inputs).
- Compile once: `fit` and `fit_ensemble` use the `Trainer` that `trainer_for` keeps per
  (model, config, loss, trainable predicate), so repeated calls reuse its compiled programs;
  the epoch donates its input state; the persistent compilation cache is switched on when
  this module is imported (`jaxws.train.compile_cache`).
- With more than one local device the member axis is sharded over all of them
  (`member_sharding`, one mesh axis); the data pool is replicated.
- Optimiser: Adam with Keras' defaults (b1 0.9, b2 0.999, eps 1e-7) as in arXiv:2312.06152;
  the learning rate is a per-member pytree leaf (`Hparams`), so a learning-rate sweep is one
  compiled program.
- Early stopping as Keras' EarlyStopping(patience) + ModelCheckpoint(save_best_only): stop
  after `patience` epochs without a validation-loss improvement; the best parameters are
  returned (the paper keeps the best model).
- Freezing: only parameters selected by `trainable` are differentiated and updated, the rest
  are bit-identical after training (no gradient flows into a frozen feature extractor, which
  also saves its backward pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeAlias

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxws.data.members import MemberData
from jaxws.models import partition
from jaxws.train import early_stopping
from jaxws.train.chunks import compact_width, member_sharding, put_rows, take
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.state import FitResult, FitState, Hparams, LossFn, Pool, TrainConfig

# What a train step updates: (params, model_state, opt_state).
Carry: TypeAlias = tuple[dict, dict, optax.OptState]


def _gather(pool: Pool, index: jax.Array):
    return jax.tree.map(lambda a: a[index], pool)


_select = early_stopping.select


def _adam():
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)


class Trainer:
    """A model, a loss and static settings; builds the pure per-epoch functions.

    Args:
      model: a flax module with `__call__(x, train)` returning one output per example.
      config: `TrainConfig`.
      loss_fn: per-example loss `(outputs, labels) -> (B,)`.
      trainable: predicate on parameter paths (see `jaxws.models.partition`); others frozen.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        loss_fn: LossFn = sigmoid_binary_cross_entropy,
        trainable: partition.Predicate = partition.everything,
    ):
        self.model = model
        self.config = config
        self.loss_fn = loss_fn
        self.trainable = trainable
        # The state is donated: each epoch's new state reuses the previous one's buffers.
        self._epoch_single = jax.jit(self.epoch, donate_argnums=0)
        self._epoch_vmapped_program = None  # built on first use: see `_epoch_vmapped`
        self._init_single = jax.jit(self.init_variables)
        self._init_vmapped = jax.jit(jax.vmap(self.init_variables, in_axes=(0, None)))
        self._state_single = jax.jit(self.init_state)
        self._state_vmapped = jax.jit(jax.vmap(self.init_state))

    # -- pure functions -------------------------------------------------------------------
    def _epoch_vmapped(
        self, states: FitState, keys: jax.Array, pool: Pool, members: MemberData, hparams: Hparams
    ) -> FitState:
        """One epoch of a chunk of members (leading axis), compiled on first use.

        Whether members are vmapped or `lax.map`ped (`TrainConfig.member_map`) may depend on
        the network: "auto" maps convolutional networks (a 4-d kernel among the parameters) on
        a one-device CPU.
        """
        if self._epoch_vmapped_program is None:
            convolutional = any(np.ndim(leaf) >= 5 for leaf in jax.tree.leaves(states.params))
            self._epoch_vmapped_program = jax.jit(
                self._members_epoch(convolutional), donate_argnums=0
            )
        return self._epoch_vmapped_program(states, keys, pool, members, hparams)

    def _members_epoch(self, convolutional: bool) -> Callable:
        """The epoch over a leading member axis: vmapped or `lax.map`ped (`member_map`)."""
        if self.config.resolved_member_map(convolutional) == "vmap":
            return jax.vmap(self.epoch, in_axes=(0, 0, None, 0, 0))

        def mapped(states, keys, pool, members, hparams):  # noqa: ANN001
            return jax.lax.map(
                lambda args: self.epoch(args[0], args[1], pool, args[2], args[3]),
                (states, keys, members, hparams),
            )

        return mapped

    def init_variables(self, key: jax.Array, pool: Pool) -> dict:
        """Fresh model variables from `key` (shapes from one pool event)."""
        example = jax.tree.map(lambda a: a[:1], pool)
        params_key, sample_key = jax.random.split(key)
        return self.model.init({"params": params_key, "sample": sample_key}, example, train=False)

    def init_state(self, variables: dict) -> FitState:
        """Training state from model variables (fresh or pretrained)."""
        variables = dict(variables)
        params = variables.pop("params")
        trainable, _ = partition.split(params, self.trainable)
        if not trainable:
            raise ValueError("no trainable parameters: the `trainable` predicate selects nothing")
        n = self.config.max_epochs
        return FitState(
            params=params,
            model_state=variables,
            opt_state=_adam().init(trainable),
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

    def _apply_train(self, params: dict, model_state: dict, x: Pool, key: jax.Array):
        variables = {"params": params, **model_state}
        mutable = list(model_state)
        if mutable:
            outputs, new_state = self.model.apply(
                variables, x, train=True, rngs={"sample": key}, mutable=mutable
            )
            return outputs, dict(new_state)
        return self.model.apply(variables, x, train=True, rngs={"sample": key}), model_state

    def _weighted_mean_loss(self, outputs: jax.Array, labels: jax.Array, weights: jax.Array):
        losses = self.loss_fn(outputs, labels)
        return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-12)

    def train_step(
        self,
        carry: Carry,
        batch: tuple[Pool, jax.Array, jax.Array, jax.Array],
        hparams: Hparams,
    ) -> tuple[Carry, tuple[jax.Array, jax.Array]]:
        """One Adam step on one minibatch; an all-padding batch leaves everything unchanged.

        Args:
            carry: (params, model_state, opt_state) before the step.
            batch: (inputs, labels, weights, key) of one minibatch; weight 0 marks padding.
            hparams: this member's hyperparameters (scalar leaves).

        Returns:
            The new carry, and (weighted mean loss before the step, total weight).
        """
        params, model_state, opt_state = carry
        x, labels, weights, key = batch
        trainable, frozen = partition.split(params, self.trainable)

        def loss_of(trainable_params: dict):
            full = partition.merge(trainable_params, frozen)
            outputs, new_state = self._apply_train(full, model_state, x, key)
            return self._weighted_mean_loss(outputs, labels, weights), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
        updates, new_opt_state = _adam().update(grads, opt_state, trainable)
        new_trainable = jax.tree.map(lambda p, u: p - hparams.learning_rate * u, trainable, updates)
        new = (partition.merge(new_trainable, frozen), new_state, new_opt_state)
        has_events = jnp.sum(weights) > 0
        return _select(has_events, new, carry), (loss, jnp.sum(weights))

    def evaluate_loss(
        self,
        variables: dict,
        pool: Pool,
        index: jax.Array,
        labels: jax.Array,
        weights: jax.Array,
    ) -> jax.Array:
        """Weighted mean loss in inference mode, in chunks of `eval_batch_size`."""
        size = min(self.config.eval_batch_size, index.shape[0])
        n_chunks = math.ceil(index.shape[0] / size)
        pad = n_chunks * size - index.shape[0]
        index = jnp.pad(index, (0, pad)).reshape(n_chunks, size)
        labels = jnp.pad(labels, (0, pad)).reshape(n_chunks, size)
        weights = jnp.pad(weights, (0, pad)).reshape(n_chunks, size)

        def chunk_loss(args: tuple[jax.Array, jax.Array, jax.Array]):
            idx, lab, w = args
            outputs = self.model.apply(variables, _gather(pool, idx), train=False)
            return jnp.sum(self.loss_fn(outputs, lab) * w)

        total = jax.lax.map(chunk_loss, (index, labels, weights)).sum()
        return total / jnp.maximum(jnp.sum(weights), 1e-12)

    def epoch(
        self, state: FitState, key: jax.Array, pool: Pool, member: MemberData, hparams: Hparams
    ) -> FitState:
        """One epoch for one member: shuffle, scan over minibatches, validate, early-stop.

        `key` is this member's training key; the epoch's randomness is `fold_in(key, epoch)`
        so that a resumed run draws the same numbers.
        """
        config = self.config
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
            return self.train_step(carry, (_gather(pool, index), labels, w, k), hparams)

        (params, model_state, opt_state), (losses, sizes) = jax.lax.scan(
            step, (state.params, state.model_state, state.opt_state), batches
        )
        train_loss = jnp.sum(losses * sizes) / jnp.maximum(jnp.sum(sizes), 1e-12)
        val_loss = self.evaluate_loss(
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

    @staticmethod
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

    # -- host drivers ---------------------------------------------------------------------
    def run(
        self,
        states: FitState,
        keys: jax.Array,
        pool: Pool,
        members: MemberData,
        hparams: Hparams,
        vmapped: bool,
        progress: bool | str = False,
    ) -> FitState:
        """Run epochs until every member is done (host loop over a jitted epoch).

        With `vmapped`, every leaf has a leading member axis. When `config.compact_members`
        is set and at most half of the members still train, the finished ones are set aside
        and the others go on in a chunk of `compact_width` members (the next power of two,
        padded with copies of a running member), so stopped members stop costing compute;
        each member's epochs are the same pure function of its own inputs either way. With
        more than one local device the member axis is sharded over all of them.
        """
        # The epoch donates its state: work on copies, never on the caller's buffers.
        states = jax.tree.map(jnp.copy, states)
        desc = progress if isinstance(progress, str) else "training"
        with tqdm(
            total=self.config.max_epochs, desc=desc, disable=not progress, leave=False
        ) as bar:
            if not vmapped:
                while not bool(jax.device_get(states.done)):
                    states = self._epoch_single(states, keys, pool, members, hparams)
                    bar.update(1)
                return states
            return self._run_ensemble(states, keys, pool, members, hparams, bar)

    def _run_ensemble(
        self,
        states: FitState,
        keys: jax.Array,
        pool: Pool,
        members: MemberData,
        hparams: Hparams,
        bar: tqdm,
    ) -> FitState:
        shard, replicate = member_sharding()
        pool = replicate(pool)
        inputs = (keys, members, hparams)
        width = keys.shape[0]
        slots = np.arange(width)  # row r of `states` is member slots[r] of the chunk
        n_real = width  # rows past n_real are padding copies
        chunk_state = None  # the whole chunk's states, once compaction has begun
        states, current = shard(states), shard(inputs)
        while True:
            states = self._epoch_vmapped(states, current[0], pool, current[1], current[2])
            done = np.asarray(jax.device_get(states.done))[:n_real]
            active = int(np.sum(~done))
            bar.update(1)
            bar.set_postfix(active=active)
            if active == 0:
                break
            new_width = compact_width(active, jax.local_device_count())
            if not (self.config.compact_members and active <= width // 2 and new_width < width):
                continue
            chunk_state = put_rows(chunk_state, slots[:n_real], states)
            running = slots[:n_real][~done]
            slots = np.concatenate([running, np.full(new_width - active, running[0])])
            n_real, width = active, new_width
            states = shard(take(chunk_state, slots))
            current = shard(take(inputs, slots))
        if chunk_state is None:
            return states
        return put_rows(chunk_state, slots[:n_real], states)
