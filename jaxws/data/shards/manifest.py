"""Per-shard records and the directory manifest (rebuilt under a lock, read with checks)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxws.data.shards.schema import MANIFEST, SCHEMA_VERSION, ShardError
from jaxws.data.shards.write import write_json_atomic


def record_path(shard: str | os.PathLike) -> Path:
    """Sidecar record of a shard: `<name>.h5` -> `<name>.json`."""
    return Path(shard).with_suffix(".json")


def write_record(shard: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Write a shard's sidecar record (after the shard itself)."""
    write_json_atomic(record_path(shard), dict(record))


def rebuild_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Collect all sidecar records under `directory` into `manifest.json` (atomic) and return it.

    Records whose shard file is missing are left out (a shard is listed only once its `.h5`
    exists); checksums are verified when reading, not here. Concurrent writers (Hydra multirun
    jobs) serialise on an flock of `<directory>/.manifest.lock`, so the last one lists all.
    """
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _rebuild_manifest_locked(directory)


def _rebuild_manifest_locked(directory: Path) -> dict[str, Any]:
    shards = []
    for rec in sorted(directory.rglob("*.json")):
        if rec.name == MANIFEST or rec.name.startswith(".tmp-"):
            continue
        try:
            record = json.loads(rec.read_text())
        except json.JSONDecodeError as err:
            raise ShardError(f"{rec}: shard record is not valid JSON: {err}") from err
        if "sha256" not in record or "file" not in record:
            continue
        if (directory / record["file"]).is_file():
            shards.append(record)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "n_shards": len(shards),
        "n_events": {},
        "shards": shards,
    }
    for record in shards:
        manifest["n_events"][record["model"]] = (
            manifest["n_events"].get(record["model"], 0) + record["n_stored"]
        )
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def read_manifest(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(directory, manifest) from a manifest file or a directory holding one."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError as err:
        raise ShardError(f"{file}: manifest not found") from err
    except json.JSONDecodeError as err:
        raise ShardError(f"{file}: manifest is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or "shards" not in manifest:
        raise ShardError(f"{file}: not a jaxws shard manifest (no 'shards' list)")
    return file.parent, manifest


# ---------------------------------------------------------------- dataset API
