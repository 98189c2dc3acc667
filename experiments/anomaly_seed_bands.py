"""Seed-to-seed spread of the anomaly test's R scan: median p of H0 per R and mass over runs.

    for s in 0 1 2; do python -m jaxws experiment=anomaly seed=$s hydra.run.dir=RUN$s ...; done
    PYTHONPATH=. python experiments/anomaly_seed_bands.py RUN0 RUN1 RUN2

Reads each run's anomaly_results.json and prints, for the model-independent t and the
model-dependent q0, per R and WIMP mass: the median over seeds of the toy median p, the
smallest and largest seed's value, and how many seeds sit at the toy floor (a bound,
p < 1/(1 + n)); then each seed's best R (smallest median p; "tied" when several R reach it).
Every seed retrains the VAE and the classifier and redraws every sample, so the spread
includes training, simulation and toys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _results(run: Path) -> dict:
    matches = sorted(run.rglob("anomaly_results.json"))
    if not matches:
        raise SystemExit(f"anomaly_seed_bands: error: no anomaly_results.json under {run}")
    return json.loads(matches[0].read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    results = [_results(run) for run in args.runs]
    masses = results[0]["masses"]
    r_values = results[0]["r_scan"]["r_values"]
    for other in results[1:]:
        if other["masses"] != masses or other["r_scan"]["r_values"] != r_values:
            raise SystemExit("anomaly_seed_bands: error: runs scan different masses or R values")
    floor = results[0]["r_scan"]["gof"]["floor"]
    print(f"{len(results)} seeds; cells: median over seeds [min, max]; (k at floor {floor:.1g})\n")
    for name, label in (("gof", "model-independent t"), ("q0", "model-dependent q0")):
        median_p = np.array([r["r_scan"][name]["median_p"] for r in results])  # (seeds, R, M)
        at_cap = np.array([r["r_scan"][name]["at_cap"] for r in results], bool)
        print(f"{label}:\n")
        print("| R | " + " | ".join(f"m = {m:g} GeV" for m in masses) + " |")
        print("|---|" + "---|" * len(masses))
        for i, r in enumerate(r_values):
            cells = []
            for j in range(len(masses)):
                values = median_p[:, i, j]
                cell = f"{np.median(values):.2g} [{values.min():.2g}, {values.max():.2g}]"
                capped = int(at_cap[:, i, j].sum())
                cells.append(cell + (f" ({capped} at floor)" if capped else ""))
            print(f"| {r:g} | " + " | ".join(cells) + " |")
        print()
        for seed, result in zip(args.runs, results, strict=True):
            scan = result["r_scan"]
            best = []
            for j, m in enumerate(masses):
                ties = scan[f"best_r_tied_{name}"]
                tied = [r for r, t in zip(r_values, ties, strict=True) if t[j]]
                best.append(f"{m:g} GeV: R = {', '.join(f'{r:g}' for r in tied)}")
            print(f"best R ({seed.name}): " + "; ".join(best))
        print()


if __name__ == "__main__":
    main()
