"""`experiment=hunt`: CWoLa hunting on the simulator's full dijet spectrum, Pythia or your events.

Events (`data`):
  * `data=simulator` (default): QCD dijets over `mjj_range`
    (`jaxws.simulate.simulate_events(mjj_range=...)`) and an injected dark-shower resonance
    (`signal_model`'s jet shapes, its mjj peak moved to `signal_mass`); of the data section
    only the image settings are read (resolution, normalize_images, channels,
    max_constituents);
  * `data=pythia` or `data=events`: the first `n_background` events of the background
    (null: all) and the first `n_signal` events of `data.signal` (0: none, a search on data).
    Their mjj must cover `mjj_range` (Pythia's stored selection is 4.4-5.8 TeV:
    conf/experiment/hunt_pythia.yaml); otherwise the run is refused before anything is written.
Classifier inputs per event (`features`):
  * "substructure": per jet (ordered by jet mass) m/pT and ln(constituent count), which the
    simulator draws independently of mjj (no sculpting expected);
  * "raw_mass": per jet the mass in GeV and ln(count); the mass scales with mjj, so a
    classifier can learn mjj and sculpt the spectrum: the sculpting check's test case;
  * "images": the two jet images of the data section (its resolution, normalisation,
    channels; `data.normalize_images=false` gives raw-pT pixels, which carry mjj) and the
    `model` section's network.
Classifier (`classifier`): "cwola" (trained from scratch: the MLP of `feature_widths` on
vectors, the `model` network on images), "trees" (boosted trees, vectors only), "transfer" or a
meta-learning variant such as "mtl" (images only; `pretrained` holds their method section:
source sample, pretraining, fine-tuning, meta-training; `jaxws.methods.hunt.classifiers`).
Outputs in the run directory: hunt_table.csv (one row per window and efficiency: observed,
fitted background and its uncertainty, local Z and p, goodness of fit, `sculpting`, and the
truth counts with eq. 2 and eq. 8 significances), figures/hunt.png, metrics.json. Resumable:
the events are saved once (hunt_events.npz) and the engine saves finished member chunks.
"""

from __future__ import annotations

import dataclasses
import io
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxws.config import ConfigError, check, from_section
from jaxws.files import atomic_write_bytes
from jaxws.methods.hunt import HuntLayout, hunt, truth_significance
from jaxws.methods.hunt.search import global_z
from jaxws.models.mlp import MLP
from jaxws.train import TrainConfig

FEATURE_SETS = ("substructure", "raw_mass", "images")
VECTOR_CLASSIFIERS = ("cwola", "trees")


@dataclasses.dataclass(frozen=True)
class HuntConfig:
    """Section `method` for `method=hunt` (conf/method/hunt.yaml documents each key)."""

    name: str = "hunt"
    n_background: int | None = 20000
    n_signal: int = 150
    signal_model: str = "id_lambda10"
    signal_mass: float = 5000.0
    signal_width: float = 100.0
    mjj_range: tuple[float, float] = (3500.0, 7000.0)
    relative_bin_width: float = 0.02
    signal_region_bins: int = 4
    sideband_bins: int = 4
    step_bins: int = 4
    features: str = "substructure"
    classifier: str = "cwola"
    tree_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    pretrained: dict[str, Any] = dataclasses.field(default_factory=dict)
    k_folds: int = 5
    n_seeds: int = 1
    validation_fraction: float = 0.2
    feature_widths: tuple[int, ...] = (32, 32)
    head_widths: tuple[int, ...] = ()
    learning_rate: float = 3e-3
    batch_size: int = 512
    max_epochs: int = 25
    patience: int = 5
    early_stopping: bool = True
    chunk_size: int | None = None
    efficiencies: tuple[float, ...] = (1.0, 0.1, 0.01, 0.002)
    n_params: str = "3"
    n_toys: int = 500
    gof_threshold: float = 0.01
    simulation_chunk: int = 4096

    def __post_init__(self):
        check(
            self.n_background is None or self.n_background >= 1000,
            "method.n_background must be >= 1000 (or null: all events of data=pythia/events)",
        )
        check(self.n_signal >= 0, "method.n_signal must be >= 0")
        check(self.features in FEATURE_SETS, f"method.features must be one of {FEATURE_SETS}")
        check(self.k_folds >= 2, f"method.k_folds must be >= 2, got {self.k_folds}")
        check(self.n_seeds >= 1, "method.n_seeds must be >= 1")
        check(self.n_toys >= 10, "method.n_toys must be >= 10")
        check(self.n_params in ("3", "4", "f_test"), "method.n_params must be 3, 4 or f_test")
        check(all(0 < e <= 1 for e in self.efficiencies), "method.efficiencies must lie in (0, 1]")
        check(self.learning_rate > 0, "method.learning_rate must be > 0")
        check(
            isinstance(self.early_stopping, bool),
            f"method.early_stopping must be true or false, got {self.early_stopping!r}",
        )
        check(
            self.early_stopping or self.classifier == "cwola",
            f"method.early_stopping=false applies to method.classifier=cwola only (the "
            f"members trained from scratch), not {self.classifier}",
        )
        if self.classifier == "trees":
            check(
                self.features != "images",
                "method.classifier=trees needs feature vectors, not method.features=images",
            )
        try:
            self.layout()
        except ValueError as error:
            raise ConfigError(f"method: {error}") from None

    def layout(self) -> HuntLayout:
        """The bins and windows."""
        return HuntLayout(
            tuple(self.mjj_range),
            self.relative_bin_width,
            self.signal_region_bins,
            self.sideband_bins,
            self.step_bins,
        )


