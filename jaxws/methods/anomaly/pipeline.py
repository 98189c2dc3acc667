"""`run()` of the anomaly-aware method: a few named steps, then metrics, figures and tables.

Key streams (`fold_in` of the run's key): 0 samples, 1-2 training (inside `train_scorer`),
3 scoring, 40 + i sensitivity case i, 5 + 1000 i the R scan's i-th R, 6-7 the null check.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxws.methods.anomaly.samples import simulate_samples
from jaxws.methods.anomaly.scoring import train_scorer
from jaxws.methods.anomaly.settings import AnomalyTestConfig, settings_from_config
from jaxws.methods.anomaly.steps import (
    ScoredSamples,
    background_count,
    benchmark_counts,
    check_null,
    r_scan,
    score_samples,
    score_views,
    sensitivity_cases,
    sensitivity_curves,
)
from jaxws.plotting import anomaly as figures
from jaxws.plotting import sample_label
from jaxws.simulate import tpc
from jaxws.stats.roc import auc_of_samples
from jaxws.track.curves import log_learning_curves


def run(
    cfg: Mapping[str, Any], key: jax.Array, run_dir: str | Path, tracker: Any, progress: bool = True
) -> dict[str, float]:
    """Simulate, train the VAE and the classifier, score, test; save figures and tables.

    Args:
      cfg: the resolved config (sections `data` and `method`).
      key: typed PRNG key (split into named streams by `fold_in`).
      run_dir: the run directory (outputs go through `tracker`).
      tracker: `jaxws.track.Tracker`-like (`log_metrics`, `save_json`, `save_figure`).
      progress: tqdm bars on the long phases.

    Returns:
      Flat dict of the finite scalar metrics.
    """
    del run_dir  # everything is written through the tracker
    data, vae_settings, classifier_settings, test = settings_from_config(cfg)
    samples = simulate_samples(jax.random.fold_in(key, 0), data, test.wimp_masses)
    scorer, fit_metrics = train_scorer(
        key, samples, vae_settings, classifier_settings, progress=progress
    )
    # Per-epoch training and validation losses: metrics lines and learning_curves_*.csv.
    log_learning_curves(tracker, "anomaly_vae", fit_metrics["_vae_fit"])
    log_learning_curves(tracker, "anomaly_classifier", fit_metrics["_classifier_fit"])
    background = background_count(samples, data, test)
    if test.expected_background is None:
        # B from the exposure: ER (and NR) recoils in the window x the detected fraction.
        test = dataclasses.replace(test, expected_background=background["background_detected"])
    score_key = jax.random.fold_in(key, 3)
    scored = score_samples(scorer, samples, score_key)
    benchmarks = {**benchmark_counts(samples, data, test), **background}
    views = score_views(scorer, samples, scored, test)
    # Toys resume from finished chunks here after a kill (`jaxws.train.resume.map_chunks`).
    checkpoints = tracker.path("checkpoints/anomaly_toys")
    curves = sensitivity_curves(key, scored, test, progress, checkpoints)
    detected = [benchmarks[f"benchmark_detected_m{m:g}"] for m in test.wimp_masses]
    scan = r_scan(key, scored, test, detected, progress, checkpoints)
    calibration = check_null(key, score_key, scorer, scored, data, test, progress, checkpoints)

    save_figures(tracker, views, curves, scan, calibration, test)
    metrics = collect_metrics(fit_metrics, scored, benchmarks, curves, scan, calibration, test)
    warn_not_converged(metrics)
    tracker.log_metrics(metrics)
    tracker.save_json(
        "anomaly_results",
        results_record(metrics, fit_metrics, views["encoding"], curves, scan, calibration, test),
    )
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


def warn_not_converged(metrics: Mapping[str, Any]) -> None:
    """One console line when signal-count fits hit their step limit (toys and observed sets).

    Their count is the run's `toy_fits_not_converged`; their q0 is the last Newton iterate's,
    below the maximum, so the p-values they enter are flagged rather than trusted silently.
    """
    n = int(metrics.get("toy_fits_not_converged", 0))
    if n:
        print(
            f"jaxws: warning: anomaly test: {n} signal-count fits stopped at their step limit "
            "before the tolerance (toy_fits_not_converged in the results); the p-values that "
            "use them are not exact",
            file=sys.stderr,
        )


def save_figures(
    tracker: Any,
    views: dict,
    curves: dict[str, dict],
    scan: dict,
    calibration: dict[float, dict],
    test: AnomalyTestConfig,
) -> None:
    """Latent view, TS distributions, sensitivity, R scans and the null check, via `tracker`."""
    masses = tuple(test.wimp_masses)
    tracker.save_figure(
        "latent_space",
        figures.latent_figure(
            views["background_latent"], views["energy"], views["signal_latent"], views["encoding"]
        ),
    )
    tracker.save_figure(
        "score_distributions",
        figures.score_figure(views["background_ts"], views["signal_ts"], test.r),
    )
    toys = f"{test.n_null_toys} null and {test.n_signal_toys} signal toys"
    sample = f"TPC toy, B = {test.expected_background:g} expected background events, {toys}"
    labelled = figures.sensitivity_curves(
        curves,
        test.r,
        test.sensitivity_mass,
        test.mismatch_signal_mass,
        test.mismatch_template_mass,
    )
    tracker.save_figure(
        "sensitivity",
        figures.sensitivity_figure(
            labelled,
            curves["r"]["gof"]["floor"],
            # the t curves and the matched q0 at the benchmark mass, the template cases on
            # another signal mass: the title names both
            f"{sample}; WIMP signal m = {test.sensitivity_mass:g} GeV, template cases on "
            f"m = {test.mismatch_signal_mass:g} GeV",
        ),
    )
    scan_signal = (
        "the benchmarks' detected counts"
        if test.scan_signal_rate is None
        else f"s = {test.scan_signal_rate:g} events"
    )
    for name, statistic in (("r_scan", "gof"), ("r_scan_template", "q0")):
        title = sample_label(sample, scan_signal)
        tracker.save_figure(name, figures.r_scan_figure(scan, masses, statistic, title))
        # The same scan with each TS cut (quantile q of f_0's sample) applied before the test.
        for k, q in enumerate(scan["cut_quantiles"]):
            if q > 0:
                cut_scan = {**scan, statistic: _cut_plane(scan[f"{statistic}_cuts"], k)}
                cut_title = sample_label(sample, f"{scan_signal}, TS cut at quantile {q:g} of f_0")
                tracker.save_figure(
                    f"{name}_cut{q:g}",
                    figures.r_scan_figure(cut_scan, masses, statistic, cut_title),
                )
    if calibration:
        tracker.save_figure("null_p_values", figures.null_figure(calibration))


def _cut_plane(summary: dict, k: int) -> dict:
    """The (n_R, M) summary of cut k from a (n_R, n_cut, M) one."""
    plane = {key: np.asarray(value)[:, k] for key, value in summary.items() if key != "floor"}
    plane["floor"] = summary["floor"]
    return plane


def collect_metrics(
    fit_metrics: dict,
    scored: ScoredSamples,
    benchmarks: dict[str, float],
    curves: dict[str, dict],
    scan: dict,
    calibration: dict[float, dict],
    test: AnomalyTestConfig,
) -> dict[str, float]:
    """The run's flat scalar metrics (training, samples, benchmarks, null check, p-values)."""
    masses = tuple(test.wimp_masses)
    metrics: dict[str, float] = {k: v for k, v in fit_metrics.items() if not k.startswith("_")}
    metrics["n_background_null"] = int(scored.reference[0].size)
    metrics["n_background_bank"] = int(scored.bank[0].size)
    metrics["n_signal_per_benchmark"] = int(scored.signal_nelbo.shape[1])
    metrics.update(benchmarks)
    for j, mass in enumerate(masses):
        metrics[f"vae_auc_m{mass:g}"] = auc_of_samples(scored.signal_nelbo[j], scored.reference[0])
    metrics["expected_background"] = float(test.expected_background)
    for r, entry in calibration.items():
        for name in ("gof", "q0"):
            for k, v in entry[name].items():
                metrics[f"null_{name}_r{r:g}_{k}"] = v
        for q, cut_entry in entry["cuts"].items():
            if q > 0:
                for name in ("gof", "q0"):
                    for k, v in cut_entry[name].items():
                        metrics[f"null_{name}_r{r:g}_cut{q:g}_{k}"] = v
    metrics["toy_fits_not_converged"] = float(
        scan["not_converged"]
        + sum(c["not_converged"] for c in curves.values())
        + sum(c["not_converged"] for e in calibration.values() for c in e["cuts"].values())
    )
    for name, curve in curves.items():
        for statistic in ("gof", "q0"):
            summary = curve[statistic]
            for rate, p in zip(curve["signal_rates"], summary["median_p"], strict=True):
                metrics[f"median_p_{statistic}_{name}_s{float(rate):g}"] = float(p)
    metrics["toy_overflow"] = float(scan["overflow"] or any(c["overflow"] for c in curves.values()))
    for i, r in enumerate(scan["r_values"]):
        for j, mass in enumerate(masses):
            for statistic in ("gof", "q0"):
                key_name = f"r_scan_p_{statistic}_m{mass:g}_r{float(r):g}"
                metrics[key_name] = float(scan[statistic]["median_p"][i, j])
    for i, r in enumerate(scan["r_values"]):
        for k, q in enumerate(scan["cut_quantiles"][1:], start=1):
            for j, mass in enumerate(masses):
                for statistic in ("gof", "q0"):
                    key_name = f"r_scan_p_{statistic}_m{mass:g}_r{float(r):g}_cut{float(q):g}"
                    metrics[key_name] = float(scan[f"{statistic}_cuts"]["median_p"][i, k, j])
    for j, mass in enumerate(masses):
        metrics[f"best_r_gof_m{mass:g}"] = float(scan["best_r_gof"][j])
        # How many R values share that smallest median p, and whether it is only a bound.
        metrics[f"best_r_gof_m{mass:g}_n_tied"] = float(np.sum(scan["best_r_tied_gof"][:, j]))
        metrics[f"best_r_gof_m{mass:g}_at_cap"] = float(scan["best_r_at_cap_gof"][j])
    return metrics


