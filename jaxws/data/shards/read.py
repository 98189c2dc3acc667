"""Reading one shard: attributes, datasets (validated), event counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jaxws.data.shards.checks import _check_arrays, check_values
from jaxws.data.shards.schema import SCHEMA, ShardError
from jaxws.data.shards.write import sha256_file


def _open(path: Path) -> h5py.File:
    if path.name.startswith(".tmp-"):
        raise ShardError(f"{path}: a temporary file of an unfinished write, not a shard")
    if not path.is_file():
        raise ShardError(f"{path}: shard file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ShardError(
            f"{path}: not a readable HDF5 file (truncated or corrupted?): {err}"
        ) from err


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """File attributes of a shard (strings decoded, arrays as lists)."""
    path = Path(path)
    with _open(path) as f:
        return {k: _decode(v) for k, v in f.attrs.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_shard(
    path: str | os.PathLike,
    expected_sha256: str | None = None,
    index: slice | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Read and validate a shard (ours or hv-reference).

    Args:
        path: the `.h5` file.
        expected_sha256: if given, the file's checksum must match.
        index: events to read (a slice or sorted integer array); default all.

    Returns:
        Dataset name -> numpy array in the on-disk dtype; `model_id` is absent for hv-reference
        files.

    Raises:
        ShardError: missing, truncated, corrupted (checksum or HDF5 fletcher32), or schema
            mismatch; the message names the file.
    """
    path = Path(path)
    if expected_sha256 is not None:
        actual = sha256_file(path) if path.is_file() else None
        if actual != expected_sha256:
            raise ShardError(
                f"{path}: sha256 {actual} does not match the manifest's {expected_sha256} "
                "(file changed, truncated or corrupted)"
            )
    index = slice(None) if index is None else index
    with _open(path) as f:
        try:
            arrays = {name: f[name][index] for name in SCHEMA if name in f}
            n_attr = f.attrs.get("n_events", f.attrs.get("n_stored"))
        except (OSError, KeyError, ValueError) as err:
            raise ShardError(f"{path}: failed to read datasets (corrupted?): {err}") from err
    _check_arrays(arrays, str(path), require_all=False)
    check_values(arrays, str(path))
    if (
        isinstance(index, slice)
        and index == slice(None)
        and n_attr is not None
        and int(n_attr) != len(arrays["mjj"])
    ):
        raise ShardError(f"{path}: holds {len(arrays['mjj'])} events, attributes say {n_attr}")
    return arrays


def shard_events(path: str | os.PathLike) -> int:
    """Number of events in a shard without reading its data."""
    path = Path(path)
    with _open(path) as f:
        if "mjj" not in f:
            raise ShardError(f"{path}: dataset 'mjj' is missing")
        return int(f["mjj"].shape[0])


# ---------------------------------------------------------------- manifest
