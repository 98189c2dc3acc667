"""`dry_run=true`: compose and validate a whole run before anything trains or is generated.

Every section is turned into its dataclass (unknown keys and bad values refused as in a real
run), the model is built, and for the CWoLa-type studies the event counts that the study
design needs are compared with what the data source will provide:
  * simulator: the expected signal-region (SR) and sideband (SB) counts from the mjj densities
    of `jaxws.simulate.jets` (no event is simulated), with a 3-sigma binomial margin;
  * Pythia shards: the counts per region read from the shards' `region` datasets;
  * your own files (`data=events`): the counts per region read from the files' `region`
    datasets (the other datasets are checked from their metadata, not read).
A shortfall is a `ConfigError` naming the keys to raise. Nothing is written.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxws.config import ConfigError, from_section

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from jaxws.methods.injection_study import StudyConfig
    from jaxws.simulate.sources import PythiaConfig, PythiaSource, SimulatorConfig, SimulatorSource

STUDY_METHODS = ("cwola", "transfer", "compare")


def _region_fraction_simulator(signal: str | None) -> float:
    """Expected SR fraction of the simulator's events inside the mjj window."""
    import jax.numpy as jnp

    from jaxws.simulate import jets

    grid = np.linspace(*jets.MJJ_WINDOW, 20001)
    if signal is None:
        log_p = jets._dijet_log_density(jets.BackgroundParams())(jnp.asarray(grid))
    else:
        log_p = jets._crystal_ball_log_density(jets.benchmark(signal))(jnp.asarray(grid))
    density = np.exp(np.asarray(log_p, float) - float(np.max(log_p)))
    low, high = jets.SIGNAL_REGION_EDGES
    inside = (grid >= low) & (grid < high)
    return float(np.trapezoid(density * inside, grid) / np.trapezoid(density, grid))


def _simulator_counts(data: SimulatorConfig | PythiaConfig) -> dict[str, dict[str, float]]:
    """Expected (SR, SB) counts, reduced by 3 binomial sigmas, per sample."""

    def counts(n: float, fraction: float):
        margin = 3.0 * math.sqrt(n * fraction * (1 - fraction))
        return {"SR": n * fraction - margin, "SB": n * (1 - fraction) - margin}

    return {
        "background": counts(data.n_background, _region_fraction_simulator(None)),
        "signal": counts(data.n_signal, _region_fraction_simulator(data.signal)),
        "fraction_sr_background": _region_fraction_simulator(None),
    }


def _pythia_counts(data: SimulatorConfig | PythiaConfig) -> dict[str, dict[str, float]]:
    from jaxws.data.shards import ShardCollection, ShardError

    try:
        collection = ShardCollection(list(data.paths))
    except (ShardError, FileNotFoundError, OSError) as error:
        raise ConfigError(
            f"data.paths {list(data.paths)}: {error}. Generate shards with "
            "`python -m jaxws.simulate.generate models=[qcd,...] out=DIR`, or use the reference "
            "sample ../shared/data/hv-reference"
        ) from None
    out = {}
    for what, model in (("background", data.background), ("signal", data.signal)):
        if model not in collection.counts():
            raise ConfigError(
                f"data.{what}: no events of {model!r} under data.paths; they hold "
                f"{collection.counts()}"
            )
        region = collection.read_dataset(model, "region")
        out[what] = {"SR": float(np.sum(region == 0)), "SB": float(np.sum(region == 1))}
    out["fraction_sr_background"] = out["background"]["SR"] / max(
        out["background"]["SR"] + out["background"]["SB"], 1.0
    )
    return out


def _events_counts(data: Any) -> dict[str, Any]:
    counts = data.region_counts()
    out = {
        "background": {k: float(v) for k, v in counts["background"].items()},
        "signal": {k: float(v) for k, v in counts[f"signal:{data.signal}"].items()},
    }
    out["fraction_sr_background"] = out["background"]["SR"] / max(
        out["background"]["SR"] + out["background"]["SB"], 1.0
    )
    return out