def member_training(settings: HuntConfig) -> TrainConfig:
    """The engine settings of the CWoLa members trained from scratch (`classifier=cwola`)."""
    return TrainConfig(
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
        early_stopping=settings.early_stopping,
    )


def _is_simulator(cfg: Mapping[str, Any]) -> bool:
    from jaxws.simulate.sources import make_source

    return make_source(cfg.get("data")).config.source == "simulator"


def pretrained_config(cfg: Mapping[str, Any], settings: HuntConfig) -> Any:
    """The config that transfer / meta-transfer code reads.

    Its `method` section is conf/method/<classifier>.yaml (with its defaults list, e.g.
    meta_base) updated by `method.pretrained`; `model`, `paths` and `seed` are the run's.
    """
    from omegaconf import OmegaConf

    from jaxws.config import to_plain

    folder = Path(__file__).resolve().parents[3] / "conf" / "method"
    section = OmegaConf.load(folder / f"{settings.classifier}.yaml")
    merged = OmegaConf.create()
    for base in section.pop("defaults", []):
        merged = OmegaConf.merge(merged, OmegaConf.load(folder / f"{base}.yaml"))
    merged = OmegaConf.merge(merged, section, to_plain(settings.pretrained) or {})
    merged["name"] = settings.classifier
    root = OmegaConf.create(
        {
            "method": merged,
            "model": to_plain(cfg.get("model")),
            "paths": to_plain(cfg.get("paths")),
            "seed": int(cfg.get("seed", 0)),
        }
    )
    OmegaConf.resolve(root)
    return root


def _check_classifier(cfg: Mapping[str, Any], settings: HuntConfig) -> None:
    from jaxws.methods.cwola import _tree_options

    if settings.classifier == "cwola":
        return
    if settings.classifier == "trees":
        _tree_options(settings.tree_options)
        return
    from jaxws.methods import meta, transfer

    known = ["cwola", "trees", "transfer", *meta.available()]
    check(settings.classifier in known, f"method.classifier must be one of {known}")
    check(
        settings.features == "images",
        f"method.classifier={settings.classifier} pretrains a jet-image network on the other "
        "signal models: it needs method.features=images",
    )
    sub = pretrained_config(cfg, settings)
    try:
        if settings.classifier == "transfer":
            transfer.method_sections(sub.method)
        else:
            from jaxws.methods.meta.study import _sections

            _sections(sub)
    except ConfigError as error:
        raise ConfigError(str(error).replace("'method'", "'method.pretrained'")) from None


