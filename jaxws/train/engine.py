"""The ensemble training engine: one model (`fit`) or E independent models at once (`fit_ensemble`).

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

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxws.config import check
from jaxws.data.members import MemberData
from jaxws.hashing import tree_digest
from jaxws.models import layers, partition
from jaxws.train import compile_cache, early_stopping, resume
from jaxws.train.losses import sigmoid_binary_cross_entropy

compile_cache.enable()

LossFn = Callable[[Any, jnp.ndarray], jnp.ndarray]


@flax.struct.dataclass
class Hparams:
    """Per-member numeric hyperparameters (leaves get a leading member axis in ensembles)."""

    learning_rate: jax.Array | float


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static training settings (changing one recompiles).

    Attributes:
      batch_size: minibatch size (Table 2: 500).
      max_epochs: hard cap on epochs.
      patience: epochs without validation improvement before a member stops (Table 2: 30 for
        CWoLa and fine-tuning, 20 for pretraining).
      eval_batch_size: events per forward pass when computing the validation loss.
      min_delta: an improvement must exceed this to reset the patience counter.
      compact_members: in ensembles, once at most half of a chunk's members still train,
        continue with those only (see `Trainer.run`); results are unchanged.
    """

    batch_size: int = 500
    max_epochs: int = 200
    patience: int = 30
    eval_batch_size: int = 2048
    min_delta: float = 0.0
    compact_members: bool = True

    def __post_init__(self):
        check(self.batch_size >= 1, f"training.batch_size must be >= 1, got {self.batch_size}")
        check(self.max_epochs >= 1, f"training.max_epochs must be >= 1, got {self.max_epochs}")
        check(self.patience >= 1, f"training.patience must be >= 1, got {self.patience}")
        check(
            self.eval_batch_size >= 1,
            f"training.eval_batch_size must be >= 1, got {self.eval_batch_size}",
        )
        check(self.min_delta >= 0, f"training.min_delta must be >= 0, got {self.min_delta}")


@flax.struct.dataclass
class FitState:
    params: dict
    model_state: dict
    opt_state: Any
    best_params: dict
    best_model_state: dict
    best_val_loss: jax.Array
    best_epoch: jax.Array
    bad_epochs: jax.Array
    epoch: jax.Array
    done: jax.Array
    train_loss: jax.Array
    val_loss: jax.Array


@flax.struct.dataclass
class FitResult:
    """Outcome of a fit (leading member axis on every leaf for ensembles).

    Attributes:
      variables: the best model variables ({"params": ..., "batch_stats": ...}).
      train_loss, val_loss: per-epoch weighted mean losses, NaN after the member stopped.
      best_epoch: 0-based epoch whose parameters were kept.
      best_val_loss: its validation loss.
      epochs: epochs actually run.
    """

    variables: dict
    train_loss: jax.Array
    val_loss: jax.Array
    best_epoch: jax.Array
    best_val_loss: jax.Array
    epochs: jax.Array


