"""The table "Results against the paper" of docs/results/paper_luminosity/README.md: every cell
read from a committed thresholds.csv (make docs-check compares the two).

    python experiments/paper_table.py            # prints the markdown table
Rows: the demo (`make demo`, docs/figures/quickstart_thresholds.csv) and the paper-luminosity
runs (`bash experiments/paper_luminosity.sh NAME`, one directory each under
docs/results/paper_luminosity/); a
run not yet committed is left out. Errors are bootstrap standard deviations over the
pseudo-experiments (jaxws.stats.thresholds); the ratio's error is a paired bootstrap (the
methods share their pseudo-experiments: one resampling of them per replicate, 1000 replicates).
"""

import csv
import json
from pathlib import Path

import numpy as np

from jaxws.stats.significance import signal_for_significance
from jaxws.stats.thresholds import signal_for_discovery

ROOT = Path(__file__).resolve().parent.parent
PAPER = {  # arXiv:2312.06152 secs. 3-5 (25x25 to 75x75, Table 2 CNN, 25k SR background)
    "CWoLa": ("2-4", "", "1"),
    "Transfer": ("lower", "", "1/few ('a factor of a few')"),
    "MTL": ("lower", "", "below transfer ('not drastically')"),
}
RUNS = [
    ("demo, simulator (1k)", ROOT / "docs/figures/quickstart_thresholds.csv", None),
    *(
        (f"paper luminosity, {name} (25k)", path / "thresholds.csv", path / "config.json")
        for name, path in (
            ("simulator", ROOT / "docs/results/paper_luminosity/simulator"),
            ("simulator DD", ROOT / "docs/results/paper_luminosity" / "simulator_dd"),
            ("simulator, pT + count", ROOT / "docs/results/paper_luminosity/simulator_count"),
            ("Pythia", ROOT / "docs/results/paper_luminosity/pythia"),
        )
    ),
]


def cell(value: str, error: str, digits: int) -> str:
    if value in ("", "nan"):
        return "not reached"
    return f"{float(value):.{digits}f} +- {float(error):.{digits}f}"


def ratio_errors(working_points: Path, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Paired-bootstrap s.d. of each method's signal for 5 sigma over CWoLa's."""
    rows = list(csv.DictReader(working_points.open()))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    injections = sorted({int(r["injection"]) for r in rows if int(r["injection"]) > 0})
    experiments = sorted({int(r["experiment"]) for r in rows})
    best = {m: np.full((len(injections), len(experiments)), -np.inf) for m in methods}
    for r in rows:
        if int(r["injection"]) > 0 and r["final_z"] not in ("", "nan"):
            i, j = injections.index(int(r["injection"])), int(r["experiment"])
            best[r["method"]][i, j] = max(best[r["method"]][i, j], float(r["final_z"]))
    rng = np.random.default_rng(seed)
    x = np.asarray(injections, float)
    replicates = {m: [] for m in methods}
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(experiments), size=(len(injections), len(experiments)))
        signal = {
            m: signal_for_discovery(x, x, np.take_along_axis(t, pick, axis=1))[0]
            for m, t in best.items()
        }
        for m in methods:
            replicates[m].append(signal[m] / signal["CWoLa"])
    out = {}
    for m, values in replicates.items():
        values = np.asarray(values)
        values = values[np.isfinite(values)]
        out[m] = float(values.std(ddof=1)) if len(values) >= n_bootstrap // 2 else np.nan
    return out


def main() -> None:
    print("| study | method | threshold (initial Z) | signal for 5 sigma | ratio to CWoLa |")
    print("| --- | --- | --- | --- | --- |")
    for method, (threshold, _, ratio) in PAPER.items():
        print(f"| paper (Figs. 3-5) | {method} | {threshold} | | {ratio} |")
    for n_background in (1000, 25000):
        plain = signal_for_significance(5.0, n_background)
        print(f"| a plain count, {n_background // 1000}k SR background | none | | {plain:.0f} | |")
    for label, path, config in RUNS:
        if not path.exists():
            continue
        if config is not None:
            study = json.loads(config.read_text())["study"]
            assert study["n_background_sr"] == 25000, f"{config}: not the paper's luminosity"
        points = path.parent / "working_points.csv"
        study_csv = path.with_name(path.name.replace("thresholds", "study"))
        study_rows = list(csv.DictReader(study_csv.open()))
        first = {path: min(float(r["injection"]) for r in study_rows if float(r["injection"]) > 0)}
        errors = ratio_errors(points) if points.exists() else {}
        for row in csv.DictReader(path.open()):
            threshold = cell(row["threshold_z"], row["threshold_z_std"], 1)
            signal = cell(row["signal_for_5sigma"], row["signal_for_5sigma_std"], 0)
            if row["threshold_kind"] == "below range":  # above the line from the first point
                threshold = f"< {float(row['threshold_z']):.1f} (below the scan)"
            if row["signal_for_5sigma"] not in ("", "nan") and first.get(path) == float(
                row["signal_for_5sigma"]
            ):
                signal = f"<= {first[path]:.0f} (the first point)"
                row["ratio_to_cwola"] = ""  # a bound, not a ratio
            ratio = row["ratio_to_cwola"]
            if ratio in ("", "nan"):
                ratio = ""
            elif row["method"] == "CWoLa":
                ratio = "1"
            else:
                error = errors.get(row["method"])
                ratio = f"{float(ratio):.2f}" + (f" +- {error:.2f}" if error else "")
            print(f"| {label} | {row['method']} | {threshold} | {signal} | {ratio} |")


if __name__ == "__main__":
    main()
