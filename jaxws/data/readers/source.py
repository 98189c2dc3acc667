"""`data=events`: your own background and signal files as a study's event source."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jaxws.config import check
from jaxws.data.events import JetEvents
from jaxws.data.readers.arrays import EventsError
from jaxws.data.readers.hdf5 import hdf5_region_counts, read_hdf5


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
      normalize_images: divide each jet image by its pT sum (docs/cwola.md, "Inputs").
    """

    source: str = dataclasses.field(default="events", init=False)
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

    def region_counts(self) -> dict[str, dict[str, int]]:
        """Events per region of every file, from metadata and the region datasets.

        Returns:
          ``{"background": counts, "signal:<name>": counts, ...}`` (see `hdf5_region_counts`).

        Raises:
          EventsError: a file is missing, unreadable or lacks a required dataset (named).
        """
        counts = {"background": hdf5_region_counts(Path(self.background).expanduser())}
        for name, path in self.signals.items():
            counts[f"signal:{name}"] = hdf5_region_counts(Path(path).expanduser())
        return counts

    def check_inputs(self) -> None:
        """Refuse a missing or unreadable file or one without the required datasets."""
        self.region_counts()


class EventsSource:
    """Background and signal events from the HDF5 files of an `EventsConfig` config."""

    config_class = EventsConfig

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
