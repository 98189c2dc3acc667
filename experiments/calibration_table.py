"""The simulator-vs-Pythia calibration table of docs/simulator.md, from the events themselves.

    python experiments/calibration_table.py --reference ../shared/data/hv-reference \\
        --trends data/pythia-trends > calibration.md

For QCD and the Lambda_D = 10 signals the Pythia side is hv-reference; for the other 12
benchmarks it is the project's generator (`python -m jaxws.simulate.generate`, shards under
--trends). Signal-region events; both jets pooled for multiplicity, mass / pT and girth.
Columns: Pythia value / simulator value, and the scaled Wasserstein distance of the
multiplicity distribution (W1 / IQR of Pythia's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jaxws.data.events import SIGNAL_REGION
from jaxws.data.observables import jet_observables, scaled_wasserstein, total_multiplicity
from jaxws.data.samples import benchmark_names
from jaxws.data.shards import load_events
from jaxws.simulate.jets import simulate_events
from jaxws.stats.roc import auc_of_samples


def _multiplicity_auc(signal, background) -> float:
    return auc_of_samples(total_multiplicity(signal), total_multiplicity(background))


def pooled(events) -> dict[str, np.ndarray]:
    obs = jet_observables(events.take(events.region == SIGNAL_REGION))
    return {
        "multiplicity": np.concatenate([obs["multiplicity_0"], obs["multiplicity_1"]]),
        "mass_over_pt": np.concatenate([obs["mass_0"] / obs["pt_0"], obs["mass_1"] / obs["pt_1"]]),
        "girth": np.concatenate([obs["girth_0"], obs["girth_1"]]),
        "pt_over_mjj": obs["pt_0"] / obs["mjj"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="../shared/data/hv-reference")
    parser.add_argument("--trends", default="data/pythia-trends")
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    ref = Path(args.reference)
    names = ["qcd", *benchmark_names()]
    simulated = simulate_events(
        99, args.events, {n: args.events for n in benchmark_names()}, chunk_size=4096
    )
    print(
        "| sample | Pythia events (SR) | multiplicity mean (Pythia / sim) | multiplicity std "
        "| W1/IQR multiplicity | mass/pT mean | girth mean | lead pT/mjj |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    pythia_events = {}
    for name in names:
        if name == "qcd":
            pythia = load_events([ref / "qcd.h5"], models=["qcd"])
            ours = simulated.take(simulated.label == 0)
        else:
            if name in ("id_lambda10", "dd_lambda10"):
                pythia = load_events([ref / f"hv_{name}.h5"], models=[name])
            else:
                pythia = load_events([args.trends], models=[name])
            ours = simulated.take(simulated.model_id == benchmark_names().index(name))
        pythia_events[name] = (pythia, ours)
        a, b = pooled(pythia), pooled(ours)
        n_sr = int(np.sum(pythia.region == SIGNAL_REGION))
        print(
            f"| {name} | {n_sr} | {a['multiplicity'].mean():.1f} / {b['multiplicity'].mean():.1f} "
            f"| {a['multiplicity'].std():.1f} / {b['multiplicity'].std():.1f} "
            f"| {scaled_wasserstein(b['multiplicity'], a['multiplicity']):.2f} "
            f"| {a['mass_over_pt'].mean():.3f} / {b['mass_over_pt'].mean():.3f} "
            f"| {a['girth'].mean():.3f} / {b['girth'].mean():.3f} "
            f"| {a['pt_over_mjj'].mean():.3f} / {b['pt_over_mjj'].mean():.3f} |"
        )
    print()
    print("| signal | multiplicity AUC vs QCD, Pythia | simulator |")
    print("| --- | --- | --- |")
    qcd_pythia, qcd_sim = pythia_events["qcd"]
    for name in benchmark_names():
        pythia, ours = pythia_events[name]
        sr = SIGNAL_REGION
        auc_p = _multiplicity_auc(
            pythia.take(pythia.region == sr), qcd_pythia.take(qcd_pythia.region == sr)
        )
        auc_s = _multiplicity_auc(ours.take(ours.region == sr), qcd_sim.take(qcd_sim.region == sr))
        print(f"| {name} | {auc_p:.3f} | {auc_s:.3f} |")


if __name__ == "__main__":
    main()
