"""Memory of an ensemble epoch, to choose how many members train at once (`chunk_size`).

`fit_ensemble` trains E members as one vmapped program; its memory grows linearly with the
members of a chunk (activations, gradients, optimiser state per member) on top of a shared
part (the data pool). XLA reports the footprint of a compiled program
(`Compiled.memory_analysis()`: arguments + outputs + temporaries - aliased buffers) without
running it, so compiling the epoch for 1 and 2 members gives both parts exactly; the chunk is
then the largest that fits a memory budget.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxws.data.members import MemberData
from jaxws.train.state import Hparams, Pool
from jaxws.train.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class EpochMemory:
    """Bytes of one compiled ensemble epoch: `shared + members * per_member`."""

    shared: int
    per_member: int

    def total(self, members: int) -> int:
        """Bytes of the epoch program for `members` members."""
        return self.shared + members * self.per_member


def _program_bytes(compiled: jax.stages.Compiled) -> int:
    stats = compiled.memory_analysis()
    if stats is None:
        raise ValueError("this backend reports no memory analysis for compiled programs")
    return (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def epoch_program(trainer: Trainer) -> jax.stages.Wrapped:
    """The vmapped epoch of `trainer` as jitted without donating its state.

    `Trainer` donates the state to its epoch, which lets XLA reuse the input buffers for the
    output; how much it reuses is not linear in the members. Without donation the footprint is
    linear, and an upper bound of the donating program's.
    """
    return jax.jit(jax.vmap(trainer.epoch, in_axes=(0, 0, None, 0, 0)))


def epoch_memory(trainer: Trainer, pool: Pool, member: MemberData) -> EpochMemory:
    """Shared and per-member bytes of `trainer`'s vmapped epoch (compiled, not run).

    Args:
      trainer: the `Trainer` that `fit_ensemble` will use.
      pool: the data pool (array or pytree; only shapes and dtypes are used).
      member: one member's `MemberData` (no member axis; only shapes are used).

    Returns:
      `EpochMemory` from the programs for 1 and 2 members.
    """
    pool_shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), pool)
    key = jax.random.key(0)
    state = jax.eval_shape(
        lambda k, p: trainer.init_state(trainer.init_variables(k, p)), key, pool_shapes
    )
    hparams = Hparams(learning_rate=jax.ShapeDtypeStruct((), jnp.float32))
    member = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), member)

    def stacked(tree: Any, members: int) -> Any:
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct((members, *a.shape), a.dtype), tree)

    sizes = []
    program = epoch_program(trainer)
    for members in (1, 2):
        keys = jax.eval_shape(lambda k, n=members: jax.random.split(k, n), key)
        compiled = program.lower(
            stacked(state, members),
            keys,
            pool_shapes,
            stacked(member, members),
            stacked(hparams, members),
        ).compile()
        sizes.append(_program_bytes(compiled))
    per_member = max(sizes[1] - sizes[0], 0)
    return EpochMemory(shared=max(sizes[0] - per_member, 0), per_member=per_member)


def choose_chunk_size(n_members: int, memory: EpochMemory, budget_bytes: int) -> int:
    """Largest number of members per chunk whose epoch fits `budget_bytes` (at least 1).

    Chunks are balanced: with E members and at most c per chunk, ceil(E / ceil(E / c))
    members per chunk give the same number of chunks with the least padding.
    """
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes must be > 0, got {budget_bytes}")
    room = budget_bytes - memory.shared
    fits = n_members if memory.per_member == 0 else room // memory.per_member
    fits = int(min(max(fits, 1), n_members))
    return math.ceil(n_members / math.ceil(n_members / fits))
