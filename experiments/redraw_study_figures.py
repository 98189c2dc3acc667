"""Redraw a finished injection study's figures from its committed tables, with today's plotting.

    python experiments/redraw_study_figures.py docs/results/paper_luminosity/simulator [...]

For runs whose figures were drawn by older plotting code (docs/results/paper_luminosity/):
no retraining. From the run directory's `config.json` and
`working_points.csv` (every member's efficiency and final Z at every working point, its AUC and
epochs) the script rebuilds each method's per-member `StudyResult` (initial Z recomputed from
the config with eq. 2, the best working point as the study takes it: the argmax over working
points) and calls the study's own report (`jaxws.methods.injection_study.report.report`) into
a scratch directory. It then checks that the report's `study.csv` and `thresholds.csv` equal
the committed ones (so the rebuilt results are the run's) and only then replaces
`significance.png` and `significance_no_signal_control.png` in the run directory. The mjj
sculpting figure is left as it is: it needs the background pool's mjj, which the tables do not
hold, and its plotting code has not changed since those runs (commits 0d1b01b and d22d1bf).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from jaxws.methods.injection_study.evaluation import StudyResult
from jaxws.methods.injection_study.report import report
from jaxws.stats import significance
from jaxws.track import Tracker

FIGURES = ("significance.png", "significance_no_signal_control.png")


def _float(text: str) -> float:
    return float("nan") if text in ("", "nan") else float(text)


def rebuild(run_dir: Path) -> tuple[dict[str, StudyResult], SimpleNamespace]:
    """Per-method StudyResults (no sculpting) and the report's inputs, from the run's tables."""
    config = json.loads((run_dir / "config.json").read_text())
    study = config["study"]
    eps_b = np.asarray(study["background_efficiencies"], np.float64)
    members: dict[str, dict[tuple[int, int], dict]] = defaultdict(dict)
    for row in csv.DictReader((run_dir / "working_points.csv").open()):
        key = (int(row["injection"]), int(row["experiment"]))
        member = members[row["method"]].setdefault(
            key,
            {"eps_s": {}, "z": {}, "auc": row["auc"], "epochs": row["epochs"], "why": ""},
        )
        point = float(row["background_efficiency"])
        member["eps_s"][point] = _float(row["signal_efficiency"])
        member["z"][point] = _float(row["final_z"])
        member["why"] = row["diverged"]
    results = {}
    for method, by_key in members.items():
        keys = list(by_key)  # the table's member order: injection-major, as the study runs
        injection = np.array([k[0] for k in keys])
        z = np.array([[by_key[k]["z"][float(e)] for e in eps_b] for k in keys])
        results[method] = StudyResult(
            injection=injection,
            experiment=np.array([k[1] for k in keys]),
            initial_z=np.asarray(
                significance.initial_significance(
                    injection,
                    float(study["n_background_sr"]),
                    relative_uncertainty=study["relative_uncertainty"],
                )
            ),
            auc=np.array([_float(by_key[k]["auc"]) for k in keys]),
            background_efficiencies=eps_b,
            signal_efficiencies=np.array(
                [[by_key[k]["eps_s"][float(e)] for e in eps_b] for k in keys]
            ),
            final_z=z,
            # as significance_at_working_points takes it: the argmax over the working points
            best_z=np.take_along_axis(z, np.argmax(z, axis=-1)[:, None], axis=-1)[:, 0],
            epochs=np.array([int(by_key[k]["epochs"]) for k in keys]),
            diverged=[by_key[k]["why"] for k in keys],
        )
    source = "pythia" if config["data"]["_target_"].endswith("PythiaSource") else "simulator"
    resolution = int(config["data"]["resolution"])
    inputs = SimpleNamespace(
        source=SimpleNamespace(config=SimpleNamespace(source=source)),
        signal_name=config["data"]["signal"],
        images=np.zeros((0, resolution, resolution)),  # only its shape is read
        study=SimpleNamespace(**study),
    )
    return results, inputs


def _same_table(ours: Path, committed: Path) -> list[str]:
    """Cells that differ (numbers to 1e-9 relative)."""
    problems = []
    rows = zip(csv.DictReader(ours.open()), csv.DictReader(committed.open()), strict=True)
    for i, (a, b) in enumerate(rows):
        for column in b:
            x, y = a[column], b[column]
            try:
                equal = np.isclose(float(x), float(y), rtol=1e-9, atol=1e-12, equal_nan=True)
            except ValueError:
                equal = x == y
            if not equal:
                problems.append(f"{committed.name} row {i} {column}: {x} against {y}")
    return problems


def redraw(run_dir: Path) -> None:
    results, inputs = rebuild(run_dir)
    with tempfile.TemporaryDirectory() as scratch:
        tracker = Tracker(Path(scratch) / "run")
        report(tracker, inputs, results)  # type: ignore[arg-type]
        problems = []
        for table in ("study.csv", "thresholds.csv"):
            problems += _same_table(tracker.path(table), run_dir / table)
        if problems:
            sys.exit(
                f"redraw: {run_dir}: the rebuilt results differ from the run's tables: "
                + "; ".join(problems[:5])
            )
        for name in FIGURES:
            shutil.copyfile(tracker.path(f"figures/{name}"), run_dir / f"{name}.tmp")
            (run_dir / f"{name}.tmp").replace(run_dir / name)
    print(
        f"redraw: {run_dir}: study.csv and thresholds.csv reproduced; redrew {', '.join(FIGURES)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    for run_dir in parser.parse_args().run_dirs:
        redraw(run_dir)


if __name__ == "__main__":
    main()
