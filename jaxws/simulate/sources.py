"""One interface to the event sources: `data=simulator`, `data=pythia` or `data=events`.

`data=events` reads your own HDF5 files (jaxws.data.readers). Every method asks a source for
background events, the events of a named signal model, and the list of signal models (for
transfer and meta-learning), so each method runs on either source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax

from jaxws.config import ConfigError, check, from_section, import_class, to_plain
from jaxws.data.events import JetEvents

if TYPE_CHECKING:
    from jaxws.data.readers import EventsSource


def _check_channels(channels: Sequence[str]) -> None:
    from jaxws.data.images import CHANNELS

    check(
        len(channels) >= 1
        and all(c in CHANNELS for c in channels)
        and len(set(channels)) == len(channels),
        f"data.channels must be distinct names from {list(CHANNELS)}, got {list(channels)}",
    )


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """`data=simulator`: the built-in stylised jet simulator (jaxws.simulate.jets).

    Attributes:
      signal: the target signal model (a benchmark name such as `id_lambda10`).
      resolution: jet-image side in pixels.
      max_constituents: constituents kept per jet.
      n_background: background events generated in the mjj window (about half land in the SR).
      n_signal: events generated per signal model.
      seed: data seed, separate from the training seed, so that a training sweep sees the
        same events.
      normalize_images: divide each jet image by its pT sum. Raw-pT pixels (the paper's
        choice) carry the jet pT scale, i.e. mjj, which a signal-region-vs-sideband classifier
        can learn without any signal; normalised images keep only the shape (docs/cwola.md).
      channels: image channels per pixel, "pt" and/or "count" (constituents per pixel, which
        keeps the multiplicity; `jaxws.data.images`).
    """

    source: str = dataclasses.field(default="simulator", init=False)
    signal: str = "id_lambda10"
    resolution: int = 12
    max_constituents: int = 256
    n_background: int = 14_000
    n_signal: int = 4_000
    seed: int = 1234
    normalize_images: bool = True
    channels: tuple[str, ...] = ("pt",)

    def __post_init__(self):
        from jaxws.data.samples import benchmark_names

        check(
            self.signal in benchmark_names(),
            f"data.signal {self.signal!r} is not a simulator benchmark; known: {benchmark_names()}",
        )
        check(self.resolution >= 4, f"data.resolution must be >= 4, got {self.resolution}")
        _check_channels(self.channels)
        check(
            self.max_constituents >= 1,
            f"data.max_constituents must be >= 1, got {self.max_constituents}",
        )
        check(
            self.n_background >= 1 and self.n_signal >= 1,
            "data.n_background and data.n_signal must be >= 1",
        )


@dataclasses.dataclass(frozen=True)
class PythiaConfig:
    """`data=pythia`: events from HDF5 shards made by `python -m jaxws.simulate.generate`."""

    source: str = dataclasses.field(default="pythia", init=False)
    paths: tuple[str, ...] = ("data/pythia",)
    background: str = "qcd"
    signal: str = "id_lambda10"
    resolution: int = 25
    max_events: int | None = None
    model_list: tuple[str, ...] | None = None
    normalize_images: bool = True
    channels: tuple[str, ...] = ("pt",)

    def __post_init__(self):
        check(self.resolution >= 4, f"data.resolution must be >= 4, got {self.resolution}")
        _check_channels(self.channels)
        check(len(self.paths) >= 1, "data.paths must name at least one shard source")
        check(
            self.max_events is None or self.max_events >= 1,
            f"data.max_events must be null (all) or >= 1, got {self.max_events}",
        )

    def check_inputs(self) -> None:
        """Refuse missing, unreadable or invalid shards and models the shards do not hold.

        Reads every shard this config will use, one at a time, through the validating reader
        (checksum, schema, NaN or inf, region and label codes), so a bad file is refused
        before anything is written rather than in the middle of a run.
        """
        from jaxws.data.samples import canonical_name
        from jaxws.data.shards import ShardCollection, read_shard

        for path in self.paths:
            if not Path(path).exists():
                raise ConfigError(f"data.paths: {path} does not exist")
        collection = ShardCollection(list(self.paths))
        counts = collection.counts()
        for role, name in (("background", self.background), ("signal", self.signal)):
            model = canonical_name(name)
            have = counts.get(model, 0)
            if have == 0:
                raise ConfigError(
                    f"data.{role} {name!r}: the shards in {list(self.paths)} hold no events of "
                    f"it; they hold {counts}"
                )
            if self.max_events is not None and self.max_events > have:
                raise ConfigError(
                    f"data.max_events {self.max_events} is more than the {have} events of "
                    f"{model!r} in the shards"
                )
            need = self.max_events
            for entry in collection.entries:
                if entry["model"] != model or need == 0:
                    continue
                take = entry["n_events"] if need is None else min(need, entry["n_events"])
                read_shard(entry["path"], entry["sha256"], index=slice(0, take))
                need = None if need is None else need - take


class SimulatorSource:
    """Events drawn by the built-in jet simulator from a `SimulatorConfig` config."""

    config_class = SimulatorConfig

    def __init__(self, config: SimulatorConfig):
        self.config = config

    @cached_property
    def _key(self) -> jax.Array:
        return jax.random.key(self.config.seed)

    def model_names(self) -> list[str]:
        """The signal models this source can draw (the benchmarks)."""
        from jaxws.data.samples import benchmark_names

        return benchmark_names()

    def background(self) -> JetEvents:
        """`config.n_background` QCD events from the data seed."""
        from jaxws.simulate.jets import simulate_events

        return simulate_events(
            self._key, self.config.n_background, {}, max_constituents=self.config.max_constituents
        )

    def signal(self, name: str, n_events: int | None = None) -> JetEvents:
        """Events of signal model `name` (default `config.n_signal` of them)."""
        from jaxws.simulate.jets import simulate_events

        events = simulate_events(
            self._key,
            0,
            {name: n_events or self.config.n_signal},
            max_constituents=self.config.max_constituents,
        )
        return events


class PythiaSource:
    """Events read from Pythia HDF5 shards (jaxws.data.shards) of a `PythiaConfig` config."""

    config_class = PythiaConfig

    def __init__(self, config: PythiaConfig):
        self.config = config

    def model_names(self) -> list[str]:
        """The signal models the shards' model_id indexes (`model_list` or the benchmarks)."""
        from jaxws.data.samples import benchmark_names

        return list(self.config.model_list or benchmark_names())

    def _load(self, name: str, n_events: int | None) -> JetEvents:
        from pathlib import Path

        from jaxws.data.shards import ShardError, load_events

        missing = [p for p in self.config.paths if not Path(p).exists()]
        if missing:
            raise ShardError(
                f"no Pythia shards at {missing}: generate them with "
                "`python -m jaxws.simulate.generate "
                f"models=[qcd,{self.config.signal}] seeds=[1] events=2000 out={missing[0]}` "
                "(physics extra), or use the reference sample: "
                "data.paths=[../shared/data/hv-reference]"
            )
        return load_events(
            list(self.config.paths),
            models=[name],
            max_events=n_events or self.config.max_events,
            model_list=list(self.config.model_list) if self.config.model_list else None,
        )

    def background(self) -> JetEvents:
        """The background model's events from the shards (up to `config.max_events`)."""
        return self._load(self.config.background, None)

    def signal(self, name: str, n_events: int | None = None) -> JetEvents:
        """Events of signal model `name` (up to `n_events`, default `config.max_events`)."""
        return self._load(name, n_events)


