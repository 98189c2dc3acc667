"""`experiment=hunt`: CWoLa hunting on the built-in simulator's full dijet spectrum.

Events: QCD dijets over `mjj_range` (`jaxws.simulate.simulate_events(mjj_range=...)`) and an
injected dark-shower resonance (`signal_model`'s jet shapes, its mjj peak moved to
`signal_mass`). Classifier inputs per event (`features`):
  * "substructure": per jet (ordered by jet mass) m/pT and ln(constituent count), which the
    simulator draws independently of mjj (no sculpting expected);
  * "raw_mass": per jet the mass in GeV and ln(count); the mass scales with mjj, so a
    classifier can learn mjj and sculpt the spectrum: the sculpting check's test case.
Outputs in the run directory: hunt_table.csv (one row per window and efficiency: observed,
fitted background and its uncertainty, local Z and p, goodness of fit, `sculpting`, and the
truth counts with eq. 2 and eq. 8 significances), figures/hunt.png, metrics.json. Resumable:
the events are saved once (hunt_events.npz) and the engine saves finished member chunks.
"""

from __future__ import annotations

import dataclasses
import io
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

FEATURE_SETS = ("substructure", "raw_mass")


@dataclasses.dataclass(frozen=True)
class HuntConfig:
    """Section `method` for `method=hunt` (conf/method/hunt.yaml documents each key)."""

    name: str = "hunt"
    n_background: int = 20000
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
    k_folds: int = 5
    n_seeds: int = 1
    validation_fraction: float = 0.2
    feature_widths: tuple[int, ...] = (32, 32)
    head_widths: tuple[int, ...] = ()
    learning_rate: float = 3e-3
    batch_size: int = 512
    max_epochs: int = 25
    patience: int = 5
    chunk_size: int | None = None
    efficiencies: tuple[float, ...] = (1.0, 0.1, 0.01, 0.002)
    n_params: str = "3"
    n_toys: int = 500
    gof_threshold: float = 0.01
    simulation_chunk: int = 4096

    def __post_init__(self):
        check(self.n_background >= 1000, "method.n_background must be >= 1000")
        check(self.n_signal >= 0, "method.n_signal must be >= 0")
        check(self.features in FEATURE_SETS, f"method.features must be one of {FEATURE_SETS}")
        check(self.k_folds >= 2, f"method.k_folds must be >= 2, got {self.k_folds}")
        check(self.n_seeds >= 1, "method.n_seeds must be >= 1")
        check(self.n_toys >= 10, "method.n_toys must be >= 10")
        check(self.n_params in ("3", "4", "f_test"), "method.n_params must be 3, 4 or f_test")
        check(all(0 < e <= 1 for e in self.efficiencies), "method.efficiencies must lie in (0, 1]")
        check(self.learning_rate > 0, "method.learning_rate must be > 0")
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


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the `method` section (raises ConfigError naming the key)."""
    settings = from_section(HuntConfig, cfg["method"], "method")
    from jaxws.simulate.jets import benchmark

    try:
        benchmark(settings.signal_model)
    except ValueError as error:
        raise ConfigError(f"method.signal_model: {error}") from None
    check_memory(settings)


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


def simulate(settings: HuntConfig, seed: int) -> dict[str, np.ndarray]:
    """The events' features, mjj and truth labels (host arrays)."""
    from jaxws.simulate import simulate_events
    from jaxws.simulate.jets import benchmark

    signal = dataclasses.replace(
        benchmark(settings.signal_model),
        peak_mass=settings.signal_mass,
        peak_width=settings.signal_width,
    )
    events = simulate_events(
        seed,
        settings.n_background,
        {"injected": settings.n_signal},
        signal_params={"injected": signal},
        max_constituents=1,
        chunk_size=settings.simulation_chunk,
        mjj_range=tuple(settings.mjj_range),
    )
    return {
        "jets": events.jets,
        "n_constituents": events.n_constituents,
        "mjj": events.mjj,
        "label": events.label,
    }


def features(events: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """(N, 4) float32 classifier inputs (module docstring), jets ordered by mass."""
    jets, counts = events["jets"], events["n_constituents"]
    order = np.argsort(-jets[:, :, 3], axis=1)
    jets = np.take_along_axis(jets, order[:, :, None], 1)
    counts = np.take_along_axis(counts, order, 1)
    mass = jets[:, :, 3] / jets[:, :, 0] if kind == "substructure" else jets[:, :, 3] / 1000.0
    return np.concatenate([mass, np.log(np.maximum(counts, 1))], axis=1).astype(np.float32)


def _events(settings: HuntConfig, seed: int, path: Path) -> dict[str, np.ndarray]:
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}
    events = simulate(settings, seed)
    buffer = io.BytesIO()
    np.savez(buffer, **events)
    atomic_write_bytes(path, buffer.getvalue())
    return events


def run(cfg: Mapping[str, Any], key: jax.Array, run_dir: str | Path, tracker: Any) -> dict:
    """Simulate (or reload) the events, run the hunt, write the table, figure and metrics."""
    from jaxws.plotting.hunt import hunt_figure

    settings = from_section(HuntConfig, cfg["method"], "method")
    layout = settings.layout()
    seed = int(jax.random.randint(jax.random.fold_in(key, 0), (), 0, 2**31 - 1))
    start = time.perf_counter()
    events = _events(settings, seed, Path(run_dir) / "hunt_events.npz")
    simulated = time.perf_counter() - start
    x = features(events, settings.features)
    n_params = settings.n_params if settings.n_params == "f_test" else int(settings.n_params)
    out = hunt(
        jax.random.fold_in(key, 1),
        x,
        events["mjj"],
        layout,
        model=MLP(feature_widths=settings.feature_widths, head_widths=settings.head_widths),
        train_config=TrainConfig(
            batch_size=settings.batch_size,
            max_epochs=settings.max_epochs,
            patience=settings.patience,
        ),
        learning_rate=settings.learning_rate,
        k_folds=settings.k_folds,
        n_seeds=settings.n_seeds,
        validation_fraction=settings.validation_fraction,
        efficiencies=tuple(settings.efficiencies),
        n_params=n_params,
        n_toys=settings.n_toys,
        seed=seed % 2**30,
        chunk_size=settings.chunk_size,
        checkpoint_dir=str(tracker.path("checkpoints/hunt")),
        progress="hunt",
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
            f"simulator: {settings.n_background} QCD + {settings.n_signal} {settings.signal_model}"
            f" at {settings.signal_mass:g} GeV; {settings.k_folds}-fold, {settings.features};"
            f" global p from {settings.n_toys} toys"
        ),
    )
    tracker.save_figure("hunt", fig)
    signal_window = int(np.argmin(np.abs(result.centres - settings.signal_mass)))
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
        "signal_window": signal_window,
        "simulation_seconds": simulated,
    }
    for e, eps in enumerate(settings.efficiencies):
        metrics[f"z_signal_window_eff{eps:g}"] = float(tests["z"][signal_window, e])
        metrics[f"z_truth_eq8_signal_window_eff{eps:g}"] = float(truth["z_eq8"][signal_window, e])
    tracker.log_metrics(metrics)
    return metrics
