"""Your own events in: numpy arrays, awkward arrays, ROOT files and plain HDF5 files.

Each reader turns its input into the event schema (`jaxws.data.events.JetEvents`); ROOT files
are read with uproot.

Dense inputs (numpy mappings, HDF5 files) use the schema's own names and shapes:

| dataset          | shape        | required | meaning                                           |
| ---------------- | ------------ | -------- | ------------------------------------------------- |
| `constituents`   | (N, 2, C, 3) | yes      | leading [0] and subleading [1] jet; per           |
|                  |              |          | constituent pT [GeV], deta, dphi relative to the  |
|                  |              |          | jet axis; zero pT = padding (sorted on read)      |
| `jets`           | (N, 2, 4)    | yes      | jet pT [GeV], eta, phi [rad], mass [GeV]          |
| `mjj`            | (N,)         | yes      | dijet invariant mass [GeV]                        |
| `region`         | (N,)         | yes      | 0 signal region, 1 sideband, -1 neither           |
| `n_constituents` | (N, 2)       | no       | count before truncation; default: constituents    |
|                  |              |          | with pT > 0                                       |
| `label`          | (N,)         | no       | 0 background, 1 signal; default: `label` argument |
| `model_id`       | (N,)         | no       | signal model index, -1 background; default: the   |
|                  |              |          | `model_id` argument (-1 for label 0, else 0)      |

Columnar inputs (awkward arrays, ROOT TTrees) hold one entry per event with flat branches;
`j` is 0 for the leading and 1 for the subleading jet:

| branch                                                   | type          | required |
| -------------------------------------------------------- | ------------- | -------- |
| `mjj`, `region`                                          | number        | yes      |
| `jet{j}_pt`, `jet{j}_eta`, `jet{j}_phi`, `jet{j}_mass`   | number        | yes      |
| `jet{j}_constituent_pt`, `_deta`, `_dphi`                | var * number  | yes      |
| `jet{j}_n_constituents`, `label`, `model_id`             | number        | no       |

`branches` maps these names to yours (e.g. `{"mjj": "Mjj"}`). A ROOT file stores one level of
jaggedness per branch (uproot writes exactly that), hence one constituent branch per jet.

Every reader returns events whose constituents are sorted by pT descending (stable) and
zero-padded to C (the longest list, or `max_constituents` when given: then the hardest C are
kept and `n_constituents` keeps the full count). A missing field, a wrong shape, NaN or inf, a
negative pT or a region, label outside its values is refused with an `EventsError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxws.config import check
from jaxws.data.events import JetEvents

REQUIRED = ("constituents", "jets", "mjj", "region")
OPTIONAL = ("n_constituents", "label", "model_id")
JET_COLUMNS = ("pt", "eta", "phi", "mass")
CONSTITUENT_COLUMNS = ("pt", "deta", "dphi")

_SHAPES = {
    "constituents": "(N, 2, C, 3)",
    "jets": "(N, 2, 4)",
    "mjj": "(N,)",
    "region": "(N,)",
    "n_constituents": "(N, 2)",
    "label": "(N,)",
    "model_id": "(N,)",
}


class EventsError(ValueError):
    """User events that miss a field, have a wrong shape or hold values outside the schema."""


def columnar_names() -> list[str]:
    """Required branch names of the columnar (awkward / ROOT) layout, in a fixed order."""
    names = ["mjj", "region"]
    for j in (0, 1):
        names += [f"jet{j}_{c}" for c in JET_COLUMNS]
        names += [f"jet{j}_constituent_{c}" for c in CONSTITUENT_COLUMNS]
    return names


def _shape_ok(name: str, shape: tuple[int, ...]) -> bool:
    if name == "constituents":
        return len(shape) == 4 and shape[1] == 2 and shape[3] == 3
    if name == "jets":
        return shape[1:] == (2, 4)
    if name == "n_constituents":
        return shape[1:] == (2,)
    return len(shape) == 1


def _sort_constituents(constituents: np.ndarray, max_constituents: int | None) -> np.ndarray:
    order = np.argsort(-constituents[..., 0], axis=2, kind="stable")
    constituents = np.take_along_axis(constituents, order[..., None], axis=2)
    if max_constituents is not None:
        width = constituents.shape[2]
        if width >= max_constituents:
            constituents = constituents[:, :, :max_constituents]
        else:
            pad = ((0, 0), (0, 0), (0, max_constituents - width), (0, 0))
            constituents = np.pad(constituents, pad)
    return constituents


def events_from_arrays(
    arrays: Mapping[str, Any],
    label: int | None = None,
    model_id: int | None = None,
    max_constituents: int | None = None,
    where: str = "events",
) -> JetEvents:
    """JetEvents from a mapping of dense arrays in the schema's layout (module docstring).

    Args:
      arrays: name -> array; the four required fields and any optional ones.
      label: fills `label` when the mapping has none (0 background, 1 signal).
      model_id: fills `model_id` when the mapping has none; default -1 for background, 0 for
        signal.
      max_constituents: keep the hardest C constituents per jet (pad with zeros if fewer).
      where: what the arrays are (a file name), used in error messages.

    Returns:
      JetEvents with the schema's dtypes, constituents sorted by pT descending.

    Raises:
      EventsError: a missing field, wrong shape, inconsistent event counts or bad values.
    """
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise EventsError(
            f"{where}: required dataset(s) {missing} missing; required: {list(REQUIRED)}, "
            f"optional: {list(OPTIONAL)}"
        )
    fields = {name: np.asarray(arrays[name]) for name in REQUIRED + OPTIONAL if name in arrays}
    n = len(fields["mjj"]) if fields["mjj"].ndim else -1
    for name, value in fields.items():
        if value.ndim == 0 or not _shape_ok(name, value.shape):
            raise EventsError(f"{where}: {name} must have shape {_SHAPES[name]}, got {value.shape}")
        if len(value) != n:
            raise EventsError(f"{where}: {name} has {len(value)} events, mjj has {n}")
        if not np.all(np.isfinite(value)):
            raise EventsError(f"{where}: {name} holds NaN or inf")
    if np.any(fields["constituents"][..., 0] < 0):
        raise EventsError(f"{where}: constituents hold a negative pT")
    if not np.all(np.isin(fields["region"], (-1, 0, 1))):
        raise EventsError(f"{where}: region must be 0 (SR), 1 (SB) or -1 (neither)")
    if "label" not in fields:
        if label is None:
            raise EventsError(f"{where}: no 'label' dataset; pass label=0 (background) or 1")
        fields["label"] = np.full(n, label)
    if not np.all(np.isin(fields["label"], (0, 1))):
        raise EventsError(f"{where}: label must be 0 (background) or 1 (signal)")
    if "model_id" not in fields:
        default = np.where(fields["label"] == 1, 0, -1)
        fields["model_id"] = default if model_id is None else np.full(n, model_id)
    constituents = fields["constituents"].astype(np.float32)
    if "n_constituents" not in fields:
        fields["n_constituents"] = np.sum(constituents[..., 0] > 0, axis=2)
    fields["constituents"] = _sort_constituents(constituents, max_constituents)
    return JetEvents(**fields).to_numpy()


def _column(table: Any, name: str, branches: Mapping[str, str], where: str) -> Any:
    actual = branches.get(name, name)
    if actual not in table.fields:
        raise EventsError(
            f"{where}: branch {actual!r} missing (schema name {name!r}); has {table.fields}"
        )
    return table[actual]


def events_from_awkward(
    table: Any,
    branches: Mapping[str, str] | None = None,
    label: int | None = None,
    model_id: int | None = None,
    max_constituents: int | None = None,
    where: str = "awkward array",
) -> JetEvents:
    """JetEvents from an awkward record array in the columnar layout (module docstring).

    Args:
      table: an `ak.Array` of records (one per event), or a mapping of columns `ak.Array`
        accepts (e.g. numpy arrays and lists of lists).
      branches: schema name -> your field name, for fields named differently.
      label: as in `events_from_arrays`.
      model_id: as in `events_from_arrays`.
      max_constituents: as in `events_from_arrays`.
      where: as in `events_from_arrays`.

    Returns:
      JetEvents (see `events_from_arrays`).

    Raises:
      EventsError: a missing field, a jagged field where a number is expected, or bad values.
    """
    import awkward as ak

    branches = dict(branches or {})
    if not isinstance(table, ak.Array):
        table = ak.Array(dict(table))
    if not table.fields:
        raise EventsError(f"{where}: not a record array (no fields)")

    def dense(name: str) -> np.ndarray:
        column = _column(table, name, branches, where)
        try:
            return ak.to_numpy(column)
        except ValueError as err:
            raise EventsError(f"{where}: {name} must be one number per event ({err})") from err

    def padded(name: str, width: int) -> np.ndarray:
        column = _column(table, name, branches, where)
        if column.ndim != 2:
            raise EventsError(f"{where}: {name} must be a list per event (var * number)")
        column = ak.pad_none(column, width, axis=1, clip=True)
        return ak.to_numpy(ak.fill_none(column, 0.0)).astype(np.float32)

    counts = [
        ak.to_numpy(ak.num(_column(table, f"jet{j}_constituent_pt", branches, where), axis=1))
        for j in (0, 1)
    ]
    width = max(1, int(max(c.max(initial=0) for c in counts)))
    constituents = np.stack(
        [
            np.stack([padded(f"jet{j}_constituent_{c}", width) for c in CONSTITUENT_COLUMNS], -1)
            for j in (0, 1)
        ],
        axis=1,
    )
    arrays = {
        "constituents": constituents,
        "jets": np.stack(
            [np.stack([dense(f"jet{j}_{c}") for c in JET_COLUMNS], -1) for j in (0, 1)], axis=1
        ),
        "mjj": dense("mjj"),
        "region": dense("region"),
    }
    fields = set(table.fields)
    if all(
        branches.get(f"jet{j}_n_constituents", f"jet{j}_n_constituents") in fields for j in (0, 1)
    ):
        arrays["n_constituents"] = np.stack(
            [dense(f"jet{j}_n_constituents") for j in (0, 1)], axis=1
        )
    else:
        arrays["n_constituents"] = np.stack(counts, axis=1)
    for name in ("label", "model_id"):
        if branches.get(name, name) in fields:
            arrays[name] = dense(name)
    return events_from_arrays(arrays, label, model_id, max_constituents, where)


def events_to_awkward(events: JetEvents) -> Any:
    """The columnar layout of `events` (padding dropped): the inverse of `events_from_awkward`."""
    import awkward as ak

    columns: dict[str, Any] = {"mjj": events.mjj, "region": events.region}
    for j in (0, 1):
        for i, c in enumerate(JET_COLUMNS):
            columns[f"jet{j}_{c}"] = events.jets[:, j, i]
        kept = events.constituents[:, j, :, 0] > 0
        counts = kept.sum(axis=1)
        for i, c in enumerate(CONSTITUENT_COLUMNS):
            flat = events.constituents[:, j, :, i][kept]
            columns[f"jet{j}_constituent_{c}"] = ak.unflatten(flat, counts)
        columns[f"jet{j}_n_constituents"] = events.n_constituents[:, j]
    columns["label"] = events.label
    columns["model_id"] = events.model_id
    return ak.Array(columns)


def read_root(
    path: str | os.PathLike,
    tree: str = "events",
    branches: Mapping[str, str] | None = None,
    label: int | None = None,
    model_id: int | None = None,
    max_constituents: int | None = None,
) -> JetEvents:
    """JetEvents from a ROOT TTree in the columnar layout (read with uproot).

    Args:
      path: the `.root` file.
      tree: the TTree's name in the file.
      branches: as in `events_from_awkward`.
      label: as in `events_from_awkward`.
      model_id: as in `events_from_awkward`.
      max_constituents: as in `events_from_awkward`.

    Returns:
      JetEvents (see `events_from_arrays`).

    Raises:
      EventsError: file or tree not found, or any error of `events_from_awkward`.
    """
    import uproot

    path = Path(path)
    if not path.is_file():
        raise EventsError(f"{path}: ROOT file not found")
    try:
        with uproot.open(path) as file:
            if tree not in file:
                raise EventsError(f"{path}: no TTree {tree!r}; keys: {file.keys(cycle=False)}")
            table = file[tree].arrays(library="ak")
    except (OSError, ValueError) as err:
        if isinstance(err, EventsError):
            raise
        raise EventsError(f"{path}: not a readable ROOT file: {err}") from err
    return events_from_awkward(table, branches, label, model_id, max_constituents, str(path))


def write_root(path: str | os.PathLike, events: JetEvents, tree: str = "events") -> Path:
    """Write `events` as a TTree in the columnar layout (uproot); returns the path."""
    import uproot

    path = Path(path)
    table = events_to_awkward(events)
    with uproot.recreate(path) as file:
        file[tree] = {name: table[name] for name in table.fields}
    return path


def read_hdf5(
    path: str | os.PathLike,
    label: int | None = None,
    model_id: int | None = None,
    max_constituents: int | None = None,
) -> JetEvents:
    """JetEvents from a plain HDF5 file holding the datasets of the dense table.

    No attributes are needed; extra datasets are ignored.

    Args:
      path: the HDF5 file.
      label: as in `events_from_arrays`.
      model_id: as in `events_from_arrays`.
      max_constituents: as in `events_from_arrays`.

    Returns:
      JetEvents (see `events_from_arrays`).

    Raises:
      EventsError: file not found or unreadable, or any error of `events_from_arrays`.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise EventsError(f"{path}: HDF5 file not found")
    try:
        with h5py.File(path, "r") as file:
            arrays = {
                name: file[name][()]
                for name in REQUIRED + OPTIONAL
                if name in file and isinstance(file[name], h5py.Dataset)
            }
    except OSError as err:
        raise EventsError(f"{path}: not a readable HDF5 file: {err}") from err
    return events_from_arrays(arrays, label, model_id, max_constituents, str(path))


