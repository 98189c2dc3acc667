"""A sweep that summarises itself after a Hydra multirun.

One table and one figure of every swept value against the study's key metrics, in the sweep
directory.

Registered in conf/config.yaml as a Hydra callback (`hydra.callbacks.sweep_summary`), so it
runs after any launcher (basic, joblib, submitit) and any sweeper (basic, optuna). It reads
each job's `.hydra/overrides.yaml` (the swept values) and its `results.json` (or, for a job
that did not finish, `metrics.json`), writes

- `sweep_summary.csv`: one row per job: job number, status (`finished`, `partial` = metrics
  but no results, `missing` = neither), each override, every scalar metric;
- `sweep_summary.png`: one panel per (swept key, key metric): each job a point, the mean over
  jobs that share the value a line;

and ends with one line naming both. A swept key is an override whose value differs between
jobs; key metrics are the scalar metrics whose names contain one of `key_metrics`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from omegaconf import DictConfig

#: name fragments of the metrics shown in the figure: CWoLa / transfer / MTL, NPLM, anomaly
KEY_METRICS = (
    "signal_for_5sigma",
    "auc_at_max_injection",
    "no_signal_auc_mean",
    "null/ks_pvalue",
    "null/fitted_dof",
    "median_z_",
)
MAX_PANELS_PER_KEY = 4


def _parse_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key.lstrip("+~"), value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job directory of a sweep (a directory holding `.hydra/overrides.yaml`).

    Returns:
      Rows sorted by job number, each with `job`, `status`, `overrides` (dict) and `metrics`
      (scalar metrics only).
    """
    import yaml

    rows = []
    for overrides_file in Path(sweep_dir).glob("*/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        overrides = dict(_parse_override(o) for o in yaml.safe_load(overrides_file.read_text()))
        metrics, status = {}, "missing"
        for name, state in (("results.json", "finished"), ("metrics.json", "partial")):
            path = job_dir / name
            if path.is_file():
                loaded = json.loads(path.read_text())
                metrics = {k: v for k, v in loaded.items() if _number(v) is not None}
                status = state
                break
        job = int(job_dir.name) if job_dir.name.isdigit() else job_dir.name
        rows.append({"job": job, "status": status, "overrides": overrides, "metrics": metrics})
    return sorted(rows, key=lambda r: (isinstance(r["job"], str), r["job"]))


def swept_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs (in first-seen order)."""
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    return [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1]


def key_metrics(rows: Sequence[dict[str, Any]], fragments: Sequence[str] = KEY_METRICS) -> list:
    """Metric names that contain one of `fragments`; else the first few metrics."""
    names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    chosen = [n for n in names if any(f in n for f in fragments)]
    return chosen or names[:MAX_PANELS_PER_KEY]


def write_table(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """`sweep_summary.csv`: job, status, every override, every scalar metric."""
    from jaxws.files import atomic_write_text

    override_keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    metric_keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["job", "status", *override_keys, *metric_keys])
    for r in rows:
        writer.writerow(
            [r["job"], r["status"]]
            + [r["overrides"].get(k, "") for k in override_keys]
            + [r["metrics"].get(k, "") for k in metric_keys]
        )
    return atomic_write_text(path, buffer.getvalue())


def figure(rows: Sequence[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str]) -> Figure:
    """Each swept key (rows of panels) against each key metric (columns).

    Args:
      rows: one dict per job (`collect`): job, status, overrides and metrics.
      keys: the swept override keys (`swept_keys`).
      metrics: the key metrics to plot (`key_metrics`); at most 2 * MAX_PANELS_PER_KEY.

    Returns:
      The matplotlib figure (the caller saves and closes it).
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    metrics = list(metrics)[: 2 * MAX_PANELS_PER_KEY]
    n_rows, n_cols = max(1, len(keys)), max(1, len(metrics))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(3.6 * n_cols, 2.9 * n_rows), squeeze=False, layout="constrained"
    )
    for i, key in enumerate(keys):
        values = [r["overrides"].get(key) for r in rows]
        numeric = all(_number(v) is not None for v in values)
        levels = sorted(set(values), key=lambda v: _number(v) if numeric else str(v))
        position = {v: (_number(v) if numeric else j) for j, v in enumerate(levels)}
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            x = np.array([position[r["overrides"].get(key)] for r in rows], float)
            y = np.array([_number(r["metrics"].get(metric, math.nan)) for r in rows], float)
            ax.plot(x, y, "o", color="C0", alpha=0.6, label="job")
            means = [
                np.nanmean(y[x == position[v]])
                if np.any(np.isfinite(y[x == position[v]]))
                else np.nan
                for v in levels
            ]
            ax.plot([position[v] for v in levels], means, "-", color="C1", label="mean")
            if (
                numeric
                and min(position.values()) > 0
                and max(position.values()) > 20 * min(position.values())
            ):
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(levels)), [str(v) for v in levels], rotation=30)
            elif all(float(_number(v)).is_integer() for v in levels):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(key)
            ax.set_ylabel(metric, fontsize=8)
            ax.grid(alpha=0.3)
    if not keys:
        axes[0, 0].text(0.5, 0.5, "no swept key", ha="center", va="center")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(f"sweep of {len(rows)} jobs", fontsize=9)
    return fig


def summarise_sweep(
    sweep_dir: str | Path, fragments: Sequence[str] = KEY_METRICS
) -> tuple[Path, Path] | None:
    """Write `sweep_summary.csv` and `sweep_summary.png` into `sweep_dir`; None if no jobs."""
    from jaxws.files import atomic_write_bytes

    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    if not rows:
        return None
    table = write_table(rows, sweep_dir / "sweep_summary.csv")
    fig = figure(rows, swept_keys(rows), key_metrics(rows, fragments))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    import matplotlib.pyplot as plt

    plt.close(fig)
    image = atomic_write_bytes(sweep_dir / "sweep_summary.png", buffer.getvalue())
    return table, image


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep directory when a multirun ends.

    Args:
      key_metrics: name fragments of the metrics plotted (all scalar metrics go to the CSV).
    """

    def __init__(self, key_metrics: Sequence[str] = KEY_METRICS):
        self.fragments = tuple(key_metrics)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the summary of `config.hydra.sweep.dir` and print one line naming it."""
        written = summarise_sweep(config.hydra.sweep.dir, self.fragments)
        if written is None:
            print(f"jaxws: sweep {config.hydra.sweep.dir} has no finished job to summarise")
            return
        table, image = written
        print(f"jaxws: sweep summary: {table} and {image}")
