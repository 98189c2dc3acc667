"""HDF5 event shards: schema, atomic writes, manifest with checksums, validated reads.

One shard = one (model, seed, target event count) run of the generator (jaxws.simulate.pythia),
in the layout of ../shared/data/hv-reference so one reader serves both:

| dataset        | shape        | dtype   | content                                               |
| -------------- | ------------ | ------- | ----------------------------------------------------- |
| constituents   | (N, 2, C, 3) | float16 | leading/subleading jet constituents sorted by pT,     |
|                |              |         | zero-padded: pT [GeV], eta - jet_eta, phi - jet_phi   |
|                |              |         | wrapped to [-pi, pi)                                   |
| n_constituents | (N, 2)       | int16   | constituent count before truncation to C              |
| pt_truncated   | (N, 2)       | float32 | scalar pT [GeV] of the dropped constituents           |
| jets           | (N, 2, 4)    | float32 | jet pT [GeV], eta, phi [rad], mass [GeV]              |
| mjj            | (N,)         | float32 | dijet invariant mass [GeV]                            |
| region         | (N,)         | int8    | 0 SR, 1 SB                                            |
| label          | (N,)         | int8    | 0 QCD, 1 signal                                       |
| model_id       | (N,)         | int16   | benchmark index (-1 QCD, -2 non-benchmark signal);    |
|                |              |         | absent in hv-reference files (derived from `sample`)  |
| seed           | (N,)         | int32   | Pythia Random:seed of the shard                       |
| event_index    | (N,)         | int32   | 0-based index of the pythia.next() call               |

float16 constituents: coordinates are relative to the jet axis, where float16's error (at most
0.002 in deta, 0.0005 in dphi, 0.05% in pT, measured in hv-reference) is far below a 75x75
pixel over [-1, 1] (0.027) and moves < 0.1% of the pT to another pixel; it halves the largest
dataset. Every dataset is gzip + shuffle + fletcher32, so a corrupted chunk fails to read
instead of returning wrong numbers; files are written to a temporary name and renamed.

A directory of shards has `manifest.json` listing every shard with its event counts and
sha256; each shard also has a sidecar `<shard>.json` record written after its `.h5`, so that
concurrent runs (Hydra multirun) never race on one file: the manifest is rebuilt from records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jaxws.config import ConfigError
from jaxws.data.events import JetEvents
from jaxws.files import default_file_mode, named_os_error

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHUNK_EVENTS = 512

#: dataset -> (dtype on disk, shape after the event axis; None = any width)
SCHEMA: dict[str, tuple[type, tuple | None]] = {
    "constituents": (np.float16, None),
    "n_constituents": (np.int16, (2,)),
    "pt_truncated": (np.float32, (2,)),
    "jets": (np.float32, (2, 4)),
    "mjj": (np.float32, ()),
    "region": (np.int8, ()),
    "label": (np.int8, ()),
    "model_id": (np.int16, ()),
    "seed": (np.int32, ()),
    "event_index": (np.int32, ()),
}
#: datasets hv-reference files lack (derived on read)
OPTIONAL = ("model_id",)

_DESCRIPTIONS = {
    "constituents": "constituents of the two leading jets, sorted by pT descending, zero-padded; "
    "columns pT [GeV], deta = eta - jet_eta, dphi = phi - jet_phi wrapped to [-pi, pi)",
    "n_constituents": "number of constituents before truncation",
    "pt_truncated": "scalar pT sum [GeV] of the constituents dropped by the truncation",
    "jets": "jet pT [GeV], eta, phi [rad], mass [GeV] (E-scheme)",
    "mjj": "dijet invariant mass [GeV]",
    "region": "0 = signal region, 1 = sidebands",
    "label": "0 = QCD, 1 = signal",
    "model_id": "index into the benchmark list (jaxws.data.samples.benchmark_names); "
    "-1 QCD, -2 signal outside the list",
    "seed": "Pythia Random:seed of the shard",
    "event_index": "0-based index of the pythia.next() call within the shard",
}


class ShardError(ConfigError):
    """A shard or manifest that is missing, incomplete, corrupted or inconsistent."""


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


def _check_arrays(arrays: Mapping[str, np.ndarray], where: str, require_all: bool) -> None:
    n = len(arrays["mjj"]) if "mjj" in arrays else None
    for name, (_, tail) in SCHEMA.items():
        if name not in arrays:
            if require_all or name not in OPTIONAL:
                raise ShardError(f"{where}: dataset {name!r} is missing")
            continue
        shape = np.shape(arrays[name])
        if shape[0] != n:
            raise ShardError(f"{where}: dataset {name!r} has {shape[0]} events, mjj has {n}")
        if name == "constituents":
            if len(shape) != 4 or shape[1:2] != (2,) or shape[3] != 3:
                raise ShardError(f"{where}: constituents must be (N, 2, C, 3), got {shape}")
        elif shape[1:] != tail:
            raise ShardError(f"{where}: dataset {name!r} must be (N, *{tail}), got {shape}")


#: datasets that must hold finite floats, and the integer codes the label-like ones may take
FINITE = ("constituents", "pt_truncated", "jets", "mjj")
CODES = {"region": (0, 1), "label": (0, 1)}


def check_values(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse numbers no event can have.

    That is NaN or inf, unknown region or label codes, negative constituent counts and
    non-numeric datasets.

    The message names `where` (the file), the dataset, how many events are bad and the index
    of the first one (in the order the arrays hold them).

    Raises:
        ShardError: the first problem found.
    """
    for name, array in arrays.items():
        if name not in SCHEMA:
            continue
        array = np.asarray(array)
        want = np.dtype(SCHEMA[name][0]).kind
        if array.dtype.kind not in ("f" if want == "f" else "iu"):
            kind = "floating-point numbers" if want == "f" else "integers"
            raise ShardError(f"{where}: dataset {name!r} has dtype {array.dtype}; need {kind}")
        if len(array) == 0:
            continue
        flat = array.reshape(len(array), -1)
        if name in FINITE:
            bad = ~np.isfinite(flat).all(axis=1)
            what = "NaN or inf values"
        elif name in CODES:
            bad = ~np.isin(flat, CODES[name]).all(axis=1)
            what = f"values outside {list(CODES[name])}"
        elif name == "n_constituents":
            bad = (flat < 0).any(axis=1)
            what = "negative counts"
        else:
            continue
        if bad.any():
            raise ShardError(
                f"{where}: dataset {name!r} has {what} in {int(bad.sum())} of {len(array)} "
                f"events (first at event {int(np.argmax(bad))})"
            )


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