#: Event sources by their short name (`config.source`), for library callers that pass
#: `{"source": "pythia", ...}` instead of a `_target_`.
SOURCES = {
    "simulator": "jaxws.simulate.sources.SimulatorSource",
    "pythia": "jaxws.simulate.sources.PythiaSource",
    "events": "jaxws.data.readers.EventsSource",
}


def make_source(
    section: Mapping[str, Any] | None,
) -> SimulatorSource | PythiaSource | EventsSource:
    """The event source that the `data` config section names in `_target_`.

    conf/data/*.yaml name the source class (`_target_: jaxws.simulate.sources.SimulatorSource`);
    its `config_class` reads the other keys. A plain mapping may name it by `source`
    (`SOURCES`) instead; neither means the simulator.

    Args:
        section: the `data` config section (None: the simulator with its defaults).

    Returns:
        A `SimulatorSource`, `PythiaSource` or `jaxws.data.readers.EventsSource`.

    Raises:
        ConfigError: If the section is not a mapping, names an unknown source or holds an
            invalid value.
    """
    if section is not None and not hasattr(section, "get"):
        raise ConfigError(f"data must be a config group (e.g. data=simulator), got {section!r}")
    section = dict(to_plain(section) or {})
    target = section.pop("_target_", None)
    name = section.pop("source", None)
    if target is None:
        if (name or "simulator") not in SOURCES:
            raise ConfigError(f"data.source must be one of {sorted(SOURCES)}, got {name!r}")
        target = SOURCES[name or "simulator"]
    cls = import_class(target, "data._target_")
    if not hasattr(cls, "config_class"):
        raise ConfigError(f"data._target_ {target!r} is not an event source (no config_class)")
    return cls(from_section(cls.config_class, section, "data"))
