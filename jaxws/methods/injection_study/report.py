"""Study report: per-injection tables, learning thresholds with bootstrap errors, figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from jaxws.methods.injection_study.evaluation import StudyResult
from jaxws.methods.injection_study.inputs import StudyInputs
from jaxws.stats.thresholds import bootstrap_thresholds, signal_for_discovery

if TYPE_CHECKING:
    from jaxws.track import Tracker


def _by_injection(
    result: StudyResult, values: np.ndarray, usable_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(injections, values reshaped to (n_injections, n_pseudo_experiments)).

    With `usable_only`, diverged members' entries are NaN.
    """
    values = np.asarray(values, float)
    if usable_only:
        values = np.where(result.usable(), values, np.nan)
    injections = np.unique(result.injection)
    table = np.stack([values[result.injection == i] for i in injections])
    return injections, table


def _spread(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.std(ddof=1)) if len(finite) > 1 else 0.0


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _plotted_runs(result: StudyResult) -> np.ndarray:
    """Best final Z (n_injections, n_runs) of the pseudo-experiments without diverged members.

    All of them when none diverged; the per-injection mean over usable members if every
    pseudo-experiment has one.
    """
    _, table = _by_injection(result, result.best_z, usable_only=True)
    complete = np.isfinite(table).all(axis=0)
    if complete.any():
        return table[:, complete]
    return np.array([[_mean(row)] for row in table])


def report_diverged(results: dict[str, StudyResult]) -> list[dict]:
    """Print one console line per method with diverged members; returns them as rows."""
    import sys

    rows = []
    for method, result in results.items():
        flagged = [m for m, reason in enumerate(result.diverged) if reason]
        if not flagged:
            continue
        detail = "; ".join(
            f"member {m} (injection {int(result.injection[m])}, experiment "
            f"{int(result.experiment[m])}): {result.diverged[m]}"
            for m in flagged
        )
        print(
            f"jaxws: warning: {method}: {len(flagged)} of {len(result.diverged)} members "
            f"diverged and are left out of means and spreads: {detail}",
            file=sys.stderr,
        )
        rows += [
            {
                "method": method,
                "member": m,
                "injection": int(result.injection[m]),
                "experiment": int(result.experiment[m]),
                "reason": result.diverged[m],
            }
            for m in flagged
        ]
    return rows


def threshold_table(results: dict[str, StudyResult], reference: str = "CWoLa") -> list[dict]:
    """Per method: learning threshold and signal for 5 sigma (bootstrap errors), ratio to CWoLa.

    Only injections > 0 enter (the curve of final against initial significance).
    `ratio_to_cwola` is signal_for_5sigma / CWoLa's (NaN if either is undefined or CWoLa
    is not among the methods).
    """
    rows = []
    for method, result in results.items():
        # Diverged members (NaN) are left out of the mean curves and the bootstrap.
        injections, best = _by_injection(result, result.best_z, usable_only=True)
        _, initial = _by_injection(result, result.initial_z)
        keep = injections > 0
        numbers = bootstrap_thresholds(injections[keep], initial[keep, 0], best[keep])
        rows.append({"method": method} | numbers)
    signals = {row["method"]: row["signal_for_5sigma"] for row in rows}
    for row in rows:
        base = signals.get(reference, np.nan)
        row["ratio_to_cwola"] = float(row["signal_for_5sigma"] / base) if base else np.nan
    order = [
        "method",
        "threshold_z",
        "threshold_z_std",
        "signal_for_5sigma",
        "signal_for_5sigma_std",
        "ratio_to_cwola",
        "threshold_kind",
        "threshold_defined",
        "signal_defined",
    ]
    return [{k: row[k] for k in order} for row in rows]


def summarise(results: dict[str, StudyResult]) -> tuple[dict[str, float], list[dict]]:
    """Scalar metrics and a per-(method, injection) table."""
    metrics: dict[str, float] = {}
    rows = []
    for method, result in results.items():
        usable = result.usable()
        injections, best = _by_injection(result, result.best_z, usable_only=True)
        _, auc = _by_injection(result, result.auc, usable_only=True)
        _, initial = _by_injection(result, result.initial_z)
        for k, injection in enumerate(injections):
            rows.append(
                {
                    "method": method,
                    "injection": int(injection),
                    "initial_z": float(initial[k, 0]),
                    "final_z_mean": _mean(best[k]),
                    "final_z_std": _spread(best[k]),
                    "auc_mean": _mean(auc[k]),
                    "auc_std": _spread(auc[k]),
                    "n_diverged": int(np.sum(~np.isfinite(best[k]))),
                }
            )
        # A pseudo-experiment with a diverged member at any injection has no curve of its own.
        mean_curve = np.array([[_mean(row)] for row in best])
        mean_signal, _ = signal_for_discovery(injections, initial[:, 0], mean_curve)
        complete = np.isfinite(best).all(axis=0)
        _, per_run = signal_for_discovery(injections, initial[:, 0], best[:, complete])
        key = method.lower().replace(" ", "_").replace("-", "_")
        metrics[f"{key}/n_diverged"] = int((~usable).sum())
        metrics[f"{key}/signal_for_5sigma"] = mean_signal
        finite = per_run[np.isfinite(per_run)]
        metrics[f"{key}/signal_for_5sigma_std"] = (
            float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
        )
        metrics[f"{key}/runs_reaching_5sigma"] = len(finite)
        zero = (result.injection == 0) & usable
        if zero.any():
            metrics[f"{key}/no_signal_auc_mean"] = float(result.auc[zero].mean())
            ratio = result.signal_efficiencies[zero] / result.background_efficiencies
            metrics[f"{key}/no_signal_eps_ratio_mean"] = float(ratio.mean())
        top = (result.injection == injections.max()) & usable
        metrics[f"{key}/auc_at_max_injection"] = (
            float(result.auc[top].mean()) if top.any() else float("nan")
        )
    return metrics, rows


