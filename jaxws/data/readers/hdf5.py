"""Events from and to a plain HDF5 file with the documented datasets."""

from __future__ import annotations

import os
from pathlib import Path

from jaxws.data.events import JetEvents
from jaxws.data.readers.arrays import OPTIONAL, REQUIRED, EventsError, events_from_arrays


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
