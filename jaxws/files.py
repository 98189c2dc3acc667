"""Atomic file writes: a temporary file in the same directory, fsync, then `os.replace`.

A reader therefore sees either the old file or the complete new one, never half of it, and a
crash mid-write loses nothing that was already there. New files get the permissions an
ordinary `open()` would give them (0666 minus the process umask), not `mkstemp`'s private 0600,
so a shared results directory stays readable by colleagues. A failed write (permissions, a
full disk) raises an `OSError` whose message and `filename` name the destination file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

_UMASK_LOCK = threading.Lock()


def process_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Mode a plain `open(path, "w")` would create: 0666 minus the umask."""
    return 0o666 & ~process_umask()


def default_directory_mode() -> int:
    """Mode a plain `mkdir` would create: 0777 minus the umask."""
    return 0o777 & ~process_umask()


def named_os_error(error: OSError, path: str | Path, action: str = "write") -> OSError:
    """A copy of `error` whose message names `path` (for one-line reports at the entry point)."""
    reason = error.strerror or str(error)
    named = type(error)(error.errno, f"cannot {action} {path}: {reason}", str(path))
    named.__cause__ = error
    return named


def make_directory(path: str | Path) -> Path:
    """`mkdir -p` whose error names the directory."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise named_os_error(error, path, "create directory") from error
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically with umask permissions; errors name `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        named = type(error)(
            error.errno,
            f"cannot write {path}: cannot create directory {path.parent} ({reason})",
            str(path),
        )
        raise named from error
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise named_os_error(error, path) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), default_file_mode())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise named_os_error(error, path) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text through `atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode())


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, str | bytes):
        array = np.asarray(obj)
        return array.item() if array.ndim == 0 else array.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else (1e308 if obj > 0 else -1e308)
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """JSON with numpy/jax arrays converted to lists and NaN written as null."""
    return atomic_write_text(path, json.dumps(_to_jsonable(obj), indent=2, allow_nan=False))