def _report_sculpting(
    tracker: Tracker,
    inputs: StudyInputs,
    results: dict[str, StudyResult],
    metrics: dict[str, Any],
    figure_name: str,
) -> None:
    """`sculpting.csv`, the mjj figure and the largest |pull| per method (sculpting.py)."""
    from jaxws.methods.sculpting import sculpting_rows
    from jaxws.plotting import sculpting_figure

    checked = {m: r.sculpting for m, r in results.items() if r.sculpting is not None}
    if not checked:
        return
    rows = [row for m, sc in checked.items() for row in sculpting_rows(m, sc)]
    tracker.save_table("sculpting", rows)
    for method, sc in checked.items():
        key = method.lower().replace(" ", "_").replace("-", "_")
        metrics[f"{key}/sculpting_max_abs_pull"] = float(np.max(np.abs(sc.pull)))
    label = (
        f"{inputs.signal_name} study, background pool of {len(inputs.background_mjj)} events, "
        f"{len(next(iter(checked.values())).pull)} no-signal classifiers per method"
    )
    tracker.save_figure(f"{figure_name}_sculpting", sculpting_figure(checked, label))


def _figure_label(inputs: StudyInputs) -> str:
    from jaxws import plotting

    return plotting.sample_label(
        getattr(inputs.source.config, "source", "events"),
        inputs.signal_name,
        inputs.images.shape[-1],
        inputs.study.n_background_sr,
        inputs.study.n_pseudo_experiments,
    )


def report(
    tracker: Tracker,
    inputs: StudyInputs,
    results: dict[str, StudyResult],
    figure_name: str = "significance",
) -> dict[str, Any]:
    """Write tables and figures for one or more methods; returns the scalar metrics."""
    from jaxws import plotting

    metrics, rows = summarise(results)
    diverged = report_diverged(results)
    if diverged:
        tracker.save_json("diverged_members", diverged)
    tracker.save_table("study", rows)
    thresholds = threshold_table(results)
    tracker.save_table("thresholds", thresholds)
    for row in thresholds:
        key = row["method"].lower().replace(" ", "_").replace("-", "_")
        for name in ("threshold_z", "threshold_z_std", "ratio_to_cwola"):
            metrics[f"{key}/{name}"] = row[name]
        threshold = {
            "crossing": f"learning threshold Z = {row['threshold_z']:.2f} "
            f"+- {row['threshold_z_std']:.2f}",
            "below range": f"learning threshold Z < {row['threshold_z']:.2f} (below the scan)",
            "not reached": "learning threshold above the scanned range",
        }[row["threshold_kind"]]
        print(
            f"{row['method']:>10}: {threshold}; signal for 5 sigma = "
            f"{row['signal_for_5sigma']:.0f} +- {row['signal_for_5sigma_std']:.0f}"
            f" (ratio to CWoLa {row['ratio_to_cwola']:.2f})"
        )
    working_rows = []
    for method, result in results.items():
        for m in range(len(result.injection)):
            for k, e in enumerate(result.background_efficiencies):
                working_rows.append(
                    {
                        "method": method,
                        "injection": int(result.injection[m]),
                        "experiment": int(result.experiment[m]),
                        "background_efficiency": float(e),
                        "signal_efficiency": float(result.signal_efficiencies[m, k]),
                        "final_z": float(result.final_z[m, k]),
                        "auc": float(result.auc[m]),
                        "epochs": int(result.epochs[m]),
                        "diverged": result.diverged[m] if result.diverged else "",
                    }
                )
    tracker.save_table("working_points", working_rows)
    _report_sculpting(tracker, inputs, results, metrics, figure_name)
    first = next(iter(results.values()))
    injections, initial = _by_injection(first, first.initial_z)
    curves = {method: _plotted_runs(r) for method, r in results.items()}
    mask = injections > 0
    fig = plotting.significance_curve(
        None,
        initial[mask, 0],
        {m: c[mask] for m, c in curves.items()},
        title=f"{_figure_label(inputs)}\nfinal Z at each pseudo-experiment's best working point"
        " (eq. 2; chosen with truth labels, as in the paper)",
        discovery_z=5.0,
        injections=injections[mask],
    )
    path = tracker.save_figure(figure_name, fig)
    metrics["figure"] = str(path)
    zero = first.injection == 0
    if zero.any():
        control = {m: (r.signal_efficiencies[r.injection == 0]).T for m, r in results.items()}
        fig = plotting.no_signal_control(
            None,
            first.background_efficiencies,
            control,
            n_test_signal=inputs.study.n_test_signal,
            n_test_background=inputs.study.n_test_background,
            title=_figure_label(inputs),
        )
        tracker.save_figure(f"{figure_name}_no_signal_control", fig)
    tracker.log_metrics({k: v for k, v in metrics.items() if k != "figure"})
    return metrics
