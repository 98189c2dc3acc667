"""`fit` and `fit_ensemble`: the jit and the chunked vmap (or `lax.map`) of `learner.train`.

`fit` is `jax.jit(learner.train)` (in blocks of epochs on the host when a progress bar is
shown); `fit_ensemble` trains chunks of members with `Trainer.run`, which runs the same
`learner.start` and `learner.run_epochs` vmapped or mapped over members, compacting or
refilling a chunk as members stop, sharded over local devices, each chunk saved and resumed
through `resume.map_chunks`, the chunk's rows chosen from a memory budget unless given.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxws.data.members import MemberData
from jaxws.hashing import tree_digest
from jaxws.models import layers, partition
from jaxws.train import learner, memory, resume
from jaxws.train.chunks import compact_width, take
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.state import FitResult, FitState, Hparams, LossFn, Pool, TrainConfig
from jaxws.train.trainer import Trainer


@functools.lru_cache(maxsize=16)
def _cached_trainer(
    model: nn.Module,
    config: TrainConfig,
    loss_fn: LossFn,
    trainable: partition.Predicate,
    conv_method: str | None,
    optimizer: learner.Optimizer,
) -> Trainer:
    del conv_method  # part of the key only: the convolution form is chosen at trace time
    return Trainer(model, config, loss_fn, trainable, optimizer)


def trainer_for(
    model: nn.Module,
    config: TrainConfig,
    loss_fn: LossFn = sigmoid_binary_cross_entropy,
    trainable: partition.Predicate = partition.everything,
    optimizer: learner.Optimizer = learner.keras_adam,
) -> Trainer:
    """The `Trainer` kept for these arguments, so that repeated fits reuse its compiled programs.

    Flax modules and configs compare by value, functions by identity.
    """
    override = layers.conv_method_override()
    return _cached_trainer(model, config, loss_fn, trainable, override, optimizer)


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
    """Train one model: `jax.jit(learner.train)` on checked inputs.

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
      progress: show a progress bar (a string sets its label); the epochs then run in blocks
        of `config.epochs_per_block` on the host, with the same results.

    Returns:
      `FitResult` with the best (lowest validation loss) variables.
    """
    trainer = _trainer(trainer, model, config, loss_fn, trainable)
    pool, n_pool = _as_device_pool(pool)
    member = jax.tree.map(jnp.asarray, member)
    _check_members(member, n_pool, batched=False)
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    if not progress:
        state, _ = trainer.train_program(key, pool, member, hparams, init_variables)
        return learner.result(state)
    state = trainer.start_single(key, pool, hparams, init_variables)
    train_key = learner.split_key(key)[1]
    state = trainer.run(state, train_key, pool, member, hparams, vmapped=False, progress=progress)
    return learner.result(state)


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
      config: as in `fit`; `config.queue_members` more members per chunk wait to take the
        rows of stopped members.
      chunk_size: at most this many members are trained together (the rows of a chunk);
        None takes as many as fit `config.memory_budget_gb` (`memory.chunk_rows`). Chunks
        are balanced in size, and a short one is padded with copies of its first member
        (discarded) so that every chunk has the same shapes and compiles once.
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
    if chunk_size is None:
        chunk_size = memory.chunk_rows(trainer, pool, take(members, 0), n_members)
    rows = max(1, min(chunk_size, n_members))
    # Balance the chunks (25 members at chunk_size 20 -> 2 chunks of 13, not 20 + 5 padded to 20).
    rows = math.ceil(n_members / math.ceil(n_members / rows))
    # With several devices the member axis is sharded: the rows are a multiple of their number.
    rows = math.ceil(rows / jax.local_device_count()) * jax.local_device_count()
    # A chunk's members: its rows, then those queued to take the rows of stopped members.
    chunk = min(rows + config.queue_members, n_members)
    init_keys = jax.vmap(lambda k: learner.split_key(k)[0])(keys)
    train_keys = jax.vmap(lambda k: learner.split_key(k)[1])(keys)
    n_chunks = math.ceil(n_members / chunk)
    label = progress if isinstance(progress, str) else "ensemble"

    def start(index: np.ndarray) -> FitState:
        """Fresh states of members `index`, compiled for a power-of-two number of them."""
        padded = np.concatenate([index, np.full(compact_width(len(index)) - len(index), index[0])])
        variables = None if init_variables is None else take(init_variables, padded)
        states = trainer.start_members(keys[padded], pool, take(hparams, padded), variables)
        return take(states, np.arange(len(index)))

    def train_chunk(index: np.ndarray) -> FitResult:
        padded = np.concatenate([index, np.full(max(rows - len(index), 0), index[0])])
        states = trainer.run(
            start(padded[:rows]),
            train_keys[padded],
            pool,
            take(members, padded),
            take(hparams, padded),
            vmapped=True,
            progress=f"{label} chunk {index[0] // chunk + 1}/{n_chunks}" if progress else False,
            start_rows=lambda new: start(padded[new]),
        )
        return take(learner.result(states), np.arange(len(index)))

    def result_shape(index: np.ndarray) -> FitResult:
        one = jax.eval_shape(
            lambda k, h: learner.result(learner.start(trainer.spec, k, pool, h)),
            init_keys[0],
            take(hparams, 0),
        )
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct((len(index), *a.shape), a.dtype), one)

    fingerprint = None
    if checkpoint_dir is not None:
        # The trainable predicate enters as the set of parameters it selects (a lambda's name
        # says nothing), the loss and the optimizer by their code; settings that only steer
        # the host loop do not enter; members' inputs per chunk, so that a change to one
        # member's inputs retrains only its chunk.
        shapes = jax.eval_shape(lambda k: learner.init_variables(trainer.spec, k, pool), keys[0])
        trainable_paths = sorted(partition.split(shapes["params"], trainer.trainable)[0])
        shared = tree_digest(
            repr(trainer.model),
            repr(_numeric_settings(trainer.config)),
            resume.function_digest(trainer.loss_fn),
            resume.function_digest(trainer.optimizer),
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


def _numeric_settings(config: TrainConfig) -> TrainConfig:
    """`config` without the settings that steer only the host loop.

    Results do not depend on them, so changing them reuses saved chunks.
    """
    return dataclasses.replace(
        config, compact_members=True, epochs_per_block=1, queue_members=0, memory_budget_gb=None
    )
