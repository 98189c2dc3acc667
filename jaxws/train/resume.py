"""Chunk-level resume for long ensemble fits: each finished chunk is saved atomically as .npz.

A chunk file is reused only if its fingerprint (a hash of everything that determines the
chunk's result: model, settings, keys, member data, hyperparameters, initial variables)
matches, so a changed config never silently reuses stale results. No pickle: leaves are saved
as plain arrays and restored into the known result structure.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxws.files import atomic_write_bytes


def save_chunk(directory: Path, index: int, tag: str, tree) -> Path:
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    buffer = io.BytesIO()
    np.savez(buffer, *leaves, fingerprint=np.frombuffer(tag.encode(), np.uint8))
    return atomic_write_bytes(Path(directory) / f"chunk_{index:05d}.npz", buffer.getvalue())


def load_chunk(directory: Path, index: int, tag: str, template):
    """The saved chunk if it exists and matches `tag`, restored into `template`'s structure.

    A chunk file that cannot be read (truncated, not an archive, missing or misshapen arrays)
    is renamed to `<name>.corrupt` with a warning naming it, and None is returned so that the
    chunk is recomputed; a readable chunk of another fingerprint is left alone.
    """
    path = Path(directory) / f"chunk_{index:05d}.npz"
    if not path.exists():
        return None
    leaves, treedef = jax.tree.flatten(template)
    try:
        with np.load(path, allow_pickle=False) as data:
            if bytes(data["fingerprint"]).decode() != tag:
                return None
            arrays = [data[f"arr_{i}"] for i in range(len(leaves))]
        for array, leaf in zip(arrays, leaves, strict=True):
            if array.shape != leaf.shape:
                raise ValueError(f"saved leaf shape {array.shape} != expected {leaf.shape}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        reason = " ".join(str(error).split()) or type(error).__name__
        warnings.warn(
            f"checkpoint {path} is unreadable ({reason}); moved it to {aside.name} and "
            "recomputing that chunk",
            stacklevel=2,
        )
        return None
    return jax.tree.unflatten(treedef, arrays)


def write_manifest(directory: Path, info: dict) -> None:
    atomic_write_bytes(Path(directory) / "manifest.json", json.dumps(info, indent=2).encode())
