"""Chunks of ensemble members: compaction widths, row updates and the member-axis sharding."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def compact_width(active: int, devices: int = 1) -> int:
    """Members in a compacted chunk: the next power of two >= `active`, a multiple of `devices`.

    So that the set of compiled sizes stays small and the chunk shards evenly.
    """
    width = 1 << max(0, active - 1).bit_length()
    return math.ceil(width / devices) * devices


def put_rows(chunk_state: Any | None, slots: np.ndarray, states: Any) -> Any:
    """Write the first len(slots) rows of `states` into rows `slots` of `chunk_state`.

    Args:
        chunk_state: pytree with a leading member axis, or None before the first write
            (then `slots` must be 0, 1, ..., and the rows are returned as they are).
        slots: member rows of `chunk_state` to overwrite, shape (R,).
        states: pytree with a leading member axis of at least R rows.

    Returns:
        The updated pytree (new arrays; the inputs are not modified).
    """
    rows = take(states, np.arange(len(slots)))
    if chunk_state is None and np.array_equal(slots, np.arange(len(slots))):
        return rows
    return jax.tree.map(lambda whole, part: whole.at[slots].set(part), chunk_state, rows)


def member_sharding() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Functions that place pytrees on all local devices.

    Returns:
        (shard the leading member axis over the devices, replicate on every device); both
        are the identity on one device.
    """
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


def take(tree: Any, index: np.ndarray | jax.Array) -> Any:
    """Rows `index` of the leading axis of every leaf of a pytree."""
    return jax.tree.map(lambda a: a[index], tree)