class ShardCollection:
    """Shards from manifests, directories or files; reads lazily, one model at a time.

    Each entry knows its file, model name, label, event count and (when it came from a manifest)
    the sha256 that is verified before its data are read.
    """

    def __init__(self, sources: str | os.PathLike | Iterable[str | os.PathLike]):
        if isinstance(sources, str | os.PathLike):
            sources = [sources]
        self.entries: list[dict[str, Any]] = []
        for source in sources:
            source = Path(source)
            if source.suffix == ".json" or (source.is_dir() and (source / MANIFEST).exists()):
                directory, manifest = read_manifest(source)
                for record in manifest["shards"]:
                    self.entries.append(
                        dict(
                            path=directory / record["file"],
                            model=record["model"],
                            n_events=int(record["n_stored"]),
                            sha256=record["sha256"],
                        )
                    )
            elif source.is_dir():
                files = sorted(p for p in source.rglob("*.h5") if not p.name.startswith(".tmp-"))
                if not files:
                    raise ShardError(f"{source}: no manifest.json and no .h5 shards")
                self.entries += [self._file_entry(p) for p in files]
            else:
                self.entries.append(self._file_entry(source))

    @staticmethod
    def _file_entry(path: Path) -> dict[str, Any]:
        from jaxws.data.samples import canonical_name

        attrs = read_attrs(path)
        name = attrs.get("sample") or attrs.get("model")
        if name is None:
            raise ShardError(f"{path}: no 'sample' attribute naming its model")
        return dict(path=path, model=canonical_name(name), n_events=shard_events(path), sha256=None)

    @property
    def models(self) -> list[str]:
        """Model names in first-seen order."""
        return list(dict.fromkeys(e["model"] for e in self.entries))

    def counts(self) -> dict[str, int]:
        """Events held per model."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e["model"]] = out.get(e["model"], 0) + e["n_events"]
        return out

    def read_dataset(self, model: str, name: str) -> np.ndarray:
        """One dataset (e.g. `region`) of every event of `model`, without the others."""
        parts = []
        for entry in self.entries:
            if entry["model"] != model:
                continue
            with _open(Path(entry["path"])) as f:
                try:
                    parts.append(f[name][...])
                except (OSError, KeyError, ValueError) as err:
                    raise ShardError(
                        f"{entry['path']}: cannot read dataset {name!r}: {err}"
                    ) from err
        if not parts:
            raise ShardError(f"no shards for model {model!r}; have {self.models}")
        return np.concatenate(parts)

    def read(self, model: str, max_events: int | None = None) -> dict[str, np.ndarray]:
        """The first `max_events` events of `model` (shard order, then event order)."""
        parts, need = [], max_events
        for entry in self.entries:
            if entry["model"] != model or need == 0:
                continue
            take = entry["n_events"] if need is None else min(need, entry["n_events"])
            if take == 0:
                continue
            parts.append(read_shard(entry["path"], entry["sha256"], index=slice(0, take)))
            need = None if need is None else need - take
        if not parts:
            files = [str(e["path"]) for e in self.entries if e["model"] == model]
            if files:
                raise ShardError(f"the shards of model {model!r} hold no events: {files}")
            raise ShardError(f"no shards for model {model!r}; have {self.models}")
        width = max(p["constituents"].shape[2] for p in parts)
        for p in parts:
            pad = width - p["constituents"].shape[2]
            if pad:
                p["constituents"] = np.pad(p["constituents"], ((0, 0), (0, 0), (0, pad), (0, 0)))
        keys = set.intersection(*(set(p) for p in parts))
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def to_jet_events(arrays: Mapping[str, np.ndarray], model_id: int) -> JetEvents:
    """JetEvents (float32 constituents) from shard arrays; `model_id` fills the model axis."""
    n = len(arrays["mjj"])
    return JetEvents(
        constituents=np.asarray(arrays["constituents"], dtype=np.float32),
        n_constituents=np.asarray(arrays["n_constituents"], dtype=np.int32),
        jets=np.asarray(arrays["jets"], dtype=np.float32),
        mjj=np.asarray(arrays["mjj"], dtype=np.float32),
        region=np.asarray(arrays["region"], dtype=np.int8),
        label=np.asarray(arrays["label"], dtype=np.int8),
        model_id=np.full(n, model_id, dtype=np.int16),
    )


def load_events(
    sources: str | os.PathLike | Iterable[str | os.PathLike],
    models: Iterable[str] | None = None,
    max_events: int | Mapping[str, int] | None = None,
    regions: Iterable[int] | None = None,
    model_list: list[str] | None = None,
) -> JetEvents:
    """Events of the chosen models as one JetEvents (models concatenated in the given order).

    Args:
        sources: manifest file(s), shard directories, or `.h5` files (ours or hv-reference).
        models: model names to load (default: all found); `hv_` prefixes are ignored.
        max_events: events per model: an int for every model, or {model: n}; the first events
            in shard order are taken, before the region selection.
        regions: keep only these regions (0 SR, 1 SB); default both.
        model_list: names that define `model_id` (index in this list, -1 for QCD); default the
            14 benchmarks.

    Returns:
        JetEvents with float32 constituents.

    Raises:
        ShardError: a model not found, more events asked than the shards hold (both numbers
            named), or any invalid shard.
    """
    from jaxws.data.samples import canonical_name, model_id_of

    if regions is not None:
        regions = list(regions)
        unknown = sorted(set(regions) - set(CODES["region"]))
        if unknown:
            raise ShardError(f"regions must be 0 (SR) and/or 1 (SB), got {unknown}")
    collection = ShardCollection(sources)
    counts = collection.counts()
    chosen = collection.models if models is None else [canonical_name(m) for m in models]
    parts = []
    for model in chosen:
        if model not in counts:
            raise ShardError(f"model {model!r} not in the shards; they hold {counts}")
        if counts[model] == 0:
            raise ShardError(f"the shards of model {model!r} hold no events")
        limit = max_events.get(model) if isinstance(max_events, Mapping) else max_events
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1
        ):
            raise ShardError(f"max_events for {model!r} must be a positive integer, got {limit!r}")
        if limit is not None and limit > counts[model]:
            raise ShardError(
                f"asked for {limit} events of {model!r} but the shards hold only {counts[model]}"
            )
        arrays = collection.read(model, limit)
        try:
            model_id = model_id_of(model, model_list)
        except ValueError as err:
            raise ShardError(str(err)) from err
        events = to_jet_events(arrays, model_id)
        if regions is not None:
            events = events.take(np.isin(events.region, regions))
        parts.append(events)
    return JetEvents.concatenate(parts)
