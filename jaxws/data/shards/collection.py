"""Shards as one collection: selection by model and region, loading `JetEvents`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxws.data.events import JetEvents
from jaxws.data.shards.checks import CODES
from jaxws.data.shards.manifest import read_manifest
from jaxws.data.shards.read import _open, read_attrs, read_shard, shard_events
from jaxws.data.shards.schema import MANIFEST, ShardError


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
