"""LHCO R&D signal region, idealised weak supervision: neural default vs boosted-tree ensemble.

nice -n 19 python experiments/lhco_trees.py [--seeds 0 1 2] [--members 10]
    [--neural-members E] [--max-events N] [--skip-neural] [--results DIR] [--figure PNG]

The public API `jaxws.methods.cwola.weak_supervision` on identical inputs: the four CATHODE
features (mj1, delta mj, tau21_1, tau21_2) standardised on sr_train; "data" = all of sr_train
(S/B about 0.66%) against the background rows of sr_val (the idealised anomaly detector);
evaluation on sr_test (20k signal, 40k background). Rows: the neural default (`classifier=
"neural"` with every other argument at its default), the same network trained 100 epochs
without early stopping (`NO_EARLY_STOPPING`), the boosted-tree ensemble
(`classifier="trees"`, `TREE_DEFAULTS`), a supervised tree ensemble (truth signal of sr_train +
sr_extrasig_train against the background of sr_train; a ceiling, not weak supervision), and the
published peaks read off the papers' figures: idealised AD about 14 and supervised about 17
(CATHODE, arXiv:2109.00546; boosted trees on these features: Finke et al., arXiv:2309.13111).
Max SIC = max eps_S / sqrt(eps_B) over thresholds keeping at least 10 test background events
(as `method=lhco`). `--max-events N` keeps the first N rows of each training file.

Every seed is one set of fits; with `--results DIR` each finished seed is saved there
(`seed<S>.json`, written atomically) and a later call with the same settings loads it instead
of refitting, so the seeds can be run one call at a time and the last call prints the table of
all of them (a saved seed whose settings, `VECTOR_DEFAULTS` included, differ is refitted and
overwritten; a row added to the script since is fitted and added). `--figure` draws the SIC
curves of the first seed with the published peaks. The neural settings were chosen on
validation data that never includes sr_test (`experiments/lhco_neural_tuning.py`,
`experiments/lhco_epoch_average.py`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from jaxws.data import lhco
from jaxws.files import atomic_write_bytes, atomic_write_json
from jaxws.methods.cwola import VECTOR_DEFAULTS, weak_supervision
from jaxws.stats.roc import area_under_curve, roc_curve, significance_improvement
from jaxws.train import TrainConfig

PUBLISHED = {"idealised AD": 14.0, "supervised": 17.0}
MIN_TEST_BACKGROUND = 10
ROWS = ("neural default", "neural, no early stopping", "boosted trees", "supervised trees")
#: The "neural, no early stopping" row: the default network, members and batch, trained for
#: 100 epochs with the last epoch kept (`TrainConfig.early_stopping=False`), the setting that
#: reached the trees on validation at the tight cuts (experiments/lhco_epoch_average.py).
NO_EARLY_STOPPING = TrainConfig(batch_size=256, max_epochs=100, patience=30, early_stopping=False)
#: `VECTOR_DEFAULTS` when docs/results/lhco_side_by_side was written (commits 00f49ad and
#: 3b5b1d6), before saved settings recorded them ("inputs" was then not an option: raw).
SAVED_BEFORE_RECORDING = {
    "inputs": "raw",
    "widths": [128, 128, 128],
    "n_members": 10,
    "batch_size": 256,
    "max_epochs": 100,
    "patience": 30,
}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def evaluate(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(max SIC, eps_S there, AUC) on the test set."""
    curve = roc_curve(scores, labels)
    n_background = int((labels == 0).sum())
    sic = significance_improvement(
        curve, min_background_efficiency=MIN_TEST_BACKGROUND / n_background
    )
    best = int(np.argmax(sic.sic))
    return float(sic.sic[best]), float(sic.signal_efficiency[best]), area_under_curve(curve)


def sic_points(scores: np.ndarray, labels: np.ndarray, n: int = 400) -> dict:
    """The SIC curve (eps_S, SIC) thinned to about `n` points, for the figure."""
    n_background = int((labels == 0).sum())
    sic = significance_improvement(
        roc_curve(scores, labels), min_background_efficiency=MIN_TEST_BACKGROUND / n_background
    )
    thin = np.unique(np.linspace(0, len(sic.sic) - 1, n).astype(int))
    return {"signal_efficiency": sic.signal_efficiency[thin], "sic": sic.sic[thin]}


