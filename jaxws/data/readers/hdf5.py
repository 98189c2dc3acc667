"""Events from and to a plain HDF5 file with the documented datasets."""

from __future__ import annotations

import os
from pathlib import Path

from jaxws.data.events import JetEvents
from jaxws.data.readers.arrays import (
    _SHAPES,
    OPTIONAL,
    REQUIRED,
    EventsError,
    _shape_ok,
    events_from_arrays,
)


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


def hdf5_region_counts(path: str | os.PathLike) -> dict[str, int]:
    """Check a file's datasets from their metadata and count its events per region, cheaply.

    Reads the shapes of the required and optional datasets (no data) and the ``region``
    dataset only, so a run can refuse a missing file, a missing dataset or too few events
    before anything is trained. The values themselves are checked when the file is read.

    Args:
      path: the HDF5 file.

    Returns:
      ``{"all": N, "SR": n_sr, "SB": n_sb}``.

    Raises:
      EventsError: file not found or unreadable, a required dataset missing, a wrong shape or
        inconsistent event counts.
    """
    import h5py
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise EventsError(f"{path}: HDF5 file not found")
    try:
        with h5py.File(path, "r") as file:
            shapes = {
                name: file[name].shape
                for name in REQUIRED + OPTIONAL
                if name in file and isinstance(file[name], h5py.Dataset)
            }
            missing = [name for name in REQUIRED if name not in shapes]
            if missing:
                raise EventsError(
                    f"{path}: required dataset(s) {missing} missing; required: "
                    f"{list(REQUIRED)}, optional: {list(OPTIONAL)}"
                )
            n = shapes["mjj"][0] if len(shapes["mjj"]) == 1 else -1
            for name, shape in shapes.items():
                if len(shape) == 0 or not _shape_ok(name, shape):
                    raise EventsError(
                        f"{path}: {name} must have shape {_SHAPES[name]}, got {shape}"
                    )
                if shape[0] != n:
                    raise EventsError(f"{path}: {name} has {shape[0]} events, mjj has {n}")
            region = np.asarray(file["region"][()])
    except OSError as err:
        raise EventsError(f"{path}: not a readable HDF5 file: {err}") from err
    return {"all": int(n), "SR": int(np.sum(region == 0)), "SB": int(np.sum(region == 1))}


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