def write_hdf5(path: str | os.PathLike, events: JetEvents) -> Path:
    """Write `events` as a plain HDF5 file of the dense table (float32 constituents)."""
    import h5py

    from jaxws.data.shards import atomic_path

    path = Path(path)
    events = events.to_numpy()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
        for name in REQUIRED + OPTIONAL:
            file.create_dataset(name, data=getattr(events, name))
    return path


# ---------------------------------------------------------------- data=events


@dataclasses.dataclass(frozen=True)
class EventsConfig:
    """`data=events`: your own events, one plain HDF5 file per sample (dense table above).

    Attributes:
      background: HDF5 file of background events (label 0, model_id -1).
      signals: signal model name -> HDF5 file (label 1, model_id = position in this mapping);
        transfer and meta-learning pretrain on the signals other than `signal`.
      signal: the target signal model, a key of `signals`.
      resolution: jet-image side in pixels.
      max_constituents: constituents kept per jet (the hardest); null keeps all.
      normalize_images: divide each jet image by its pT sum (see README).
    """

    source: str = "events"
    background: str = ""
    signals: dict[str, str] = dataclasses.field(default_factory=dict)
    signal: str = ""
    resolution: int = 25
    max_constituents: int | None = None
    normalize_images: bool = True

    def __post_init__(self):
        check(
            bool(self.background),
            "data.background must name your background HDF5 file (data=events; "
            "see docs/own_events.md for the datasets it needs)",
        )
        check(
            isinstance(self.signals, Mapping) and len(self.signals) >= 1,
            "data.signals must map at least one signal name to its HDF5 file, "
            "e.g. data.signals={my_signal:/path/signal.h5}",
        )
        check(
            self.signal in self.signals,
            f"data.signal {self.signal!r} is not a key of data.signals {sorted(self.signals)}",
        )
        check(self.resolution >= 4, f"data.resolution must be >= 4, got {self.resolution}")
        check(
            self.max_constituents is None or self.max_constituents >= 1,
            f"data.max_constituents must be >= 1 or null, got {self.max_constituents}",
        )


