"""Study inputs: the config sections, the event pool's jet images and the pseudo-experiments."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import ConfigError, check, from_section
from jaxws.data.events import JetEvents
from jaxws.data.pseudo_experiments import (
    PseudoExperiments,
    StudyDesign,
    build_pseudo_experiments,
    pool_events,
)
from jaxws.models.registry import build_model
from jaxws.simulate.sources import make_source
from jaxws.stats import significance
from jaxws.train import TrainConfig

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclasses.dataclass(frozen=True)
class StudyTrainingConfig:
    """The `training` config group: engine settings plus per-member numbers.

    Defaults: conf/training/cpu.yaml (pinned by tests/test_config_schemas.py); the paper's
    numbers are conf/training/paper.yaml.

    Attributes:
      learning_rate: Adam learning rate (Table 2: 1e-4 for CWoLa and fine-tuning, 1e-3 for
        pretraining and base learning).
      chunk_size: ensemble members trained at once (bounds memory; docs/INTERFACES.md).
      Others: `jaxws.train.TrainConfig`.
    """

    batch_size: int = 128
    max_epochs: int = 30
    patience: int = 5
    learning_rate: float = 2e-3
    chunk_size: int = 32
    eval_batch_size: int = 1024
    min_delta: float = 0.0

    def __post_init__(self):
        check(
            self.learning_rate > 0, f"training.learning_rate must be > 0, got {self.learning_rate}"
        )
        check(self.chunk_size >= 1, f"training.chunk_size must be >= 1, got {self.chunk_size}")
        try:
            self.engine()
        except ValueError as error:
            raise ConfigError(f"training.{error}") from None

    def engine(self) -> TrainConfig:
        """The engine's static settings from this section."""
        return TrainConfig(
            self.batch_size, self.max_epochs, self.patience, self.eval_batch_size, self.min_delta
        )


@dataclasses.dataclass(frozen=True)
class StudyConfig(StudyDesign):
    """The `study` config group: the pseudo-experiment design plus evaluation settings.

    Attributes:
      background_efficiencies: working points eps_b for the final significance.
      relative_uncertainty: relative background systematic for eq. 8 (0 = eq. 2).
    """

    background_efficiencies: tuple[float, ...] = significance.DEFAULT_BACKGROUND_EFFICIENCIES
    relative_uncertainty: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check(
            all(0 < e <= 1 for e in self.background_efficiencies),
            "study.background_efficiencies must lie in (0, 1]",
        )
        check(
            self.relative_uncertainty >= 0,
            f"study.relative_uncertainty must be >= 0, got {self.relative_uncertainty}",
        )

    def design(self) -> StudyDesign:
        """The pseudo-experiment design part of this section."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(StudyDesign)}
        return StudyDesign(**fields)


@dataclasses.dataclass
class StudyInputs:
    """Everything a method needs to train and evaluate on the study's pseudo-experiments."""

    images: np.ndarray
    experiments: PseudoExperiments
    study: StudyConfig
    training: StudyTrainingConfig
    model: Any
    source: Any
    signal_name: str
    background_mjj: np.ndarray | None = None
    background_region: np.ndarray | None = None


def event_pool_images(events: JetEvents, data_config: Any) -> np.ndarray:
    """Jet images of an event pool as the data config asks.

    Resolution, normalisation and channels come from `data_config` (a data section: simulator,
    Pythia or own events): (N, 2, R, R) float32 for one channel, (N, 2, R, R, K) for K; made
    on the device.
    """
    from jaxws.config import ConfigError
    from jaxws.data.images import event_images

    constituents = np.asarray(events.constituents)
    if constituents.ndim != 4 or constituents.shape[2] == 0:
        raise ConfigError(
            f"jet images need constituents (N, 2, C, 3) with C >= 1; the events hold "
            f"{constituents.shape}"
        )
    empty = np.flatnonzero(~np.any(constituents[..., 0] > 0, axis=2).all(axis=1))
    if len(empty):
        raise ConfigError(
            f"jet images need constituents: {len(empty)} of {len(constituents)} events have a "
            f"jet without any (first event index {empty[0]})"
        )
    images = event_images(
        jnp.asarray(events.constituents),
        data_config.resolution,
        data_config.normalize_images,
        channels=tuple(getattr(data_config, "channels", ("pt",))),
    )
    return np.asarray(images, np.float32)


