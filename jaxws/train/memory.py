"""Memory of an ensemble epoch, to choose how many members train at once (`chunk_size`).

`fit_ensemble` trains the E rows of a chunk as one program (vmapped or `lax.map`ped); its
memory grows linearly with the rows (states and member data, and under vmap activations and
gradients too) on top of a shared part (the data pool). XLA reports the footprint of a
compiled program (`Compiled.memory_analysis()`: arguments + outputs + temporaries - aliased
buffers) without running it, so compiling the epoch for 1 and 2 members gives both parts
exactly; the chunk is then the largest that fits a memory budget (`chunk_rows`, which
`fit_ensemble` calls when it is given no `chunk_size`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import ConfigError
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


def epoch_program(trainer: Trainer, member_map: str = "vmap") -> jax.stages.Wrapped:
    """One epoch of a chunk (vmapped or `lax.map`ped as `trainer` would), jitted without donation.

    `Trainer` runs blocks of epochs in a `lax.while_loop` and donates their state, which lets
    XLA reuse the input buffers for the output; neither is linear in the members. One epoch
    without donation is linear, and its footprint is that of the loop's body.

    Args:
      trainer: the `Trainer`.
      member_map: "vmap" or "map" (`Trainer.member_map`).

    Returns:
      A jitted function of (states, keys, pool, members, hparams).
    """
    if member_map == "vmap":
        return jax.jit(jax.vmap(trainer.epoch, in_axes=(0, 0, None, 0, 0)))

    def mapped(states, keys, pool, members, hparams):  # noqa: ANN001
        return jax.lax.map(
            lambda args: trainer.epoch(args[0], args[1], pool, args[2], args[3]),
            (states, keys, members, hparams),
        )

    return jax.jit(mapped)


def _nbytes(aval: Any) -> int:
    try:
        itemsize = np.dtype(aval.dtype).itemsize
    except TypeError:  # typed PRNG keys: two uint32 words
        itemsize = 8
    return int(np.prod(aval.shape, dtype=np.int64)) * itemsize


def _values_bytes(jaxpr: Any) -> int:
    """Bytes of every value a jaxpr (and the jaxprs inside it) computes."""
    total = 0
    for eqn in jaxpr.eqns:
        total += sum(_nbytes(v.aval) for v in eqn.outvars if hasattr(v.aval, "shape"))
        for param in eqn.params.values():
            for inner in param if isinstance(param, list | tuple) else [param]:
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    total += _values_bytes(inner)
    return total


def member_bytes_bound(trainer: Trainer, pool: Pool, member: MemberData) -> int:
    """An upper bound of one member's bytes in a chunk's epoch, from its jaxpr (not compiled).

    The member's state in and out, its data, and every value the epoch computes as if none were
    ever freed (a loop body counted once: its buffers are reused per iteration). XLA's buffer
    assignment only frees and reuses, and fusion only removes values, so the compiled epoch
    needs no more; `chunk_rows` uses it to skip the compiled estimate when all members fit.
    """
    pool_shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), pool)
    key = jax.random.key(0)
    state = jax.eval_shape(
        lambda k, p: trainer.init_state(trainer.init_variables(k, p)), key, pool_shapes
    )
    hparams = Hparams(learning_rate=jax.ShapeDtypeStruct((), jnp.float32))
    member = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), member)
    jaxpr = jax.make_jaxpr(trainer.epoch)(state, key, pool_shapes, member, hparams)
    leaves = jax.tree.leaves((state, member))
    return (
        2 * sum(_nbytes(a) for a in jax.tree.leaves(state))
        + sum(_nbytes(a) for a in leaves[len(jax.tree.leaves(state)) :])
        + _values_bytes(jaxpr.jaxpr)
    )


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
    program = epoch_program(trainer, trainer.member_map(state, pool_shapes, hparams))
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


def available_bytes() -> int:
    """Memory free for new buffers now, in bytes.

    The default device's free bytes on an accelerator, otherwise the host's MemAvailable
    (`/proc/meminfo`), else its free pages.
    """
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def chunk_rows(trainer: Trainer, pool: Pool, member: MemberData, n_members: int) -> int:
    """Members of an ensemble that train at once within `trainer.config.memory_budget_gb`.

    Args:
      trainer: the `Trainer` of the ensemble.
      pool: the data pool.
      member: one member's `MemberData` (no member axis).
      n_members: members of the ensemble.

    Returns:
      The chunk's rows: n_members if even `member_bytes_bound` fits them all (no compilation),
      else `choose_chunk_size` from the compiled estimate `epoch_memory`.
    """
    if n_members == 1:
        return 1
    budget_gb = trainer.config.memory_budget_gb
    budget = available_bytes() // 2 if budget_gb is None else int(budget_gb * 1e9)
    # Kept on the trainer per pool and member shapes: the bound traces the epoch, and the
    # estimate costs two compilations.
    shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)), (pool, member))
    key = repr(jax.tree.leaves(shapes)) + repr(jax.tree.structure(shapes))
    if ("bound", key) not in trainer.memory_estimates:
        bound = member_bytes_bound(trainer, pool, member)
        trainer.memory_estimates["bound", key] = bound
    pool_bytes = sum(_nbytes(a) for a in jax.tree.leaves(pool))
    if pool_bytes + n_members * trainer.memory_estimates["bound", key] <= budget:
        return n_members  # all fit even by the upper bound: no compilation needed
    if key not in trainer.memory_estimates:
        trainer.memory_estimates[key] = epoch_memory(trainer, pool, member)
    return choose_chunk_size(n_members, trainer.memory_estimates[key], budget)


def check_memory(
    n_bytes: float, what: str, settings: str, available: int | None = None, peak: float = 2.0
) -> str:
    """Refuse, before anything runs, arrays that cannot fit in the memory free now.

    The estimates passed here count the large arrays a run allocates (events, toys per compiled
    call, activations); `peak` allows for the copies made while they are built and moved
    (concatenation, host to device), as `check_image_memory` does for jet images.

    Args:
      n_bytes: estimated bytes of the arrays.
      what: what they are, for the message ("the toy bank ...").
      settings: the config keys that set their size, named in the refusal.
      available: bytes free (default: measured now, `available_bytes`).
      peak: how many times `n_bytes` must be free at the peak.

    Returns:
      A report line (for `dry_run=true`).

    Raises:
      ConfigError: one line naming `settings`, when `peak * n_bytes` exceeds the memory free.
    """
    free = available_bytes() if available is None else available
    gib = n_bytes / 2**30
    if peak * n_bytes > free:
        raise ConfigError(
            f"{settings}: {what} take about {gib:.1f} GiB ({peak:g}x that at the peak), more "
            f"than the {free / 2**30:.1f} GiB of memory free; lower these sizes"
        )
    return f"{what}: about {gib:.2f} GiB ({free / 2**30:.1f} free)"
