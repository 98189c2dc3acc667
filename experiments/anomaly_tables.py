"""Markdown tables of an anomaly run for docs/anomaly.md (and its figures into docs/figures).

    python -m jaxws experiment=anomaly tracking=none hydra.run.dir=RUN
    PYTHONPATH=. python experiments/anomaly_tables.py RUN [--figures docs/figures] [--prefix P]

Reads RUN/anomaly_results.json (through RUN/results.json's sibling files) and prints the null
check, the model-independent and model-dependent sensitivities, the R scan with its 68% toy
bands and optimal R, the benchmark counts and what the latent space encodes. Medians at the
toy floor are printed as bounds, "< 1/(1 + n)"; so is the best R when its median sits at the
floor, with every R that reaches it (toys cannot rank them).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from jaxws.plotting.anomaly import best_r_text


def _p(summary: dict, *index: int) -> str:
    def pick(name):
        value = summary[name]
        for i in index:
            value = value[i]
        return value

    if pick("at_cap"):
        return f"< {summary['floor']:.1g}"
    return f"{pick('median_p'):.2g} [{pick('p_low'):.2g}, {pick('p_high'):.2g}]"


def _find(run: Path, name: str) -> Path:
    matches = sorted(run.rglob(name))
    if not matches:
        raise SystemExit(f"no {name} under {run}")
    return matches[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--figures", type=Path, default=None)
    parser.add_argument(
        "--prefix", default="anomaly", help="figure names: <prefix>_<figure>.png (anomaly)"
    )
    args = parser.parse_args()
    results = json.loads(_find(args.run, "anomaly_results.json").read_text())
    metrics, masses = results["metrics"], results["masses"]

    print("### Null check: fresh background-only data sets through the whole test\n")
    print("| R | statistic | data sets | KS p | fraction p < 0.05 | fraction p < 0.01 |")
    print("|---|---|---|---|---|---|")
    for r, entry in results["null_calibration"].items():
        for name, label in (("gof", "t (model-independent)"), ("q0", "q0 (template)")):
            s = entry[name]
            print(
                f"| {r} | {label} | {s['n']:.0f} | {s['ks_pvalue']:.2f} | "
                f"{s['fraction_below_05']:.3f} +- {s['error_05']:.3f} | "
                f"{s['fraction_below_01']:.3f} +- {s['error_01']:.3f} |"
            )

    print("\n### Median p of H0 versus injected signal events s (68% toy band)\n")
    cases = results["sensitivity"]
    rates = cases["r"]["signal_rates"]
    print("| test | " + " | ".join(f"s = {s:g}" for s in rates) + " |")
    print("|---|" + "---|" * len(rates))
    rows = [
        ("r0", "gof", "model-independent t"),
        ("r", "gof", "model-independent t"),
        ("r", "q0", "model-dependent q0"),
        ("matched_heavy", "q0", "model-dependent q0"),
        ("mismatch", "q0", "model-dependent q0"),
    ]
    for name, statistic, label in rows:
        case = cases[name]["case"]
        what = f"{label}, R = {case['r']:g}, signal {case['signal_mass']:g} GeV" + (
            f", template {case['template_mass']:g} GeV" if statistic == "q0" else ""
        )
        summary = cases[name][statistic]
        cells = " | ".join(_p(summary, i) for i in range(len(rates)))
        print(f"| {what} | {cells} |")

    scan = results["r_scan"]
    print(
        "\n### R scan: median p of H0 (68% toy band), s = "
        + ", ".join(f"{s:.3g}" for s in scan["signal_rates"])
        + " for "
        + ", ".join(f"{m:g}" for m in masses)
        + " GeV\n"
    )
    for statistic, label in (("gof", "model-independent t"), ("q0", "model-dependent q0")):
        print(f"{label}:\n")
        print("| R | " + " | ".join(f"m = {m:g} GeV" for m in masses) + " |")
        print("|---|" + "---|" * len(masses))
        for i, r in enumerate(scan["r_values"]):
            cells = " | ".join(_p(scan[statistic], i, j) for j in range(len(masses)))
            print(f"| {r:g} | {cells} |")
        best = "; ".join(
            f"{m:g} GeV: {best_r_text(scan, statistic, j)}" for j, m in enumerate(masses)
        )
        print(f"\nSmallest median p ({label}): {best}.\n")

    quantiles = scan.get("cut_quantiles", [0.0])
    if len(quantiles) > 1:
        print("### R scan with a TS cut (quantile q of f_0's sample): median p (68% band)\n")
        for statistic, label in (("gof", "model-independent t"), ("q0", "model-dependent q0")):
            summary = scan[f"{statistic}_cuts"]
            print(f"{label}:\n")
            print("| R | q | " + " | ".join(f"m = {m:g} GeV" for m in masses) + " |")
            print("|---|---|" + "---|" * len(masses))
            for i, r in enumerate(scan["r_values"]):
                for k, q in enumerate(quantiles):
                    cells = " | ".join(_p(summary, i, k, j) for j in range(len(masses)))
                    print(f"| {r:g} | {q:g} | {cells} |")
            median = np.asarray(summary["median_p"])
            best = []
            for j, m in enumerate(masses):
                i, k = np.unravel_index(np.argmin(median[:, :, j]), median[:, :, j].shape)
                best.append(
                    f"{m:g} GeV: R = {scan['r_values'][i]:g}, q = {quantiles[k]:g} "
                    f"(median p {median[i, k, j]:.2g})"
                )
            print(f"\nSmallest median p over R and cut ({label}): " + "; ".join(best) + ".\n")
        print("### Null check with a TS cut\n")
        print("| R | cut quantile | statistic | data sets | KS p | p < 0.05 | p < 0.01 |")
        print("|---|---|---|---|---|---|---|")
        for r, entry in results["null_calibration"].items():
            for q, cut_entry in entry.get("cuts", {}).items():
                for name, label in (("gof", "t"), ("q0", "q0")):
                    c = cut_entry[name]
                    print(
                        f"| {r} | {q} | {label} | {c['n']:.0f} | {c['ks_pvalue']:.2f} | "
                        f"{c['fraction_below_05']:.3f} +- {c['error_05']:.3f} | "
                        f"{c['fraction_below_01']:.3f} +- {c['error_01']:.3f} |"
                    )
        print()

    if "expected_background" in metrics:
        print(
            f"B = {metrics['expected_background']:,.0f} expected background events "
            f"({metrics.get('background_recoils', float('nan')):,.0f} recoils x detected "
            f"fraction {metrics.get('background_efficiency', float('nan')):.4f}).\n"
        )

    print("### Benchmark (6.5e-48 cm2, 200 t y): expected WIMP recoils in the energy window\n")
    print("| mass | recoils | detection efficiency | detected |")
    print("|---|---|---|---|")
    for m in masses:
        print(
            f"| {m:g} GeV | {metrics[f'benchmark_recoils_m{m:g}']:.0f} | "
            f"{metrics[f'benchmark_efficiency_m{m:g}']:.2f} | "
            f"{metrics[f'benchmark_detected_m{m:g}']:.0f} |"
        )

    print("\n### What the VAE latent space encodes (Spearman rho, background events)\n")
    encoding = results["latent_encoding"]
    n_axes = len(next(iter(encoding.values())))
    print("| quantity | " + " | ".join(f"mu_z{a + 1}" for a in range(n_axes)) + " |")
    print("|---|" + "---|" * n_axes)
    for name, values in encoding.items():
        print(f"| {name} | " + " | ".join(f"{v:+.2f}" for v in values) + " |")

    print(
        f"\nClassifier: validation accuracy {metrics['classifier_val_accuracy']:.4f}, AUC "
        f"{metrics['classifier_val_auc']:.4f}. VAE-only AUC (-ELBO, signal vs background): "
        + ", ".join(f"{m:g} GeV {metrics[f'vae_auc_m{m:g}']:.3f}" for m in masses)
        + "."
    )
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        names = ["sensitivity", "r_scan", "r_scan_template", "null_p_values", "latent_space"]
        names += [f"{n}_cut{q:g}" for q in quantiles if q > 0 for n in names[1:3]]
        for name in names:
            source = _find(args.run, f"{name}.png")
            shutil.copyfile(source, args.figures / f"{args.prefix}_{name}.png")


if __name__ == "__main__":
    main()