def _floats(tree: Any) -> Any:
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def results_record(
    metrics: dict[str, float],
    fit_metrics: dict,
    encoding: dict[str, list[float]],
    curves: dict[str, dict],
    scan: dict,
    calibration: dict[float, dict],
    test: AnomalyTestConfig,
) -> dict:
    """The JSON record `anomaly_results` (read by experiments/anomaly_tables.py)."""
    masses = tuple(test.wimp_masses)
    cases = sensitivity_cases(test)
    return {
        "metrics": metrics,
        "masses": list(masses),
        "nr_slopes_kev": [float(tpc.nr_spectrum_slope(mass)) for mass in masses],
        "latent_encoding": encoding,
        "sensitivity": {
            name: _floats(
                {
                    "case": dict(
                        zip(("r", "signal_mass", "template_mass"), cases[name], strict=True)
                    ),
                    "signal_rates": curve["signal_rates"],
                    "gof": curve["gof"],
                    "q0": curve["q0"],
                    "median_s_hat": curve["median_s_hat"],
                }
            )
            for name, curve in curves.items()
        },
        "r_scan": _floats(scan),
        "null_calibration": {
            f"{r:g}": {
                **{name: entry[name] for name in ("gof", "q0")},
                "cuts": {
                    f"{q:g}": {"cut": c["cut"], "gof": c["gof"], "q0": c["q0"]}
                    for q, c in entry["cuts"].items()
                },
            }
            for r, entry in calibration.items()
        },
        "vae_val_loss": _floats(fit_metrics["_vae_val_loss"]),
        "classifier_val_loss": _floats(fit_metrics["_classifier_val_loss"]),
    }