def check_memory(settings: HuntConfig, available: int | None = None) -> list[str]:
    """Refuse a hunt whose large arrays cannot fit in memory, before anything is simulated.

    Estimates (float32): the events (about 32 numbers each: jets, mjj, labels, features), the
    members' per-event weights and labels (n_windows x k_folds x n_seeds members, about 4
    numbers per event each) with the scores (n_windows per event), and the toys
    (n_toys x n_windows x efficiencies x bins, float64).

    Args:
      settings: the `method` section.
      available: bytes free (default: measured now).

    Returns:
      Report lines.

    Raises:
      ConfigError: one line naming the sizes, when an estimate does not fit.
    """
    from jaxws.train.memory import check_memory as check_bytes

    layout = settings.layout()
    n_events = settings.n_background + settings.n_signal
    members = layout.n_windows * settings.k_folds * settings.n_seeds
    event_bytes = 4.0 * n_events * (32 + 4 * members + layout.n_windows)
    keys = (
        f"method.n_background={settings.n_background} x "
        f"method.k_folds={settings.k_folds} x method.n_seeds={settings.n_seeds}"
    )
    lines = [check_bytes(event_bytes, "the events and the members' data", keys, available)]
    toy_bytes = (
        8.0 * settings.n_toys * layout.n_windows * len(settings.efficiencies) * layout.n_bins
    )
    keys = f"method.n_toys={settings.n_toys}"
    lines.append(check_bytes(toy_bytes, "the toys", keys, available))
    return lines


def background_mjj(data_config: Any) -> np.ndarray:
    """The mjj of every background event of a file source, read without the constituents."""
    if data_config.source == "events":
        import h5py

        from jaxws.data.readers.arrays import EventsError

        try:
            with h5py.File(Path(data_config.background).expanduser(), "r") as file:
                return np.asarray(file["mjj"][()], np.float64)
        except (OSError, KeyError) as error:
            raise EventsError(f"{data_config.background}: cannot read mjj: {error}") from None
    from jaxws.data.samples import canonical_name
    from jaxws.data.shards import ShardCollection

    collection = ShardCollection(list(data_config.paths))
    return np.asarray(
        collection.read_dataset(canonical_name(data_config.background), "mjj"), np.float64
    )


def check_coverage(layout: HuntLayout, mjj: np.ndarray) -> None:
    """Refuse events whose mjj does not cover the layout's range.

    Every bin must hold events, and the events must reach into the first and last bins by
    at least half a bin (a file selected at 4.4-5.8 TeV does not cover 3.5-7 TeV: its
    windows would see a false edge). A range edge that cuts into a bin by less than half a
    bin is not detected: set `mjj_range` at the events' selection cut.

    Raises:
        ConfigError: one line with the events' span and a range that fits.
    """
    edges = layout.edges
    mjj = np.asarray(mjj, np.float64)
    low, high = (float(mjj.min()), float(mjj.max())) if mjj.size else (np.nan, np.nan)
    empty = np.histogram(mjj, edges)[0] == 0
    if (
        not mjj.size
        or low > edges[0] + 0.5 * (edges[1] - edges[0])
        or high < edges[-1] - 0.5 * (edges[-1] - edges[-2])
        or empty.any()
    ):
        raise ConfigError(
            f"data: the background events span mjj {low:.0f}-{high:.0f} GeV, which does not "
            f"cover method.mjj_range {edges[0]:.0f}-{edges[-1]:.0f} GeV ({layout.n_windows} "
            f"windows, {int(empty.sum())} of {empty.size} bins empty); set method.mjj_range "
            f"inside the events' span, e.g. method.mjj_range=[{np.floor(low):.0f},"
            f"{np.ceil(high):.0f}], with windows that fit it (conf/experiment/hunt_pythia.yaml)"
        )


