"""Chunk and resume: one wrapper for every chunked computation (training, toys, prediction).

`map_chunks` splits N items into chunks, computes each chunk and, given a directory, saves each
finished chunk atomically as .npz; called again with the same fingerprint it loads finished
chunks instead of recomputing them, so a job killed at any point (kill -9 included) resumes to
the same final numbers. A chunk file is reused only if its tag matches: a hash of the caller's
fingerprint (everything that determines the result: model, settings, keys, inputs, evaluated
masks), the number of items, the chunk size and the chunk's index, so a changed config never
silently reuses stale results. No pickle: leaves are saved as plain arrays and restored into
the known result structure.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import types
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxws.files import atomic_write_bytes


def map_chunks(
    compute: Callable[[np.ndarray], Any],
    n_items: int,
    chunk_size: int,
    *,
    directory: str | Path | None = None,
    fingerprint: str | Callable[[np.ndarray], str] = "",
    template: Callable[[np.ndarray], Any] | None = None,
) -> Any:
    """`compute(index)` for each chunk of `range(n_items)`, concatenated along axis 0.

    Args:
      compute: maps an index array (one chunk) to a pytree whose leaves have a leading axis of
        that length.
      n_items: number of items.
      chunk_size: items per chunk (the last chunk may be shorter; callers that need equal
        shapes pad inside `compute`).
      directory: where finished chunks are saved and found again; None computes everything.
      fingerprint: a digest of everything the results depend on (`jaxws.hashing.tree_digest`),
        or a function of a chunk's index array giving the digest of everything that chunk
        depends on (then a change to one item's inputs recomputes only its chunk).
      template: maps an index array to the pytree structure (`jax.ShapeDtypeStruct` leaves
        suffice) of that chunk's result; needed with `directory`.

    Returns:
      The pytree of all items' results.
    """
    if directory is not None and template is None:
        raise ValueError("map_chunks: a directory needs a template to restore chunks into")
    results = []
    for c, start in enumerate(range(0, n_items, chunk_size)):
        index = np.arange(start, min(start + chunk_size, n_items))
        digest = fingerprint(index) if callable(fingerprint) else fingerprint
        tag = hashlib.sha256(f"{digest}|{n_items}|{chunk_size}|{c}".encode()).hexdigest()
        if directory is not None:
            restored = load_chunk(Path(directory), c, tag, template(index))
            if restored is not None:
                results.append(restored)
                continue
        result = jax.tree.map(np.asarray, compute(index))
        if directory is not None:
            save_chunk(Path(directory), c, tag, result)
            _fault_injection()
        results.append(result)
    return jax.tree.map(lambda *parts: np.concatenate(parts, axis=0), *results)


_saved_chunks = 0


def _fault_injection() -> None:
    """SIGKILL this process after `JAXWS_KILL_AFTER_CHUNKS` saved chunks (resume tests only).

    A deterministic kill -9 at a known point: no handler runs, nothing is flushed, exactly as
    when a batch system or the OOM killer ends a job.
    """
    global _saved_chunks
    _saved_chunks += 1
    limit = os.environ.get("JAXWS_KILL_AFTER_CHUNKS")
    if limit and _saved_chunks >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def function_digest(fn: Callable) -> str:
    """What a function computes, as far as its code tells: module, name, bytecode, constants.

    Two different lambdas share a `__qualname__` ('<lambda>') but not their bytecode or
    constants, so they get different digests. Nested code objects among the constants
    (comprehensions, inner functions and lambdas) enter by their own code, not their repr,
    which holds a memory address and would differ between processes (a resumed run would
    then never find its checkpoints). Closures' captured values are not included; callers
    fingerprint those themselves (e.g. a trainable predicate by its evaluated mask).
    """
    code = getattr(fn, "__code__", None)
    parts = [getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn))]
    if code is not None:
        parts.append(_code_digest(code))
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _code_digest(code: types.CodeType) -> str:
    consts = [_code_digest(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    parts = [code.co_name, code.co_code.hex(), repr(consts), repr(code.co_names)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def save_chunk(directory: Path, index: int, tag: str, tree: Any) -> Path:
    """Save a chunk's result atomically as `chunk_<index>.npz` with its fingerprint.

    Args:
      directory: the checkpoint directory.
      index: the chunk's index.
      tag: the chunk's fingerprint (see module docstring).
      tree: the chunk's result, a pytree of arrays (saved leaf by leaf, no pickle).

    Returns:
      The path of the written file.
    """
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    buffer = io.BytesIO()
    np.savez(buffer, *leaves, fingerprint=np.frombuffer(tag.encode(), np.uint8))
    return atomic_write_bytes(Path(directory) / f"chunk_{index:05d}.npz", buffer.getvalue())


def load_chunk(directory: Path, index: int, tag: str, template: Any) -> Any:
    """The saved chunk if it exists and matches `tag`, restored into `template`'s structure.

    A chunk file that cannot be read (truncated, not an archive, missing or misshapen arrays)
    is renamed to `<name>.corrupt` with a warning naming it, and None is returned so that the
    chunk is recomputed; a readable chunk of another fingerprint is left alone.

    Args:
      directory: the checkpoint directory.
      index: the chunk's index.
      tag: the fingerprint the chunk must carry.
      template: a pytree with the result's structure and leaf shapes.

    Returns:
      The restored pytree (NumPy leaves), or None if there is no usable matching chunk.
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
    """Write `info` as `manifest.json` in the checkpoint directory (atomically)."""
    atomic_write_bytes(Path(directory) / "manifest.json", json.dumps(info, indent=2).encode())


class StateCheckpoint:
    """The latest state of a sequential fit (meta-training episodes) in one directory.

    `map_chunks` saves independent items; a sequential fit instead has one state that each
    block of steps replaces. Block `c`'s state is saved as `chunk_<c>.npz` through the same
    `save_chunk` (atomic, no pickle, tagged with the fingerprint and `c`), the previous block's
    file is removed after the new one is written, and `restore` returns the newest state whose
    tag matches, so a killed fit (kill -9 included) resumes from its last finished block and,
    with per-step keys from `fold_in(key, step)`, ends at the same numbers.

    Args:
      directory: the checkpoint directory (created on the first save).
      fingerprint: digest of everything the fit depends on (`jaxws.hashing.tree_digest`).
    """

    def __init__(self, directory: str | Path, fingerprint: str):
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def _tag(self, index: int) -> str:
        return hashlib.sha256(f"{self.fingerprint}|state|{index}".encode()).hexdigest()

    def restore(self, template: Any) -> Any:
        """The newest saved state with this fingerprint (NumPy leaves), or None.

        Args:
          template: a pytree with the state's structure and leaf shapes.
        """
        if not self.directory.is_dir():
            return None
        saved = sorted(self.directory.glob("chunk_*.npz"), reverse=True)
        for path in saved:
            index = int(path.stem.removeprefix("chunk_"))
            restored = load_chunk(self.directory, index, self._tag(index), template)
            if restored is not None:
                return jax.tree.map(
                    lambda leaf, like: np.asarray(leaf, dtype=like.dtype), restored, template
                )
        return None

    def save(self, index: int, state: Any) -> None:
        """Save block `index`'s state; then remove the file of block `index - 1`."""
        save_chunk(self.directory, index, self._tag(index), jax.tree.map(np.asarray, state))
        previous = self.directory / f"chunk_{index - 1:05d}.npz"
        if index > 0 and previous.exists():
            previous.unlink()
        _fault_injection()
