"""Chunk-level resume for long ensemble fits: each finished chunk is saved atomically as .npz.

A chunk file is reused only if its fingerprint (a hash of everything that determines the
chunk's result: model, settings, keys, member data, hyperparameters, initial variables)
matches, so a changed config never silently reuses stale results. No pickle: leaves are saved
as plain arrays and restored into the known result structure.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import jax
import numpy as np

from jaxws.track.files import atomic_write_bytes


def fingerprint(*parts) -> str:
    """sha256 over reprs of static parts and the bytes of array leaves."""
    digest = hashlib.sha256()
    for part in parts:
        leaves, treedef = jax.tree.flatten(part)
        digest.update(repr(treedef).encode())
        for leaf in leaves:
            if hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            if hasattr(leaf, "shape"):
                array = np.asarray(leaf)
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).tobytes())
            else:
                digest.update(repr(leaf).encode())
    return digest.hexdigest()


def save_chunk(directory: Path, index: int, tag: str, tree) -> Path:
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    buffer = io.BytesIO()
    np.savez(buffer, *leaves, fingerprint=np.frombuffer(tag.encode(), np.uint8))
    return atomic_write_bytes(Path(directory) / f"chunk_{index:05d}.npz", buffer.getvalue())


def load_chunk(directory: Path, index: int, tag: str, template):
    """The saved chunk if it exists and matches `tag`, restored into `template`'s structure."""
    path = Path(directory) / f"chunk_{index:05d}.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if bytes(data["fingerprint"]).decode() != tag:
            return None
        leaves, treedef = jax.tree.flatten(template)
        arrays = [data[f"arr_{i}"] for i in range(len(leaves))]
    for array, leaf in zip(arrays, leaves, strict=True):
        if array.shape != leaf.shape:
            raise ValueError(f"{path}: saved leaf shape {array.shape} != expected {leaf.shape}")
    return jax.tree.unflatten(treedef, arrays)


def write_manifest(directory: Path, info: dict) -> None:
    atomic_write_bytes(Path(directory) / "manifest.json", json.dumps(info, indent=2).encode())