def check_source_signals(data: Any, n_signal_per_model: int) -> list[str]:
    """`data=events`: every source model's file holds the SR events pretraining takes.

    Args:
      data: the `EventsConfig`.
      n_signal_per_model: `method.source.n_signal_per_model`.

    Returns:
      Report lines.

    Raises:
      ConfigError: a source model with too few signal-region events (named).
    """
    counts = data.region_counts()
    lines = []
    for name in data.signals:
        if name == data.signal:
            continue
        have = counts[f"signal:{name}"]["SR"]
        lines.append(f"source model {name} SR: need {n_signal_per_model}, have {have}")
        if have < n_signal_per_model:
            raise ConfigError(
                f"source model {name!r} ({data.signals[name]}): {have} signal-region events, "
                f"transfer/meta-learning need method.source.n_signal_per_model = "
                f"{n_signal_per_model} (lower it or give a larger file)"
            )
    return lines


def _unused_background(pool: float, study: StudyConfig) -> float:
    """SR background that none of the study's E members draws, on average.

    The first `reserve_background_sr` events of the `pool` left after the test set are never
    drawn; each of the E = injections x pseudo-experiments members draws `n_background_sr` of
    the D others, so about reserve + D (1 - n/D)^E stay unused.
    """
    members = len(study.injections) * study.n_pseudo_experiments
    reserve = min(study.reserve_background_sr, pool)
    drawn = pool - reserve
    return reserve + drawn * (1 - min(study.n_background_sr / max(drawn, 1.0), 1.0)) ** members


def check_counts(
    counts: dict[str, Any], study: StudyConfig, source: str, extra_background_sr: int = 0
) -> list[str]:
    """Compare a study design's needs with counts per sample and region; ConfigError on shortfall.

    Args:
      counts: {"background": {"SR": n, "SB": n}, "signal": {...}, "fraction_sr_background": f},
        the events the data will provide (expected, or counted in the shards).
      study: the `study` section dataclass.
      source: "simulator", "pythia" or "events" (names the keys to raise in the message).
      extra_background_sr: SR background a method needs beyond the study that must come
        from events no pseudo-experiment draws (shards; the simulator draws it afresh).

    Returns:
      Lines describing the counts (for the dry run's report).
    """
    fraction = counts["fraction_sr_background"]
    n_sb_background = study.n_background_sr * (1 - fraction) / fraction
    need = {
        ("background", "SR"): study.n_test_background
        + study.reserve_background_sr
        + study.n_background_sr,
        ("background", "SB"): n_sb_background,
        ("signal", "SR"): study.n_test_signal + max(study.injections),
    }
    keys = {
        "simulator": {"background": "data.n_background", "signal": "data.n_signal"},
        "pythia": {"background": "data.max_events or more shards", "signal": "more shards"},
        "events": {
            "background": "the events in data.background",
            "signal": "the events in data.signal's file",
        },
    }[source]
    problems, lines = [], []
    if extra_background_sr and source in ("pythia", "events"):
        unused = _unused_background(counts["background"]["SR"] - study.n_test_background, study)
        lines.append(
            f"source background (SR, unused by the study): need "
            f"{extra_background_sr}, expect {unused:.0f}"
        )
        if extra_background_sr > unused:
            problems.append(
                f"source background: transfer/meta-learning need {extra_background_sr} SR "
                f"background events that the study does not use, about {unused:.0f} remain "
                "(lower method.source.n_background or the study's sizes, or add background "
                "events)"
            )
    for (sample, region), n in need.items():
        have = counts[sample][region]
        lines.append(f"{sample} {region}: need {n:.0f}, expect {have:.0f}")
        if n > have:
            problems.append(
                f"{sample} {region}: the study needs {n:.0f} events, the data give about "
                f"{have:.0f} (raise {keys[sample]}, or lower study.n_background_sr, "
                "study.n_test_background, study.n_test_signal or the largest injection)"
            )
    if problems:
        raise ConfigError("not enough events for this study design: " + "; ".join(problems))
    return lines


def check_study_sizes(
    data: SimulatorConfig | PythiaConfig, study: StudyConfig, extra_background_sr: int = 0
) -> list[str]:
    """Compare the study design's needs with the expected counts; ConfigError on shortfall.

    Args:
      data: the `data` section dataclass (simulator or Pythia).
      study: the `study` section dataclass.
      extra_background_sr: SR background a method needs beyond the study (e.g. the
        transfer-learning source sample, which must not overlap the study's events).

    Returns:
      Lines describing the counts (for the dry run's report).
    """
    if data.source not in ("simulator", "pythia", "events"):
        return [f"data.source={data.source}: event counts are checked when the files are read"]
    counts = {"simulator": _simulator_counts, "pythia": _pythia_counts, "events": _events_counts}[
        data.source
    ](data)
    if data.source == "simulator":
        extra_background_sr = 0
    return check_counts(counts, study, data.source, extra_background_sr)