def validate(cfg: Mapping[str, Any]) -> list[str]:
    """Check the `method` and `data` sections and the events' mjj coverage (ConfigError).

    Returns the memory estimates' report lines (for `dry_run=true`); with
    `method.n_background=null` they count every background event of the files.
    """
    from jaxws.models.registry import build_model
    from jaxws.simulate.sources import make_source

    settings = from_section(HuntConfig, cfg["method"], "method")
    data = make_source(cfg.get("data")).config
    if settings.features == "images":
        build_model(cfg.get("model"))
    _check_classifier(cfg, settings)
    if data.source == "simulator":
        from jaxws.simulate.jets import benchmark

        check(
            settings.n_background is not None,
            "method.n_background must be a number with data=simulator (null: data=pythia/events)",
        )
        try:
            benchmark(settings.signal_model)
        except ValueError as error:
            raise ConfigError(f"method.signal_model: {error}") from None
        return check_memory(settings)
    lines = check_memory(settings) if settings.n_background is not None else []
    data.check_inputs()
    mjj = background_mjj(data)
    if settings.n_background is not None:
        check(
            settings.n_background <= mjj.size,
            f"method.n_background {settings.n_background} is more than the {mjj.size} "
            "background events of the data (null: all)",
        )
        mjj = mjj[: settings.n_background]
    check_coverage(settings.layout(), mjj)
    if settings.n_background is None:  # every event of the files: counted only now
        lines = check_memory(dataclasses.replace(settings, n_background=int(mjj.size)))
    return lines


def simulate(settings: HuntConfig, seed: int, data_config: Any = None) -> dict[str, np.ndarray]:
    """The events' jets, mjj and truth labels (host arrays); jet images if asked."""
    from jaxws.simulate import simulate_events
    from jaxws.simulate.jets import benchmark

    signal = dataclasses.replace(
        benchmark(settings.signal_model),
        peak_mass=settings.signal_mass,
        peak_width=settings.signal_width,
    )
    images = settings.features == "images"
    events = simulate_events(
        seed,
        settings.n_background,
        {"injected": settings.n_signal},
        signal_params={"injected": signal},
        max_constituents=data_config.max_constituents if images else 1,
        chunk_size=settings.simulation_chunk,
        mjj_range=tuple(settings.mjj_range),
    )
    return _arrays(events, data_config if images else None)


def _arrays(events: Any, image_config: Any) -> dict[str, np.ndarray]:
    from jaxws.methods.injection_study import event_pool_images

    out = {
        "jets": np.asarray(events.jets),
        "n_constituents": np.asarray(events.n_constituents),
        "mjj": np.asarray(events.mjj),
        "label": np.asarray(events.label),
    }
    if image_config is not None:
        out["images"] = event_pool_images(events, image_config)
    return out


def source_events(settings: HuntConfig, source: Any) -> tuple[dict[str, np.ndarray], int]:
    """Events of `data=pythia` / `data=events`: background first, then the injected signal.

    Returns:
        (arrays as `simulate`, number of background events).
    """
    from jaxws.data.events import JetEvents

    background = source.background()
    n_background = settings.n_background or len(background)
    check(
        n_background <= len(background),
        f"method.n_background {n_background} is more than the {len(background)} background "
        "events of the data (null: all)",
    )
    parts = [background.take(np.arange(n_background))]
    if settings.n_signal:
        parts.append(source.signal(source.config.signal, settings.n_signal))
    events = JetEvents.concatenate(parts)
    images = source.config if settings.features == "images" else None
    return _arrays(events, images), n_background


def features(events: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """Classifier inputs (module docstring): (N, 4) float32 vectors or the jet images."""
    if kind == "images":
        return np.asarray(events["images"], np.float32)
    jets, counts = events["jets"], events["n_constituents"]
    order = np.argsort(-jets[:, :, 3], axis=1)
    jets = np.take_along_axis(jets, order[:, :, None], 1)
    counts = np.take_along_axis(counts, order, 1)
    mass = jets[:, :, 3] / jets[:, :, 0] if kind == "substructure" else jets[:, :, 3] / 1000.0
    return np.concatenate([mass, np.log(np.maximum(counts, 1))], axis=1).astype(np.float32)


def _events(settings: HuntConfig, seed: int, path: Path, data_config: Any) -> dict[str, np.ndarray]:
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}
    events = simulate(settings, seed, data_config)
    buffer = io.BytesIO()
    np.savez(buffer, **events)
    atomic_write_bytes(path, buffer.getvalue())
    return events


