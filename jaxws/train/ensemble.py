"""`fit` and `fit_ensemble`: chunks of members on the `Trainer`, compacted, sharded, resumable."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxws.data.members import MemberData
from jaxws.hashing import tree_digest
from jaxws.models import layers, partition
from jaxws.train import resume
from jaxws.train.chunks import take
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.state import FitResult, Hparams, LossFn, Pool, TrainConfig
from jaxws.train.trainer import Trainer


@functools.lru_cache(maxsize=16)
def _cached_trainer(
    model: nn.Module,
    config: TrainConfig,
    loss_fn: LossFn,
    trainable: partition.Predicate,
    conv_method: str | None,
) -> Trainer:
    del conv_method  # part of the key only: the convolution form is chosen at trace time
    return Trainer(model, config, loss_fn, trainable)


def trainer_for(
    model: nn.Module,
    config: TrainConfig,
    loss_fn: LossFn = sigmoid_binary_cross_entropy,
    trainable: partition.Predicate = partition.everything,
) -> Trainer:
    """The `Trainer` kept for these arguments, so that repeated fits reuse its compiled programs.

    Flax modules and configs compare by value, functions by identity.
    """
    return _cached_trainer(model, config, loss_fn, trainable, layers.conv_method_override())


def _trainer(
    trainer: Trainer | None,
    model: nn.Module,
    config: TrainConfig,
    loss_fn: LossFn,
    trainable: partition.Predicate,
) -> Trainer:
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


def _as_device_pool(pool: Pool):
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
    def count(w: jax.Array):
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
    pool: Pool,
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


def fit_ensemble(
    keys: jax.Array,
    model: nn.Module,
    pool: Pool,
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
      model: as in `fit`.
      pool: as in `fit` (shared by all members).
      members: `MemberData` with a leading member axis E on every leaf.
      hparams: `Hparams` whose leaves have a leading member axis E.
      config: as in `fit`.
      chunk_size: at most this many members are trained together (memory bound); None trains
        all E at once. Chunks are balanced in size, and the last one is padded with copies
        of its first member (discarded) so that every chunk has
        the same shapes and compiles once.
      loss_fn: as in `fit`.
      trainable: as in `fit`.
      init_variables: variables with a leading member axis E, or None for fresh inits.
      trainer: as in `fit`.
      progress: as in `fit` (one bar per chunk).
      checkpoint_dir: save each finished chunk there and, when called again with identical
        inputs, load finished chunks instead of retraining them (resume after a crash).

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
    n_chunks = math.ceil(n_members / chunk)
    label = progress if isinstance(progress, str) else "ensemble"

    def train_chunk(index: np.ndarray) -> FitResult:
        padded = np.concatenate([index, np.full(chunk - len(index), index[0])])
        if init_variables is None:
            variables = init_fn(init_keys[padded], pool)
        else:
            variables = take(init_variables, padded)
        states = trainer.run(
            state_fn(variables),
            train_keys[padded],
            pool,
            take(members, padded),
            take(hparams, padded),
            vmapped=True,
            progress=f"{label} chunk {index[0] // chunk + 1}/{n_chunks}" if progress else False,
        )
        return take(trainer.result(states), np.arange(len(index)))

    def result_shape(index: np.ndarray) -> FitResult:
        kept = np.arange(len(index))
        return jax.eval_shape(
            lambda k: take(trainer.result(state_fn(init_fn(k, pool))), kept),
            init_keys[np.full(chunk, index[0])],
        )

    fingerprint = None
    if checkpoint_dir is not None:
        # The trainable predicate enters as the set of parameters it selects (a lambda's name
        # says nothing), the loss by its code; members' inputs per chunk, so that a change to
        # one member's inputs retrains only its chunk.
        shapes = jax.eval_shape(lambda k: init_fn(k, pool), init_keys[:1])
        trainable_paths = sorted(partition.split(shapes["params"], trainer.trainable)[0])
        shared = tree_digest(
            repr(trainer.model),
            repr(trainer.config),
            resume.function_digest(trainer.loss_fn),
            repr(trainable_paths),
            pool,
        )

        def fingerprint(index: np.ndarray) -> str:
            return tree_digest(
                shared,
                keys[index],
                take(members, index),
                take(hparams, index),
                None if init_variables is None else take(init_variables, index),
            )

    results = resume.map_chunks(
        train_chunk,
        n_members,
        chunk,
        directory=checkpoint_dir,
        fingerprint=fingerprint or "",
        template=result_shape,
    )
    return jax.tree.map(jnp.asarray, results)