def run_seed(seed: int, args: argparse.Namespace, rows: tuple[str, ...] = ROWS) -> dict:
    """Fit `rows` for one seed; per row: max SIC, eps_S, AUC, seconds, members, curve, loads."""
    splits = lhco.load_lhco()
    n = args.max_events
    train, val, test = splits["sr_train"], splits["sr_val"], splits["sr_test"]
    extra = splits["sr_extrasig_train"]
    scaler = lhco.Standardizer.fit(train.features[:n])
    data = scaler.transform(train.features[:n])
    background = scaler.transform(val.features[:n][val.labels[:n] == 0])
    x_test = scaler.transform(test.features)
    signal = scaler.transform(
        np.concatenate([train.features[:n][train.labels[:n] == 1], extra.features[:n]])
    )
    truth_background = scaler.transform(train.features[:n][train.labels[:n] == 0])
    print(
        f"seed {seed}: data (sr_train) {len(data)} events, {int(train.labels[:n].sum())} "
        f"signal; background-only (sr_val background) {len(background)}; test "
        f"{int(test.labels.sum())} signal, {int((test.labels == 0).sum())} background",
        flush=True,
    )
    neural = {} if args.neural_members is None else {"n_members": args.neural_members}
    fits = {
        "neural default": lambda: weak_supervision(data, background, seed=seed, **neural),
        "neural, no early stopping": lambda: weak_supervision(
            data, background, seed=seed, config=NO_EARLY_STOPPING, **neural
        ),
        "boosted trees": lambda: weak_supervision(
            data, background, classifier="trees", n_members=args.members, seed=seed
        ),
        "supervised trees": lambda: weak_supervision(
            signal, truth_background, classifier="trees", n_members=args.members, seed=seed
        ),
    }
    results = {}
    if rows == ROWS:
        results["load_average_start"] = load_average()
    for name, fit in fits.items():
        if name not in rows or (name.startswith("neural") and args.skip_neural):
            continue
        load_start = load_average()
        start = time.perf_counter()
        scorer = fit()
        scores = scorer(x_test)
        seconds = time.perf_counter() - start
        max_sic, eps_s, auc = evaluate(scores, test.labels)
        members = len(scorer.members) if hasattr(scorer, "members") else len(scorer.diverged)
        results[name] = {
            "max_sic": max_sic,
            "eps_s": eps_s,
            "auc": auc,
            "seconds": seconds,
            "members": members,
            "curve": sic_points(scores, test.labels),
            "load_average": [load_start, load_average()],
        }
        print(
            f"seed {seed}, {name} ({members} members): max SIC {max_sic:.2f} at eps_S "
            f"{eps_s:.3f}, AUC {auc:.4f}, {seconds:.0f} s",
            flush=True,
        )
    if rows == ROWS:
        results["load_average_end"] = load_average()
    return results