def _gather(pool, index):
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
        self._epoch_vmapped = jax.jit(
            jax.vmap(self.epoch, in_axes=(0, 0, None, 0, 0)), donate_argnums=0
        )
        self._init_single = jax.jit(self.init_variables)
        self._init_vmapped = jax.jit(jax.vmap(self.init_variables, in_axes=(0, None)))
        self._state_single = jax.jit(self.init_state)
        self._state_vmapped = jax.jit(jax.vmap(self.init_state))

    # -- pure functions -------------------------------------------------------------------
    def init_variables(self, key: jax.Array, pool) -> dict:
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

    def _apply_train(self, params, model_state, x, key):
        variables = {"params": params, **model_state}
        mutable = list(model_state)
        if mutable:
            outputs, new_state = self.model.apply(
                variables, x, train=True, rngs={"sample": key}, mutable=mutable
            )
            return outputs, dict(new_state)
        return self.model.apply(variables, x, train=True, rngs={"sample": key}), model_state

    def _weighted_mean_loss(self, outputs, labels, weights):
        losses = self.loss_fn(outputs, labels)
        return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-12)

    def train_step(self, carry, batch, hparams: Hparams):
        """One Adam step on one minibatch; an all-padding batch leaves everything unchanged."""
        params, model_state, opt_state = carry
        x, labels, weights, key = batch
        trainable, frozen = partition.split(params, self.trainable)

        def loss_of(trainable_params):
            full = partition.merge(trainable_params, frozen)
            outputs, new_state = self._apply_train(full, model_state, x, key)
            return self._weighted_mean_loss(outputs, labels, weights), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
        updates, new_opt_state = _adam().update(grads, opt_state, trainable)
        new_trainable = jax.tree.map(lambda p, u: p - hparams.learning_rate * u, trainable, updates)
        new = (partition.merge(new_trainable, frozen), new_state, new_opt_state)
        has_events = jnp.sum(weights) > 0
        return _select(has_events, new, carry), (loss, jnp.sum(weights))

    def evaluate_loss(self, variables: dict, pool, index, labels, weights) -> jax.Array:
        """Weighted mean loss in inference mode, in chunks of `eval_batch_size`."""
        size = min(self.config.eval_batch_size, index.shape[0])
        n_chunks = math.ceil(index.shape[0] / size)
        pad = n_chunks * size - index.shape[0]
        index = jnp.pad(index, (0, pad)).reshape(n_chunks, size)
        labels = jnp.pad(labels, (0, pad)).reshape(n_chunks, size)
        weights = jnp.pad(weights, (0, pad)).reshape(n_chunks, size)

        def chunk_loss(args):
            idx, lab, w = args
            outputs = self.model.apply(variables, _gather(pool, idx), train=False)
            return jnp.sum(self.loss_fn(outputs, lab) * w)

        total = jax.lax.map(chunk_loss, (index, labels, weights)).sum()
        return total / jnp.maximum(jnp.sum(weights), 1e-12)

    def epoch(
        self, state: FitState, key: jax.Array, pool, member: MemberData, hparams: Hparams
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

        def step(carry, batch):
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
        keys,
        pool,
        members,
        hparams,
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

    def _run_ensemble(self, states, keys, pool, members, hparams, bar) -> FitState:
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
            chunk_state = _put_rows(chunk_state, slots[:n_real], states)
            running = slots[:n_real][~done]
            slots = np.concatenate([running, np.full(new_width - active, running[0])])
            n_real, width = active, new_width
            states = shard(_take(chunk_state, slots))
            current = shard(_take(inputs, slots))
        if chunk_state is None:
            return states
        return _put_rows(chunk_state, slots[:n_real], states)


def compact_width(active: int, devices: int = 1) -> int:
    """Members in a compacted chunk: the next power of two >= `active`, a multiple of
    `devices` (so that the set of compiled sizes stays small and shards evenly)."""
    width = 1 << max(0, active - 1).bit_length()
    return math.ceil(width / devices) * devices


def _put_rows(chunk_state, slots, states):
    """Write the first len(slots) rows of `states` into rows `slots` of `chunk_state`."""
    rows = _take(states, np.arange(len(slots)))
    if chunk_state is None and np.array_equal(slots, np.arange(len(slots))):
        return rows
    return jax.tree.map(lambda whole, part: whole.at[slots].set(part), chunk_state, rows)


def member_sharding():
    """Functions that place pytrees on all local devices: (shard the leading member axis,
    replicate). Both are the identity on one device."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return (lambda tree: tree), (lambda tree: tree)
    mesh = jax.sharding.Mesh(np.array(devices), ("members",))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return (
        lambda tree: jax.device_put(tree, split),
        lambda tree: jax.device_put(tree, whole),
    )


@functools.lru_cache(maxsize=16)
def _cached_trainer(model, config, loss_fn, trainable, conv_method) -> Trainer:
    del conv_method  # part of the key only: the convolution form is chosen at trace time
    return Trainer(model, config, loss_fn, trainable)


def trainer_for(
    model: nn.Module,
    config: TrainConfig,
    loss_fn: LossFn = sigmoid_binary_cross_entropy,
    trainable: partition.Predicate = partition.everything,
) -> Trainer:
    """The `Trainer` kept for these arguments (flax modules and configs compare by value,
    functions by identity), so that repeated fits reuse its compiled programs."""
    return _cached_trainer(model, config, loss_fn, trainable, layers.conv_method_override())


def _trainer(trainer, model, config, loss_fn, trainable) -> Trainer:
    if trainer is None:
        return trainer_for(model, config, loss_fn, trainable)
    given = (model, config, loss_fn, trainable)
    kept = (trainer.model, trainer.config, trainer.loss_fn, trainer.trainable)
    if any(a is not b and a != b for a, b in zip(given, kept, strict=True)):
        raise ValueError(
            "`trainer` was built for another model, config, loss_fn or trainable predicate "
            "than the ones passed; pass the same ones or leave `trainer` out"
        )
    return trainer


def _as_device_pool(pool):
    leaves = jax.tree.leaves(pool)
    if not leaves:
        raise ValueError("the data pool is empty")
    n = leaves[0].shape[0]
    for leaf in leaves:
        if leaf.shape[0] != n:
            raise ValueError(f"pool arrays disagree on the number of events: {n} vs {leaf.shape}")
        if np.issubdtype(np.asarray(leaf).dtype, np.floating) and not np.all(
            np.isfinite(np.asarray(leaf))
        ):
            raise ValueError("the data pool contains NaN or inf values")
    return jax.device_put(pool), n


def _check_members(members: MemberData, n_pool: int, batched: bool) -> None:
    def count(w):
        w = np.asarray(w)
        return (w > 0).sum(axis=-1) if batched else np.array([(w > 0).sum()])

    for name, index, weight in (
        ("train", members.train_index, members.train_weight),
        ("validation", members.val_index, members.val_weight),
    ):
        index = np.asarray(index)
        if index.size and (index.min() < 0 or index.max() >= n_pool):
            raise ValueError(f"{name} indices outside the pool of {n_pool} events")
        counts = count(weight)
        if np.any(counts == 0):
            bad = np.flatnonzero(counts == 0).tolist()
            raise ValueError(f"member(s) {bad} have no {name} events with weight > 0")
        w = np.asarray(weight)
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"{name} weights must be finite and >= 0")


def fit(
    key: jax.Array,
    model: nn.Module,
    pool,
    member: MemberData,
    hparams: Hparams,
    config: TrainConfig,
    *,
    loss_fn: LossFn = sigmoid_binary_cross_entropy,
    trainable: partition.Predicate = partition.everything,
    init_variables: dict | None = None,
    trainer: Trainer | None = None,
    progress: bool | str = False,
) -> FitResult:
    """Train one model.

    Args:
      key: typed PRNG key; split into an initialisation key and a training key.
      model: flax module, `__call__(x, train)` -> one output per example.
      pool: events (array or pytree with leading event axis).
      member: this model's train/validation indices, labels and weights.
      hparams: `Hparams` with scalar leaves.
      config: `TrainConfig`.
      loss_fn: per-example loss.
      trainable: which parameters are trained (others stay bit-identical).
      init_variables: start from these variables (e.g. pretrained) instead of a fresh init;
        the initialisation key is then unused.
      trainer: a `Trainer` to use; by default the one `trainer_for` keeps for these
        model, config, loss and predicate, so calls with the same ones reuse its compiled
        programs.
      progress: show a progress bar (a string sets its label).

    Returns:
      `FitResult` with the best (lowest validation loss) variables.
    """
    trainer = _trainer(trainer, model, config, loss_fn, trainable)
    pool, n_pool = _as_device_pool(pool)
    member = jax.tree.map(jnp.asarray, member)
    _check_members(member, n_pool, batched=False)
    init_key, train_key = jax.random.split(key)
    if init_variables is None:
        init_variables = trainer._init_single(init_key, pool)
    state = trainer._state_single(init_variables)
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    state = trainer.run(state, train_key, pool, member, hparams, vmapped=False, progress=progress)
    return trainer.result(state)


def _take(tree, index):
    return jax.tree.map(lambda a: a[index], tree)


def fit_ensemble(
    keys: jax.Array,
    model: nn.Module,
    pool,
    members: MemberData,
    hparams: Hparams,
    config: TrainConfig,
    *,
    chunk_size: int | None = None,
    loss_fn: LossFn = sigmoid_binary_cross_entropy,
    trainable: partition.Predicate = partition.everything,
    init_variables: dict | None = None,
    trainer: Trainer | None = None,
    progress: bool | str = False,
    checkpoint_dir: str | None = None,
) -> FitResult:
    """Train E independent models at once: member i equals `fit(keys[i], ...)` on its inputs.

    Args:
      keys: (E,) typed PRNG keys.
      members: `MemberData` with a leading member axis E on every leaf.
      hparams: `Hparams` whose leaves have a leading member axis E.
      chunk_size: at most this many members are trained together (memory bound); None trains
        all E at once. Chunks are balanced in size, and the last one is padded with copies
        of its first member (discarded) so that every chunk has
        the same shapes and compiles once.
      init_variables: variables with a leading member axis E, or None for fresh inits.
      checkpoint_dir: save each finished chunk there and, when called again with identical
        inputs, load finished chunks instead of retraining them (resume after a crash).
      Other arguments as in `fit`.

    Returns:
      `FitResult` whose leaves have a leading member axis E.
    """
    trainer = _trainer(trainer, model, config, loss_fn, trainable)
    pool, n_pool = _as_device_pool(pool)
    members = jax.tree.map(jnp.asarray, members)
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    n_members = keys.shape[0]
    for name, tree in (
        ("members", members),
        ("hparams", hparams),
        ("init_variables", init_variables),
    ):
        for leaf in jax.tree.leaves(tree):
            if leaf.shape[:1] != (n_members,):
                raise ValueError(
                    f"{name} leaves need a leading member axis of size {n_members}, "
                    f"got shape {leaf.shape}"
                )
    _check_members(members, n_pool, batched=True)
    chunk = n_members if chunk_size is None else max(1, min(chunk_size, n_members))
    # Balance the chunks (25 members at chunk_size 20 -> 2 chunks of 13, not 20 + 5 padded to 20).
    chunk = math.ceil(n_members / math.ceil(n_members / chunk))
    # With several devices the member axis is sharded: a chunk is a multiple of their number.
    chunk = math.ceil(chunk / jax.local_device_count()) * jax.local_device_count()
    split_keys = jax.vmap(jax.random.split)(keys)
    init_keys, train_keys = split_keys[:, 0], split_keys[:, 1]
    init_fn, state_fn = trainer._init_vmapped, trainer._state_vmapped
    results = []
    n_chunks = math.ceil(n_members / chunk)
    pool_digest = tree_digest(pool) if checkpoint_dir is not None else None
    for c in range(n_chunks):
        index = np.arange(c * chunk, min((c + 1) * chunk, n_members))
        padded = np.concatenate([index, np.full(chunk - len(index), index[0])])
        if checkpoint_dir is not None:
            tag = tree_digest(
                repr(trainer.model),
                repr(trainer.config),
                trainer.loss_fn.__qualname__,
                trainer.trainable.__qualname__,
                keys[index],
                _take(members, index),
                _take(hparams, index),
                None if init_variables is None else _take(init_variables, index),
                pool_digest,
            )
            kept = np.arange(len(index))
            template = jax.eval_shape(
                lambda k, kept=kept: _take(trainer.result(state_fn(init_fn(k, pool))), kept),
                init_keys[padded],
            )
            restored = resume.load_chunk(checkpoint_dir, c, tag, template)
            if restored is not None:
                results.append(jax.tree.map(jnp.asarray, restored))
                continue
        if init_variables is None:
            variables = init_fn(init_keys[padded], pool)
        else:
            variables = _take(init_variables, padded)
        states = state_fn(variables)
        label = progress if isinstance(progress, str) else "ensemble"
        states = trainer.run(
            states,
            train_keys[padded],
            pool,
            _take(members, padded),
            _take(hparams, padded),
            vmapped=True,
            progress=f"{label} chunk {c + 1}/{n_chunks}" if progress else False,
        )
        results.append(_take(trainer.result(states), np.arange(len(index))))
        if checkpoint_dir is not None:
            resume.save_chunk(checkpoint_dir, c, tag, results[-1])
    return jax.tree.map(lambda *parts: jnp.concatenate(parts, axis=0), *results)


def predict(model: nn.Module, variables: dict, x, batch_size: int = 2048) -> jax.Array:
    """Model outputs in inference mode for every event of `x`, in chunks of `batch_size`."""
    return _predict_fn(model, batch_size, layers.conv_method_override())(variables, x)


def predict_ensemble(model: nn.Module, variables: dict, x, batch_size: int = 2048) -> jax.Array:
    """(E, N) outputs of E members (variables with a leading member axis) on shared `x`."""
    return _predict_ensemble_fn(model, batch_size, layers.conv_method_override())(variables, x)


def _predict_impl(model: nn.Module, batch_size: int):
    def impl(variables, x):
        n = jax.tree.leaves(x)[0].shape[0]
        size = min(batch_size, n)
        n_chunks = math.ceil(n / size)
        pad = n_chunks * size - n

        def reshape(a):
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
            return a.reshape(n_chunks, size, *a.shape[1:])

        chunks = jax.tree.map(reshape, x)
        outputs = jax.lax.map(lambda c: model.apply(variables, c, train=False), chunks)
        return outputs.reshape(n_chunks * size)[:n]

    return impl


# Cached per (module, batch size, convolution override): flax modules are hashable
# dataclasses, so repeated predictions with the same architecture reuse one compiled program.
@functools.lru_cache(maxsize=32)
def _predict_fn(model: nn.Module, batch_size: int, conv_method: str | None):
    return jax.jit(_predict_impl(model, batch_size))


@functools.lru_cache(maxsize=32)
def _predict_ensemble_fn(model: nn.Module, batch_size: int, conv_method: str | None):
    return jax.jit(jax.vmap(_predict_impl(model, batch_size), in_axes=(0, None)))