# Signal-region share of the stored (SR + SB) events of the project's Pythia selection,
# counted in ../shared/data: QCD 62,197 of 125,472 (hv-reference and qcd-extra), the
# Lambda_D = 10 signals 4,239 and 4,267 of 5,000 (ID, DD). The plan takes the lower signal one.
STORED_SR_FRACTION = {"background": 62_197 / 125_472, "signal": 4_239 / 5_000}
QCD_EVENTS_PER_SHARD = 50_000


def _stored_for(need_sr: float, fraction: float) -> int:
    """Stored events N whose SR count, less 3 binomial sigmas, reaches `need_sr`."""
    n = need_sr / fraction
    while n * fraction - 3.0 * math.sqrt(n * fraction * (1 - fraction)) < need_sr:
        n *= 1.001
    return math.ceil(n)


def generation_plan(cfg: DictConfig) -> dict[str, Any]:
    """Events to generate so that a Pythia study's dry run passes (`experiments/paper_scale.sh`).

    The needs are the dry run's (`check_counts`): the SR background pool is the smallest that
    leaves the methods' source sample unused by the pseudo-experiments' draws; every signal
    model gets the larger of the benchmark's need (test set + largest injection) and a source
    model's (`n_signal_per_model`). Counts become stored (SR + SB) events through the
    measured SR shares above, with a 3-sigma binomial margin.

    Returns:
      {"qcd": (events per shard, number of shards), "signal": events per shard (one shard
      per model), "need": the SR counts behind them}.
    """
    from jaxws.methods.injection_study import StudyConfig

    study = from_section(StudyConfig, cfg.study, "study")
    name = str(cfg.method.name)
    extra, per_model = 0, 0
    if name in STUDY_METHODS:
        extra, per_model = source_needs(cfg)
    pool = float(study.n_background_sr)
    if extra:
        low, high = pool, pool
        while _unused_background(high, study) < extra:
            low, high = high, 2 * high
        while high - low > 100:
            middle = (low + high) / 2
            low, high = (
                (middle, high) if _unused_background(middle, study) < extra else (low, middle)
            )
        pool = high
    need_background = study.n_test_background + pool
    need_signal = max(study.n_test_signal + max(study.injections), per_model)
    qcd = _stored_for(need_background, STORED_SR_FRACTION["background"])
    shards = math.ceil(qcd / QCD_EVENTS_PER_SHARD)
    signal = _stored_for(need_signal, STORED_SR_FRACTION["signal"])
    return {
        "qcd": (math.ceil(qcd / shards), shards),
        "signal": signal,
        "need": {"background SR": need_background, "signal SR": need_signal},
    }


def _method_sections(cfg: DictConfig, name: str) -> list[tuple[str, Any]]:
    """The method's own sections, validated; (label, method name) pairs for `compare`."""
    from omegaconf import OmegaConf

    from jaxws import methods

    if name == "compare":
        entries = OmegaConf.to_container(cfg.method, resolve=True)
        chosen = entries.get("methods") or {}
        if not chosen:
            raise ConfigError("method.methods must name at least one method to compare")
        out = []
        for label, section in chosen.items():
            if "name" not in section:
                raise ConfigError(f"method.methods.{label} needs a 'name'")
            out.append((label, section))
        return out
    methods.load(name)  # unknown names fail here
    return [(name, OmegaConf.to_container(cfg.method, resolve=True))]


def source_needs(cfg: DictConfig) -> tuple[int, int]:
    """SR background and SR events per source model that the configured method(s) pretrain on.

    Returns:
      ``(n_background, n_signal_per_model)``, the largest over compared methods (0 for CWoLa).
    """
    needs = [_parse_study_method(s) for _, s in _method_sections(cfg, str(cfg.method.name))]
    return max(n for n, _ in needs), max(n for _, n in needs)


def _parse_study_method(section: dict) -> tuple[int, int]:
    """Validate one study method's section; returns its source sample's SR needs.

    Returns:
      ``(n_background, n_signal_per_model)`` of `method.source` ((0, 0) for CWoLa).
    """
    from omegaconf import OmegaConf

    name = section.get("name")
    if name == "cwola":
        unknown = sorted(set(section) - {"name"})
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in config section 'method' (cwola)")
        return 0, 0
    from jaxws.methods import transfer

    if name == "transfer":
        parts = transfer.method_sections(OmegaConf.create(section))
    else:
        from jaxws.methods import meta
        from jaxws.methods.meta import study as meta_study

        meta.get(name)
        parts = meta_study._sections(OmegaConf.create({"method": section}))
    return int(parts["source"].n_background), int(parts["source"].n_signal_per_model)


