"""The host driver of the training engine: `Trainer` runs `jaxws.train.learner` in blocks of epochs.

The training itself is one pure function, `jaxws.train.learner.train(spec, key, pool, member,
hparams)`; this module only compiles its parts once per `Learner` and drives them from the
host. `jaxws.train.ensemble` holds `fit` and `fit_ensemble`, `jaxws.train.state` the settings
and results, `jaxws.train.predict` inference.

Design (STYLE.md; purejaxrl, learned_optimization):
- Data sit once on the device as a *pool* (array or pytree, leading event axis). A member sees
  its events through index sets with labels and weights (`MemberData`); ragged sizes are
  padded with weight 0, so every member has the same shapes and E members are one `vmap`.
- A block of epochs is `learner.run_epochs`, jitted: a `lax.while_loop` over epochs, each a
  `lax.scan` over minibatches of a fresh per-member permutation, then the validation loss and
  the early-stopping bookkeeping. Members that have stopped are frozen by a select on their
  `done` flag inside the compiled code, so each member's result equals its solo run
  (`fit_ensemble(keys)[i] == fit(keys[i])`) and `train`'s.
- The loop over blocks runs on the host (`Trainer.run`): it shows a progress bar, ends as soon
  as every member is done, and never logs from inside jit. Between blocks it refills or
  compacts an ensemble chunk: a row whose member has stopped takes the next pending member of
  the chunk (`refill`), and once nothing is pending and at most half of the rows still train,
  the running ones continue in a chunk of the next power of two (`compact_width`), so stopped
  members stop costing compute (a bounded set of compiled sizes; each member's result is
  unchanged, being a pure function of its own inputs).
- Compile once: `fit` and `fit_ensemble` use the `Trainer` that `trainer_for` keeps per
  `Learner`, so repeated calls reuse its compiled programs; a block donates its input state;
  the persistent compilation cache is switched on when `jaxws.train` is imported.
- With more than one local device the member axis is sharded over all of them
  (`member_sharding`, one mesh axis); the data pool is replicated.
- Optimiser: `Learner.optimizer`, Adam with Keras' defaults by default (`learner.keras_adam`);
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

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxws.data.members import MemberData
from jaxws.models import partition
from jaxws.train import learner
from jaxws.train.chunks import compact_width, member_sharding, take
from jaxws.train.learner import Carry, Learner, keras_adam
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.state import FitState, Hparams, LossFn, Pool, TrainConfig

# Fresh states for chunk slots: maps slot indices (into the chunk's members) to their states.
StartRows = Callable[[np.ndarray], FitState]


def _one_member(tree: Any) -> Any:
    """Shapes of one member of a tree with a leading member axis."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), tree)


