"""Writing shards: atomic HDF5 and JSON files, checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jaxws.data.shards.checks import _check_arrays, check_values
from jaxws.data.shards.schema import _DESCRIPTIONS, CHUNK_EVENTS, SCHEMA, SCHEMA_VERSION, ShardError
from jaxws.files import default_file_mode, named_os_error


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path`, else delete it.

    The temporary name starts with `.tmp-` so resume logic and readers can recognise leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    except OSError as error:
        raise named_os_error(error, path) from error
    os.fchmod(fd, default_file_mode())  # umask permissions, not mkstemp's 0600
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise named_os_error(error, path) from error
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON through a temporary file and os.replace."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _attr_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return np.array(value, dtype=h5py.string_dtype())
        return np.asarray(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def write_shard(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping) -> str:
    """Write one shard atomically and return its sha256.

    Args:
        path: destination `.h5` file (replaced only once the new file is complete).
        arrays: every dataset of SCHEMA, with a common event axis.
        attrs: metadata stored as file attributes (strings, numbers, lists, dicts as JSON).

    Returns:
        sha256 of the written file.
    """
    _check_arrays(arrays, str(path), require_all=True)
    check_values(arrays, str(path))
    n = len(arrays["mjj"])
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, (dtype, _) in SCHEMA.items():
                data = np.asarray(arrays[name]).astype(dtype)
                if name == "constituents" and np.any(np.abs(arrays[name][..., 0]) > 65504):
                    raise ShardError(f"{path}: constituent pT beyond float16 range")
                dset = f.create_dataset(
                    name,
                    data=data,
                    chunks=(max(1, min(CHUNK_EVENTS, n)), *data.shape[1:]) if n else None,
                    compression="gzip" if n else None,
                    compression_opts=6 if n else None,
                    shuffle=bool(n),
                    fletcher32=bool(n),
                )
                dset.attrs["description"] = _DESCRIPTIONS[name]
            for key, value in attrs.items():
                f.attrs[key] = _attr_value(value)
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["n_events"] = n
            f.attrs["h5py_version"] = h5py.__version__
            f.attrs["numpy_version"] = np.__version__
        digest = sha256_file(tmp)
    return digest