def spectra_rows(layout: HuntLayout, efficiencies: Any, result: Any) -> list[dict]:
    """One row per window, efficiency and bin: the selected count and the sideband fit."""
    rows = []
    for w in range(layout.n_windows):
        first, sr_first, sr_end, _ = layout.window(w)
        for e, eps in enumerate(efficiencies):
            for b in range(layout.window_bins):
                rows.append(
                    {
                        "window": w,
                        "efficiency": eps,
                        "bin_low_gev": round(float(layout.edges[first + b]), 1),
                        "bin_high_gev": round(float(layout.edges[first + b + 1]), 1),
                        "region": "SR" if sr_first <= first + b < sr_end else "SB",
                        "selected": float(result.counts[w, e, b]),
                        "sideband_fit": round(float(result.tests["sideband_expected"][w, e, b]), 3),
                    }
                )
    return rows


#: Family-wise probability, under the null, that `selection_depends_on_mjj` is raised.
TILT_ALPHA = 0.01


def sideband_tilt(
    layout: HuntLayout, efficiencies: tuple[float, ...], counts: np.ndarray
) -> dict[str, float]:
    """How much the selection depends on mjj inside the windows, without any fit, and a test.

    For each efficiency eps < 1, `sideband_tilt_eff<eps>`: the fraction of the upper
    sidebands' events that pass, divided by that of the lower sidebands, summed over windows
    (1 when the classifier ignores mjj; > 1 when it keeps high-mjj events more often).

    The test of "the selection does not depend on mjj" (unit event weights): a window's
    threshold is the (1 - eps) quantile of its sideband scores, so its sidebands pass a fixed
    number k of their n = n_up + n_low events, and under the null the upper sideband's share
    k_up is hypergeometric: mean k n_up / n, variance k (n - k) (n_up / n) (n_low / n) / (n - 1).
    Windows whose bins do not overlap (every `stride = ceil(window_bins / step_bins)`-th
    window) hold distinct events, so their k_up are independent: for each of the `stride`
    offsets, z = sum(k_up - mean) / sqrt(sum(variance)) over that set of windows (the
    Mantel-Haenszel form; z > 0 when the upper sidebands pass more often), normal for large
    counts. `sideband_tilt_z_eff<eps>` is the signed z of largest |z| over the offsets;
    `selection_depends_on_mjj` is 1 when any |z| (offsets x efficiencies, m tests) exceeds
    Phi^-1(1 - TILT_ALPHA / (2 m)) (Bonferroni: at most a 1 % false-flag probability
    under the null, whatever the sets' dependence), stored as `sideband_tilt_z_threshold`.
    Needs efficiency 1 (the unselected counts); {} without it.
    """
    from scipy.stats import norm

    if 1.0 not in efficiencies:
        return {}
    everything = counts[:, efficiencies.index(1.0)]
    n_sb = layout.sideband_bins
    stride = -(-layout.window_bins // layout.step_bins)
    offsets = [range(o, layout.n_windows, stride) for o in range(min(stride, layout.n_windows))]
    selections = [e for e, eps in enumerate(efficiencies) if eps != 1.0]
    threshold = float(norm.isf(TILT_ALPHA / (2 * max(1, len(offsets) * len(selections)))))
    out: dict[str, float] = {}
    flagged = False
    for e in selections:
        eps = efficiencies[e]
        lower = counts[:, e, :n_sb].sum() / max(everything[:, :n_sb].sum(), 1.0)
        upper = counts[:, e, -n_sb:].sum() / max(everything[:, -n_sb:].sum(), 1.0)
        out[f"sideband_tilt_eff{eps:g}"] = float(upper / lower) if lower > 0 else float("inf")
        z_values = []
        for windows in offsets:
            w = list(windows)
            n_low, n_up = everything[w, :n_sb].sum(axis=1), everything[w, -n_sb:].sum(axis=1)
            k_low, k_up = counts[w, e, :n_sb].sum(axis=1), counts[w, e, -n_sb:].sum(axis=1)
            n, k = n_low + n_up, k_low + k_up
            share = np.divide(n_up, n, out=np.zeros_like(n), where=n > 0)
            variance = k * (n - k) * share * (1 - share) / np.maximum(n - 1, 1.0)
            if variance.sum() <= 0:
                continue
            z_values.append(float((k_up - k * share).sum() / np.sqrt(variance.sum())))
        z = max(z_values, key=abs) if z_values else 0.0
        out[f"sideband_tilt_z_eff{eps:g}"] = z
        flagged |= abs(z) > threshold
    if selections:
        out["sideband_tilt_z_threshold"] = threshold
        out["selection_depends_on_mjj"] = int(flagged)
    return out


def _member_scores(
    cfg: Mapping[str, Any],
    settings: HuntConfig,
    source: Any,
    n_background: int,
    seed: int,
    tracker: Any,
) -> tuple[Any, list]:
    """The classifier's `MemberScores` and the list of non-converged members it fills."""
    from jaxws.methods.hunt import classifiers, neural_member_scores
    from jaxws.models.registry import build_model

    train_config = member_training(settings)
    if settings.classifier == "trees":
        return classifiers.tree_member_scores(settings.tree_options, seed)
    if settings.features == "images":
        model = build_model(cfg.get("model"))
    else:
        model = MLP(feature_widths=settings.feature_widths, head_widths=settings.head_widths)
    if settings.classifier == "cwola":
        return neural_member_scores(
            model,
            train_config,
            settings.learning_rate,
            chunk_size=settings.chunk_size,
            checkpoint_dir=str(tracker.path("checkpoints/hunt")),
            progress="hunt",
        ), []
    import types

    if source.config.source == "simulator":
        from jaxws.simulate.sources import SimulatorSource

        # the source sample: other benchmarks and background drawn from another seed
        source = SimulatorSource(
            dataclasses.replace(
                source.config,
                signal=settings.signal_model,
                seed=(seed + 1_000_003) % 2**31,
            )
        )
    training = types.SimpleNamespace(
        learning_rate=settings.learning_rate,
        patience=settings.patience,
        max_epochs=settings.max_epochs,
        batch_size=settings.batch_size,
        chunk_size=settings.chunk_size or 0,
    )
    return classifiers.pretrained_member_scores(
        settings.classifier,
        pretrained_config(cfg, settings),
        {
            "n_hunt_background": n_background,
            "model": model,
            "source": source,
            "signal_name": source.config.signal,
            "training": training,
        },
        tracker,
    ), []


def run(cfg: Mapping[str, Any], key: jax.Array, run_dir: str | Path, tracker: Any) -> dict:
    """Simulate (or reload) the events, run the hunt, write the table, figure and metrics."""
    from jaxws.plotting.hunt import hunt_figure
    from jaxws.simulate.sources import make_source

    settings = from_section(HuntConfig, cfg["method"], "method")
    layout = settings.layout()
    source = make_source(cfg.get("data"))
    simulator = source.config.source == "simulator"
    seed = int(jax.random.randint(jax.random.fold_in(key, 0), (), 0, 2**31 - 1))
    start = time.perf_counter()
    if simulator:
        events = _events(settings, seed, Path(run_dir) / "hunt_events.npz", source.config)
        n_background = int(np.sum(events["label"] == 0))
    else:
        events, n_background = source_events(settings, source)
        check_coverage(layout, events["mjj"][:n_background])
    simulated = time.perf_counter() - start
    x = features(events, settings.features)
    n_params = settings.n_params if settings.n_params == "f_test" else int(settings.n_params)
    member_scores, not_converged = _member_scores(
        cfg, settings, source, n_background, seed % 2**30, tracker
    )
    out = hunt(
        jax.random.fold_in(key, 1),
        x,
        events["mjj"],
        layout,
        member_scores=member_scores,
        k_folds=settings.k_folds,
        n_seeds=settings.n_seeds,
        validation_fraction=settings.validation_fraction,
        efficiencies=tuple(settings.efficiencies),
        n_params=n_params,
        n_toys=settings.n_toys,
        seed=seed % 2**30,
    )
    result = out.result
    tests = result.tests
    truth = truth_significance(
        layout,
        events["mjj"],
        out.scores,
        events["label"],
        out.thresholds,
        tests["background_uncertainty"],
    )
    if simulator:
        described = (
            f"simulator: {n_background} QCD + {settings.n_signal} {settings.signal_model}"
            f" at {settings.signal_mass:g} GeV"
        )
    else:
        described = (
            f"{source.config.source}: {n_background} background + {settings.n_signal}"
            f" {source.config.signal}"
        )
    rows = []
    for w in range(layout.n_windows):
        _, sr_first, sr_end, _ = layout.window(w)
        for e, eps in enumerate(settings.efficiencies):
            rows.append(
                {
                    "window": w,
                    "sr_low_gev": round(float(layout.edges[sr_first]), 1),
                    "sr_high_gev": round(float(layout.edges[sr_end]), 1),
                    "efficiency": eps,
                    "observed_sr": tests["observed"][w, e],
                    "fitted_background_sr": round(float(tests["background"][w, e]), 2),
                    "fit_uncertainty_sr": round(float(tests["background_uncertainty"][w, e]), 2),
                    "local_z": round(float(tests["z"][w, e]), 3),
                    "local_p": float(tests["p_value"][w, e]),
                    "n_params": int(tests["n_params"][w, e]),
                    "gof_p": round(float(tests["gof_pvalue"][w, e]), 4),
                    "converged": bool(tests["converged"][w, e]),
                    "sculpting": bool(result.sculpting[w, e]),
                    "true_signal_sr": truth["signal"][w, e],
                    "true_background_sr": truth["background_true"][w, e],
                    "z_truth_eq2": round(float(truth["z_eq2"][w, e]), 3),
                    "z_truth_eq8_fit_sigma": round(float(truth["z_eq8"][w, e]), 3),
                }
            )
    tracker.save_table("hunt_table", rows)
    tracker.save_table("hunt_spectra", spectra_rows(layout, settings.efficiencies, result))
    usable = np.where(tests["converged"], tests["z"], -np.inf)
    best_w, best_e = np.unravel_index(int(np.argmax(usable)), usable.shape)
    fig = hunt_figure(
        layout.edges,
        [layout.window(w) for w in range(layout.n_windows)],
        result.centres,
        tuple(settings.efficiencies),
        result.counts,
        tests["sideband_expected"],
        tests["p_value"],
        int(best_w),
        converged=tests["converged"],
        title=(
            f"{described}; {settings.k_folds}-fold {settings.classifier} on {settings.features};"
            f" global p from {settings.n_toys} toys"
        ),
    )
    tracker.save_figure("hunt", fig)
    if simulator:
        signal_window = int(np.argmin(np.abs(result.centres - settings.signal_mass)))
    else:  # the window whose SR holds the most injected events
        signal_window = int(np.argmax(truth["signal"][:, 0]))
    metrics = {
        "max_local_z": result.max_z,
        "best_window": int(best_w),
        "best_window_centre_gev": float(result.centres[best_w]),
        "best_efficiency": float(settings.efficiencies[best_e]),
        "global_p_value": result.global_p_value,
        "global_p_error": result.global_p_error,
        "global_z": global_z(max(result.global_p_value, 0.5 / settings.n_toys)),
        "n_toys": settings.n_toys,
        "n_windows": layout.n_windows,
        "n_members": int(out.plan.window.size),
        "sculpting_flags": int(result.sculpting.sum()),
        **sideband_tilt(layout, tuple(settings.efficiencies), result.counts),
        "classifier": settings.classifier,
        "n_background_events": n_background,
        "classifier_members_not_converged": len(not_converged),
        "signal_window": signal_window,
        "simulation_seconds": simulated,
    }
    for e, eps in enumerate(settings.efficiencies):
        metrics[f"z_signal_window_eff{eps:g}"] = float(tests["z"][signal_window, e])
        metrics[f"z_truth_eq8_signal_window_eff{eps:g}"] = float(truth["z_eq8"][signal_window, e])
    tracker.log_metrics(metrics)
    if metrics.get("selection_depends_on_mjj"):
        z = {k: round(v, 1) for k, v in metrics.items() if k.startswith("sideband_tilt_z_eff")}
        print(
            f"jaxws: warning: hunt: the selection depends on mjj inside the windows ({z}, "
            f"beyond {metrics['sideband_tilt_z_threshold']:.2f}): the classifier's inputs carry "
            "mjj; a smooth reshaping is absorbed by the background fit (docs/hunt.md)",
            file=sys.stderr,
        )
    return metrics