def pool_event_count(config: Any) -> int:
    """Events of the study's pool (background plus target signal) that become jet images."""
    if config.source == "simulator":
        return int(config.n_background + config.n_signal)
    if config.source == "events":
        counts = config.region_counts()
        return counts["background"]["all"] + counts[f"signal:{config.signal}"]["all"]
    from jaxws.data.samples import canonical_name
    from jaxws.data.shards import ShardCollection

    counts = ShardCollection(list(config.paths)).counts()
    n = [counts.get(canonical_name(m), 0) for m in (config.background, config.signal)]
    if config.max_events is not None:
        n = [min(k, config.max_events) for k in n]
    return int(sum(n))


def check_image_memory(config: Any, available: int | None = None) -> str:
    """Refuse a jet-image pool that cannot fit in memory, before anything runs.

    The pool's images are float32 ``(N, 2, R, R, channels)``; they are made on the device and
    copied to the host, and training puts them on the device again, so about twice their
    size must be free (`jaxws.train.memory.available_bytes`).

    Args:
      config: the data section (simulator, Pythia or own events).
      available: bytes free (default: measured now).

    Returns:
      A report line.

    Raises:
      ConfigError: the images need more than the memory available (naming data.resolution).
    """
    from jaxws.train.memory import available_bytes

    channels = len(getattr(config, "channels", ("pt",)))
    n_events = pool_event_count(config)
    images = n_events * 2 * config.resolution**2 * channels * 4
    free = available_bytes() if available is None else available
    if 2 * images > free:
        raise ConfigError(
            f"data.resolution={config.resolution}: the jet images of the {n_events} pool events "
            f"take {images / 2**30:.1f} GiB (twice that while they are made and moved), more "
            f"than the {free / 2**30:.1f} GiB of memory free; lower data.resolution or the "
            "number of events"
        )
    return f"jet images: {images / 2**30:.2f} GiB for {n_events} events ({free / 2**30:.1f} free)"


def validate(cfg: DictConfig) -> None:
    """Check the sections a study method uses and its input files, before anything is written.

    Refuses (with `ConfigError`) bad `data`, `study`, `training` and `model` sections, shard
    sources that are missing or lack the chosen models, and designs that need more events than
    the data section can provide (the exact per-region counts are checked again once the
    events exist).
    """
    source = make_source(cfg.get("data"))
    study = from_section(StudyConfig, cfg.get("study"), "study")
    from_section(StudyTrainingConfig, cfg.get("training"), "training")
    build_model(cfg.get("model"))
    config = source.config
    if hasattr(config, "check_inputs"):
        config.check_inputs()
    # data=events: the counts per region are read from the files before anything is trained,
    # by the CLI (`jaxws.methods.dry_run.check_events_study`; it parses the methods' sections,
    # which import this module).
    if getattr(config, "source", "") == "simulator":
        need_background = study.n_test_background + study.n_background_sr
        need_signal = study.n_test_signal + max(study.injections)
        check(
            config.n_background >= need_background,
            f"data.n_background {config.n_background} is fewer than the study's SR background "
            f"alone (study.n_test_background + study.n_background_sr = {need_background})",
        )
        check(
            config.n_signal >= need_signal,
            f"data.n_signal {config.n_signal} is fewer than the study's SR signal alone "
            f"(study.n_test_signal + largest injection = {need_signal})",
        )
    check_image_memory(config)


def prepare(cfg: DictConfig, seed: int) -> StudyInputs:
    """Load events from the configured source, build pseudo-experiments and jet images."""
    source = make_source(cfg.data)
    study = from_section(StudyConfig, cfg.study, "study")
    training = from_section(StudyTrainingConfig, cfg.training, "training")
    model = build_model(cfg.model)
    background = source.background()
    signal = source.signal(source.config.signal)
    experiments = build_pseudo_experiments(seed, background, signal, study.design())
    images = event_pool_images(pool_events(background, signal), source.config)
    return StudyInputs(
        images,
        experiments,
        study,
        training,
        model,
        source,
        source.config.signal,
        background_mjj=np.asarray(background.mjj),
        background_region=np.asarray(background.region),
    )


def prepare_from_key(cfg: DictConfig, key: jax.Array) -> tuple[StudyInputs, jax.Array]:
    """`prepare` seeded from a run's key; returns the inputs and the key left for training.

    The key is split in two: the first half draws the integer seed of the data (events and
    pseudo-experiments), the second is returned for the method's training, so every study
    method (and `method=compare`) sees the same events for the same `seed`.
    """
    data_key, train_key = jax.random.split(key)
    return prepare(cfg, int(jax.random.randint(data_key, (), 0, 2**31 - 1))), train_key