class EventsSource:
    """Background and signal events from the HDF5 files of an `EventsConfig` config."""

    def __init__(self, config: EventsConfig):
        self.config = config

    def model_names(self) -> list[str]:
        """The signal models, in the order that defines their model_id."""
        return list(self.config.signals)

    def _read(self, path: str, label: int, model_id: int, n_events: int | None) -> JetEvents:
        events = read_hdf5(
            Path(path).expanduser(),
            max_constituents=self.config.max_constituents,
            label=label,
            model_id=model_id,
        )
        if np.any(events.label != label):
            role = "background" if label == 0 else "signal"
            raise EventsError(f"{path}: given as {role} but its 'label' dataset holds {1 - label}")
        if n_events is not None:
            if n_events > len(events):
                raise EventsError(
                    f"{path}: asked for {n_events} events, the file holds {len(events)}"
                )
            events = events.take(np.arange(n_events))
        return dataclasses.replace(events, model_id=np.full(len(events), model_id, np.int16))

    def background(self) -> JetEvents:
        """All events of the background file (label 0, model_id -1)."""
        return self._read(self.config.background, 0, -1, None)

    def signal(self, name: str, n_events: int | None = None) -> JetEvents:
        """The first `n_events` (default all) events of signal model `name`'s file.

        Raises:
            EventsError: If `name` is not in `data.signals`, the file holds fewer events or
                holds background labels.
        """
        if name not in self.config.signals:
            raise EventsError(f"signal {name!r} not in data.signals {sorted(self.config.signals)}")
        return self._read(self.config.signals[name], 1, self.model_names().index(name), n_events)