def validate(cfg: DictConfig) -> list[str]:
    """Validate the whole composed config (and data sizes for studies); report lines.

    Raises:
      ConfigError: the first problem found, naming the key.
    """
    from jaxws import methods
    from jaxws.track import TrackingConfig

    from_section(TrackingConfig, cfg.tracking, "tracking")
    name = str(cfg.method.name)
    study_like = name in STUDY_METHODS
    if not study_like:
        try:
            from jaxws.methods import meta

            meta.get(name)
            study_like = True
        except (KeyError, ValueError, ImportError, AttributeError):
            study_like = False
    if not study_like:
        module = methods.load(name)
        if hasattr(module, "validate"):
            return list(module.validate(cfg) or [f"method={name}: config valid"])
        return [f"method={name}: sections parsed by the method at run time"]

    from jaxws.methods.injection_study import StudyConfig, StudyTrainingConfig
    from jaxws.models.registry import build_model
    from jaxws.simulate.sources import make_source

    source = make_source(cfg.data)
    study = from_section(StudyConfig, cfg.study, "study")
    from_section(StudyTrainingConfig, cfg.training, "training")
    build_model(cfg.model)
    extra = per_model = 0
    labels = []
    for label, section in _method_sections(cfg, name):
        background, signal = _parse_study_method(section)
        extra, per_model = max(extra, background), max(per_model, signal)
        labels.append(label)
    lines = [f"methods: {', '.join(labels)}"]
    # The simulator draws the source sample's background afresh (jaxws.methods.pretrain);
    # from shards it must come from events the study leaves unused.
    lines += check_study_sizes(source.config, study, extra_background_sr=extra)
    if extra and source.config.source == "pythia":
        lines.append(check_source_models(source, per_model))
    if per_model and source.config.source == "events":
        lines += check_source_signals(source.config, per_model)
    from jaxws.methods.injection_study.inputs import check_image_memory

    lines.append(check_image_memory(source.config))
    return lines


def check_events_study(cfg: DictConfig) -> None:
    """A study on `data=events`: its counts per region, read from the files, before training.

    Raises:
      ConfigError: too few events for the design, the source background or a source model.
    """
    from jaxws.methods.injection_study import StudyConfig
    from jaxws.simulate.sources import make_source

    name = str(cfg.method.name)
    if name not in STUDY_METHODS:
        from jaxws.methods import meta

        try:
            meta.get(name)
        except (KeyError, ValueError, ImportError, AttributeError):
            return
    config = make_source(cfg.data).config
    if getattr(config, "source", "") != "events":
        return
    study = from_section(StudyConfig, cfg.study, "study")
    background, per_model = source_needs(cfg)
    check_study_sizes(config, study, extra_background_sr=background)
    if per_model:
        check_source_signals(config, per_model)


def check_source_models(source: SimulatorSource | PythiaSource, n_signal_per_model: int = 0) -> str:
    """Every other benchmark, which transfer and meta-learning pretrain on, has shards.

    Each must hold at least `n_signal_per_model` signal-region events (0: not checked).
    """
    from jaxws.data.samples import canonical_name
    from jaxws.data.shards import ShardCollection

    collection = ShardCollection(list(source.config.paths))
    have = set(collection.counts())
    target = canonical_name(source.config.signal)
    missing = [m for m in source.model_names() if canonical_name(m) not in have | {target}]
    if missing:
        raise ConfigError(
            f"data.paths hold no events of the source models {missing} that transfer and "
            "meta-learning pretrain on; generate them with `python -m jaxws.simulate.generate "
            f"models=[{','.join(missing)}] out=DIR` and add DIR to data.paths "
            "(experiments/pythia_study.sh does this)"
        )
    short = {}
    for model in source.model_names():
        if canonical_name(model) == target or not n_signal_per_model:
            continue
        n_sr = int(np.sum(collection.read_dataset(canonical_name(model), "region") == 0))
        if n_sr < n_signal_per_model:
            short[model] = n_sr
    if short:
        raise ConfigError(
            f"source models with fewer signal-region events than method...source."
            f"n_signal_per_model = {n_signal_per_model}: {short}; lower it or generate more"
        )
    return f"source models: {len(source.model_names()) - 1} found"
