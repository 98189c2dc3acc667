"""Chunks of ensemble members: compaction widths, row selection and the member-axis sharding."""

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
