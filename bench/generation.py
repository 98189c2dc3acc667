"""Pythia generation throughput: bare generation, full pipeline, jet-finder choice, 2 vs 1 process.

Prints markdown tables with the machine. Rates are events per CPU-second of this process
(time.process_time), so they stay meaningful on a machine shared with other jobs; the
2-process speed-up is wall-clock and only meaningful on otherwise idle cores (the load average
is printed). Targets: the pipeline
(SlowJet jets, cuts, constituents, HDF5) adds at most 10% to bare generation; 2 processes give
at least 1.8x one. Also checks that SlowJet and scikit-hep fastjet give the same jets.

    .venv/bin/python bench/generation.py --events 300
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from jaxws.data.shards import write_shard
from jaxws.simulate.generation import plan_shards, run_generation
from jaxws.simulate.hidden_valley import parse_model
from jaxws.simulate.pythia import generate_shard, make_pythia, model_settings


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f} at start"


def bare_rate(model: str, n: int, seed: int = 11) -> float:
    pythia = make_pythia(model_settings(parse_model(model), seed))
    start = time.process_time()
    for _ in range(n):
        pythia.next()
    return n / (time.process_time() - start)


def pipeline_rate(model: str, n: int, seed: int = 11) -> float:
    """generate_shard + HDF5 write, with a generation cap of exactly n events (init excluded)."""
    start = time.process_time()
    make_pythia(model_settings(parse_model(model), seed))
    init = time.process_time() - start
    start = time.process_time()
    result = generate_shard(model, seed, n_target=10 * n, max_generated=n)
    with tempfile.TemporaryDirectory() as tmp:
        write_shard(Path(tmp) / "x.h5", result.arrays, result.attrs)
    return result.attrs["n_generated"] / (time.process_time() - start - init)


def jet_finders(model: str, n: int, seed: int = 12) -> dict[str, float]:
    """Per-event ms of SlowJet (+ constituents) vs nextBatch + vectorised fastjet, and agreement."""
    import awkward as ak
    import fastjet
    import pythia8mc

    settings = model_settings(parse_model(model), seed)
    # SlowJet on next(): time of analyze + leading-jet constituents, jets for the comparison
    pythia = make_pythia(settings)
    slow_jet = pythia8mc.SlowJet(-1, 0.8, 20.0, 10.0, 2, 2, None, True)
    t_gen = t_jets = 0.0
    sj_jets = []
    for _ in range(n):
        t0 = time.process_time()
        pythia.next()
        t1 = time.process_time()
        slow_jet.analyze(pythia.event)
        event = pythia.event
        for k in range(min(2, slow_jet.sizeJet())):
            [(event[i].pT(), event[i].eta(), event[i].phi()) for i in slow_jet.constituents(k)]
        t_jets += time.process_time() - t1
        t_gen += t1 - t0
        sj_jets.append([slow_jet.p(k).pT() for k in range(min(2, slow_jet.sizeJet()))])
    # nextBatch + fastjet on the same seed (same events)
    pythia = make_pythia(settings)
    visible = {}
    t_batch = t_fj = 0.0
    fj_jets = []
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.8)
    for start in range(0, n, 50):
        t0 = time.process_time()
        batch = pythia.nextBatch(min(50, n - start))
        t1 = time.process_time()
        final = batch.prt[batch.prt.status > 0]
        ids = np.unique(ak.to_numpy(ak.flatten(final.id)))
        for i in ids:
            if int(i) not in visible:
                visible[int(i)] = pythia.particleData.isVisible(int(i))
        keep = np.isin(ak.to_numpy(ak.flatten(final.id)), [i for i, v in visible.items() if v])
        final = ak.unflatten(ak.flatten(final)[keep], ak.sum(ak.unflatten(keep, ak.num(final)), 1))
        p = final.p
        vectors = ak.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.e})
        sequence = fastjet.ClusterSequence(vectors, definition)
        jets = sequence.inclusive_jets(20.0)
        sequence.constituents(20.0)
        pt = np.hypot(jets.px, jets.py)
        pt = ak.sort(pt, axis=1, ascending=False)
        t_fj += time.process_time() - t1
        t_batch += t1 - t0
        fj_jets += [list(row[:2]) for row in ak.to_list(pt)]
    same = [
        len(a) == len(b) and np.allclose(a, b, rtol=1e-6)
        for a, b in zip(sj_jets, fj_jets, strict=True)
    ]
    return dict(
        gen_next_ms=1e3 * t_gen / n,
        slowjet_ms=1e3 * t_jets / n,
        gen_batch_ms=1e3 * t_batch / n,
        fastjet_ms=1e3 * t_fj / n,
        agree=float(np.mean(same)),
    )


def import_seconds() -> float:
    """Wall time of a fresh interpreter importing the generation driver (paid per worker)."""
    import subprocess
    import sys

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jaxws.simulate.generate"], check=True)
    return time.perf_counter() - start


def parallel_speedup(model: str, events: int) -> tuple[float, float]:
    """Wall time of 2 shards in 1 process and in 2 spawned processes (same shards)."""
    specs = plan_shards([model], [21, 22], events)
    times = []
    for processes in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_generation(tmp, specs, processes=processes, progress=False)
            times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300, help="generated events per measurement")
    args = parser.parse_args()
    n = args.events
    print(f"Machine: {machine()}; pythia8mc, {n} generated events per cell\n")
    print("| sample | bare generation [ev/CPU-s] | full pipeline [ev/CPU-s] | pipeline overhead |")
    print("| --- | --- | --- | --- |")
    for model in ("qcd", "id_lambda10", "dd_lambda10"):
        bare, full = bare_rate(model, n), pipeline_rate(model, n)
        print(f"| {model} | {bare:.0f} | {full:.0f} | {100 * (bare / full - 1):+.0f}% |")
    print(
        "\n| sample | next() [ms/ev] | SlowJet + constituents [ms/ev] | nextBatch [ms/ev] |"
        " fastjet (vectorised) [ms/ev] | same two leading jets |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for model in ("qcd", "id_lambda10"):
        r = jet_finders(model, n)
        print(
            f"| {model} | {r['gen_next_ms']:.2f} | {r['slowjet_ms']:.2f} | {r['gen_batch_ms']:.2f}"
            f" | {r['fastjet_ms']:.2f} | {100 * r['agree']:.1f}% |"
        )
    print(f"\nImport of jaxws.simulate.generate in a fresh process: {import_seconds():.1f} s")
    one, two = parallel_speedup("id_lambda10", max(n // 2, 20))
    print("\n| 2 id_lambda10 shards | 1 process [s] | 2 processes [s] | speed-up |")
    print("| --- | --- | --- | --- |")
    print(f"| {max(n // 2, 20)} SR+SB events each | {one:.1f} | {two:.1f} | {one / two:.2f}x |")
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