def figure(results: dict, seed: int, path: Path) -> None:
    """SIC against eps_S of every row for `seed`, with the published peaks named on their lines."""
    from jaxws import plotting
    from jaxws.stats.roc import SicCurve

    curves = {}
    for name in ROWS:
        if name in results:
            row = results[name]
            curve = row["curve"]
            eps_s, sic = np.asarray(curve["signal_efficiency"]), np.asarray(curve["sic"])
            label = f"{name} ({row['members']} members), max {row['max_sic']:.1f}"
            curves[label] = SicCurve(
                background_efficiency=(eps_s / np.maximum(sic, 1e-12)) ** 2,
                signal_efficiency=eps_s,
                sic=sic,
            )
    labels = list(curves)
    references = {f"{name}, published (CATHODE)": value for name, value in PUBLISHED.items()}
    colours = {}
    for reference, row in zip(references, ("neural default", "supervised trees"), strict=True):
        match = [label for label in labels if label.startswith(row)]
        colours[reference] = match[0] if match else "grey"
    fig = plotting.sic_figure(None, curves, references=references, reference_colors=colours)
    ax = fig.axes[0]
    ax.set_ylim(0, 1.25 * max(PUBLISHED.values()))
    ax.set_title(
        f"LHCO R&D signal region, idealised weak supervision, seed {seed}, test on sr_test",
        fontsize="small",
    )
    for suffix in ("png", "pdf"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix, dpi=150, bbox_inches="tight")
        atomic_write_bytes(path.with_suffix(f".{suffix}"), buffer.getvalue())
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, default=10, help="tree ensemble size")
    parser.add_argument(
        "--neural-members", type=int, default=None, help="neural ensemble size (default: the API's)"
    )
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--skip-neural", action="store_true")
    parser.add_argument("--results", type=Path, default=None, help="save / resume seeds here")
    parser.add_argument("--figure", type=Path, default=None, help="SIC figure (png and pdf)")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average at start: {load_average()}", flush=True)
    settings = {
        "members": args.members,
        "neural_members": args.neural_members,
        "max_events": args.max_events,
        "skip_neural": args.skip_neural,
        # The neural default's settings: a saved seed fitted with other defaults is refitted.
        "neural_defaults": VECTOR_DEFAULTS,
    }
    settings = json.loads(json.dumps(settings))  # as read back from a saved seed
    per_seed = {}
    for seed in args.seeds:
        path = None if args.results is None else args.results / f"seed{seed}.json"
        if path is not None and path.exists():
            saved = json.loads(path.read_text())
            # Seeds saved before the settings recorded the defaults were fitted with these.
            saved["settings"].setdefault("neural_defaults", SAVED_BEFORE_RECORDING)
            if saved["settings"] == settings:
                print(f"seed {seed}: loaded from {path}")
                per_seed[seed] = saved["results"]
                # Rows added to the script since the seed was saved are fitted and added.
                missing = tuple(
                    name
                    for name in ROWS
                    if name not in per_seed[seed]
                    and not (name.startswith("neural") and args.skip_neural)
                )
                if missing:
                    per_seed[seed].update(run_seed(seed, args, missing))
                    atomic_write_json(path, {"settings": settings, "results": per_seed[seed]})
                continue
        per_seed[seed] = run_seed(seed, args)
        if path is not None:
            atomic_write_json(path, {"settings": settings, "results": per_seed[seed]})

    print(f"\nload average at end: {load_average()}\n")
    seeds = list(per_seed)
    header = " | ".join(f"seed {s}" for s in seeds)
    print(f"| classifier | max SIC, {header} | mean max SIC | AUC, mean | time [s], mean |")
    print("| --- | " + " | ".join("---" for _ in seeds) + " | --- | --- | --- |")
    for name in ROWS:
        rows = [per_seed[s][name] for s in seeds if name in per_seed[s]]
        if not rows:
            continue
        sics = [r["max_sic"] for r in rows]
        print(
            f"| {name} ({rows[0]['members']} members) | "
            + " | ".join(f"{v:.1f}" for v in sics)
            + f" | {np.mean(sics):.1f} | {np.mean([r['auc'] for r in rows]):.3f} | "
            f"{np.mean([r['seconds'] for r in rows]):.0f} |"
        )
    for name, value in PUBLISHED.items():
        blanks = " | ".join("" for _ in seeds)
        print(f"| {name}, published (arXiv:2109.00546, 2309.13111) | {blanks} | ~{value:.0f} | | |")
    for seed in seeds:
        r = per_seed[seed]
        print(
            f"seed {seed}: load average {r['load_average_start']} at start, "
            f"{r['load_average_end']} at end"
        )
        for name in ROWS:
            if "load_average" in r.get(name, {}):
                start, end = r[name]["load_average"]
                print(f"seed {seed}, {name}: load average {start} at start, {end} at end")
    if args.figure is not None:
        figure(per_seed[seeds[0]], seeds[0], args.figure)


if __name__ == "__main__":
    main()