class Trainer:
    """A `Learner` with its compiled programs, and the host loop over blocks of epochs.

    Args:
      model: a flax module with `__call__(x, train)` returning one output per example.
      config: `TrainConfig`.
      loss_fn: per-example loss `(outputs, labels) -> (B,)`.
      trainable: predicate on parameter paths (see `jaxws.models.partition`); others frozen.
      optimizer: factory of an optax transformation from a member's `Hparams`.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        loss_fn: LossFn = sigmoid_binary_cross_entropy,
        trainable: partition.Predicate = partition.everything,
        optimizer: learner.Optimizer = keras_adam,
    ):
        self.spec = Learner(model, config, loss_fn, trainable, optimizer)
        spec = self.spec
        self.train_program = jax.jit(functools.partial(learner.train, spec))
        # The state is donated: each block's new state reuses the previous one's buffers.
        self._block_single = jax.jit(
            functools.partial(learner.run_epochs, spec), static_argnums=5, donate_argnums=0
        )
        self._block_members_program = None  # built on first use: see `_block_members`
        self.memory_estimates = {}  # `jaxws.train.memory.chunk_rows`'s, per data shapes
        self._step_flops = {}  # `learner.step_flops` per event shape (`member_map`)
        # Counters of the ensemble host loop, over all runs: rows x epochs of the blocks
        # computed (an upper bound under `lax.map`, whose members stop inside a block), and
        # members that took a stopped member's row.
        self.row_epochs = 0
        self.refilled = 0
        self.start_single = jax.jit(functools.partial(learner.start, spec))
        self.start_members = jax.jit(
            jax.vmap(functools.partial(learner.start, spec), in_axes=(0, None, 0, 0))
        )

    model = property(lambda self: self.spec.model)
    config = property(lambda self: self.spec.config)
    loss_fn = property(lambda self: self.spec.loss_fn)
    trainable = property(lambda self: self.spec.trainable)
    optimizer = property(lambda self: self.spec.optimizer)

    # -- the pure functions, bound to this spec ---------------------------------------------
    def init_variables(self, key: jax.Array, pool: Pool) -> dict:
        """Fresh model variables from `key` (shapes from one pool event)."""
        return learner.init_variables(self.spec, key, pool)

    def init_state(self, variables: dict, hparams: Hparams | None = None) -> FitState:
        """Training state from model variables.

        `hparams` may be left out when the optimizer's state does not depend on them (Adam's
        does not).
        """
        if hparams is None:
            hparams = Hparams(learning_rate=jnp.float32(0.0))
        return learner.init_state(self.spec, variables, hparams)

    def train_step(
        self, carry: Carry, batch: tuple[Pool, jax.Array, jax.Array, jax.Array], hparams: Hparams
    ) -> tuple[Carry, tuple[jax.Array, jax.Array]]:
        """`learner.train_step` with this spec."""
        return learner.train_step(self.spec, carry, batch, hparams)

    def evaluate_loss(
        self, variables: dict, pool: Pool, index: jax.Array, labels: jax.Array, weights: jax.Array
    ) -> jax.Array:
        """`learner.evaluate_loss` with this spec."""
        return learner.evaluate_loss(self.spec, variables, pool, index, labels, weights)

    def epoch(
        self, state: FitState, key: jax.Array, pool: Pool, member: MemberData, hparams: Hparams
    ) -> FitState:
        """`learner.epoch` with this spec."""
        return learner.epoch(self.spec, state, key, pool, member, hparams)

    result = staticmethod(learner.result)

    # -- compiled blocks ----------------------------------------------------------------------
    def _block_members(
        self,
        states: FitState,
        keys: jax.Array,
        pool: Pool,
        members: MemberData,
        hparams: Hparams,
        epochs: int,
    ) -> FitState:
        """A block of epochs of a chunk of members (leading axis), compiled on first use.

        Whether members are vmapped or `lax.map`ped (`TrainConfig.member_map`) may depend on
        the network: see `member_map`.
        """
        if self._block_members_program is None:
            one = lambda tree: jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), tree
            )
            mode = self.member_map(one(states), pool, one(hparams))
            self._block_members_program = jax.jit(
                self.members_block(mode), static_argnums=5, donate_argnums=0
            )
        return self._block_members_program(states, keys, pool, members, hparams, epochs)

    def member_map(self, state: FitState, pool: Pool, hparams: Hparams) -> str:
        """How members share a compiled epoch ("vmap" or "map"), decided for this network.

        Args:
          state: one member's state (no member axis), or its shapes.
          pool: the data pool, or its shapes.
          hparams: one member's hyperparameters, or their shapes.
        """
        convolutional = any(len(leaf.shape) >= 4 for leaf in jax.tree.leaves(state.params))
        flops = None
        accelerator = jax.default_backend() != "cpu" and jax.local_device_count() == 1
        if self.config.member_map == "auto" and convolutional and accelerator:
            # Traced once per event shape (the memory estimate and the block both ask).
            shapes = tuple((a.shape[1:], str(a.dtype)) for a in jax.tree.leaves(pool))
            if shapes not in self._step_flops:
                self._step_flops[shapes] = learner.step_flops(self.spec, state, pool, hparams)
            flops = self._step_flops[shapes]
        return self.config.resolved_member_map(convolutional, flops)

    def members_block(self, member_map: str) -> Callable:
        """`learner.run_epochs` over a leading member axis: "vmap"ped or `lax.map`ped."""
        block = functools.partial(learner.run_epochs, self.spec)
        if member_map == "vmap":
            return jax.vmap(block, in_axes=(0, 0, None, 0, 0, None))

        def mapped(states, keys, pool, members, hparams, epochs):  # noqa: ANN001
            return jax.lax.map(
                lambda args: block(args[0], args[1], pool, args[2], args[3], epochs),
                (states, keys, members, hparams),
            )

        return mapped

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
        start_rows: StartRows | None = None,
    ) -> FitState:
        """Run blocks of `config.epochs_per_block` epochs until every member is done.

        With `vmapped`, every leaf has a leading member axis. `keys`, `members` and `hparams`
        may then hold more members than `states` has rows (a queue): row r starts as member r,
        and a row whose member has stopped takes the next
        pending member, its state from `start_rows([index])`. Once no member is pending,
        `config.compact_members` is set and at most half of the rows still train, the finished
        ones are set aside and the others go on in a chunk of `compact_width` rows (the next
        power of two, padded with copies of a running member). Each member's epochs are the
        same pure function of its own inputs either way. With more than one local device the
        member axis is sharded over all of them.

        Returns:
          The final states of all members (of every member in `keys`, in their order).
        """
        # A block donates its state: work on copies, never on the caller's buffers.
        states = jax.tree.map(jnp.copy, states)
        desc = progress if isinstance(progress, str) else "training"
        total = self.config.max_epochs
        if vmapped and keys.shape[0] > jax.tree.leaves(states)[0].shape[0]:
            total = None  # a queue: the number of blocks is not known in advance
        with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
            if not vmapped:
                block = self.config.epochs_per_block
                while not bool(jax.device_get(states.done)):
                    states = self._block_single(states, keys, pool, members, hparams, block)
                    bar.update(block)
                return states
            return self._run_ensemble(states, keys, pool, members, hparams, bar, start_rows)

    def _run_ensemble(
        self,
        states: FitState,
        keys: jax.Array,
        pool: Pool,
        members: MemberData,
        hparams: Hparams,
        bar: tqdm,
        start_rows: StartRows | None,
    ) -> FitState:
        config = self.config
        shard, replicate = member_sharding()
        pool = replicate(pool)
        inputs = (keys, members, hparams)
        n_members = keys.shape[0]
        width = jax.tree.leaves(states)[0].shape[0]
        if n_members > width and start_rows is None:
            raise ValueError("more members than rows (a queue) need start_rows")
        slots = np.arange(width)  # row r of `states` is member slots[r]
        n_real = width  # rows past n_real are padding copies
        pending = list(range(width, n_members))  # members not started yet, in order
        finished = None  # every member's final state, once rows are reused or set aside
        states, current = shard(states), shard(_take(inputs, slots))
        while True:
            keys_now, members_now, hparams_now = current
            states = self._block_members(
                states, keys_now, pool, members_now, hparams_now, config.epochs_per_block
            )
            done = np.array(jax.device_get(states.done))[:n_real]
            bar.update(config.epochs_per_block)
            self.row_epochs += width * config.epochs_per_block
            if pending and done.any():
                # Refill: each stopped row takes the next pending member from its first epoch.
                rows = np.flatnonzero(done)[: len(pending)].astype(np.int32)
                finished = put_rows(
                    _members_axis(finished, states, n_members), slots[rows], _take(states, rows)
                )
                new = np.array(pending[: len(rows)])
                del pending[: len(rows)]
                self.refilled += len(rows)
                slots = slots.copy()
                slots[rows] = new
                states = shard(_set_rows(states, rows, start_rows(new)))
                current = shard(_take(inputs, slots))
                done[rows] = False
            active = int(np.sum(~done))
            bar.set_postfix(active=active, pending=len(pending))
            if active == 0:
                break
            new_width = compact_width(active, jax.local_device_count())
            if pending or not (
                config.compact_members and active <= width // 2 and new_width < width
            ):
                continue
            finished = put_rows(_members_axis(finished, states, n_members), slots[:n_real], states)
            running = slots[:n_real][~done]
            slots = np.concatenate([running, np.full(new_width - active, running[0])])
            n_real, width = active, new_width
            states = shard(_take(finished, slots))
            current = shard(_take(inputs, slots))
        if finished is None:
            return states
        return put_rows(finished, slots[:n_real], states)


def _members_axis(finished: FitState | None, states: FitState, n_members: int) -> FitState:
    """`finished`, or a first all-members state (rows copied from `states[0]`) to write into."""
    if finished is not None:
        return finished
    return _take(states, np.zeros(n_members, np.int32))


# Rows moved between a chunk's states as one compiled program each (one per number of rows),
# not one eager gather or scatter per leaf: for small networks those dominated compaction.
_take = jax.jit(take)


@jax.jit
def _set_rows(states: FitState, rows: jax.Array, new: FitState) -> FitState:
    """`states` with rows `rows` replaced by the first len(rows) rows of `new`."""
    return jax.tree.map(lambda whole, part: whole.at[rows].set(part[: rows.shape[0]]), states, new)


def put_rows(finished: FitState, slots: np.ndarray, states: FitState) -> FitState:
    """Rows `slots` of `finished` set to the first len(slots) rows of `states`."""
    return _set_rows(finished, np.asarray(slots, np.int32), states)
