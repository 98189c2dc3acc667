"""Chunks of ensemble members: compaction widths, row updates and the member-axis sharding."""

from __future__ import annotations

import math

import jax
import numpy as np


def compact_width(active: int, devices: int = 1) -> int:
    """Members in a compacted chunk: the next power of two >= `active`, a multiple of
    `devices` (so that the set of compiled sizes stays small and shards evenly)."""
    width = 1 << max(0, active - 1).bit_length()
    return math.ceil(width / devices) * devices


def put_rows(chunk_state, slots, states):
    """Write the first len(slots) rows of `states` into rows `slots` of `chunk_state`."""
    rows = take(states, np.arange(len(slots)))
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


def take(tree, index):
    return jax.tree.map(lambda a: a[index], tree)
