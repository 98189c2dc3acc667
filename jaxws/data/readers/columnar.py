"""Events from awkward arrays and ROOT files (uproot), and back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxws.data.events import JetEvents
from jaxws.data.readers.arrays import (
    CONSTITUENT_COLUMNS,
    JET_COLUMNS,
    EventsError,
    events_from_arrays,
)


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
