"""Side-by-side comparisons of the training engine on this machine (issue 10, item 7).

Every comparison runs its cases in one process, interleaved round-robin, and reports medians
with their spread and the load average before and after (bench/timing.py). Sections:

- `step`: one training step of a jet CNN (batch 500, two 25 x 25 jets per event) for each
  convolution form of `jaxws.models.layers` and for the PyTorch peer (bench/torch_peer.py,
  2 threads), in wall-clock and in process CPU seconds (GFLOP per CPU-second counts the
  analytic FLOPs of bench/train_throughput.py).
- `members`: total events/s of E = 1 against E members as one program, vmapped or one after
  another with `lax.map`.
- `compile`: seconds to build and compile the slim CNN's `fit_ensemble` programs in a fresh
  process, with an empty and with a warm persistent compilation cache (interleaved processes).
- `stopping`: `fit_ensemble` without compaction, with compaction of stopped members, and with
  a queue of members refilling stopped rows, on an ensemble whose members stop at a spread of
  epochs: row-epochs computed (counted by the engine) and wall-clock.

  JAX_PLATFORMS=cpu python bench/compare.py step --model paper --forms im2col,shift,lax --torch
  JAX_PLATFORMS=cpu python bench/compare.py members --model slim --members 8
  JAX_PLATFORMS=cpu python bench/compare.py compile
  JAX_PLATFORMS=cpu python bench/compare.py stopping
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import timing

IMAGE_SIZE = 25
BATCH_SIZE = 500
POOL_EVENTS = 2000


def _spec(model: str) -> dict:
    from jaxws.models.cnn import PAPER_CNN, SLIM_CNN

    return {"slim": SLIM_CNN, "paper": PAPER_CNN}[model]


def _flops_per_step(model: str) -> float:
    import train_throughput

    return BATCH_SIZE * train_throughput.training_flops_per_event(_spec(model), IMAGE_SIZE)


def _train_steps_program(
    model: str, members: int, steps: int, mode: str, form: str, precision: str | None = None
):
    """A compiled program of `steps` engine train steps for `members` members, and its args.

    mode: "single" (E = 1, the `fit` path), "vmap" or "map" (`lax.map` over members).
    form: convolution form ("auto" or one of `layers.CONV_METHODS`), fixed at trace time.
    precision: float32 matmul precision traced into the program (None: the one in force,
        "highest" once jaxws is imported; "tensorfloat32" is TF32 on NVIDIA GPUs).
    """
    import jax
    import train_throughput

    from jaxws.models import layers

    train_steps, (carry, pool, index, labels, weights, step_keys, hparams) = (
        train_throughput.scanned_steps_problem(
            _spec(model), members, steps, IMAGE_SIZE, BATCH_SIZE, POOL_EVENTS
        )
    )
    per_member = (carry, index, labels, weights, step_keys, hparams)
    if mode == "single":
        per_member = jax.tree.map(lambda a: a[0], per_member)
        fn = lambda m, pool: train_steps(m[0], pool, *m[1:])
    elif mode == "vmap":
        fn = jax.vmap(lambda m, pool: train_steps(m[0], pool, *m[1:]), in_axes=(0, None))
    else:
        fn = lambda m, pool: jax.lax.map(lambda one: train_steps(one[0], pool, *one[1:]), m)
    previous = os.environ.get(layers.CONV_ENV)
    os.environ[layers.CONV_ENV] = form
    try:
        start = time.perf_counter()
        with jax.default_matmul_precision(precision or jax.config.jax_default_matmul_precision):
            compiled = jax.jit(fn).lower(per_member, pool).compile()
        compile_s = time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop(layers.CONV_ENV)
        else:
            os.environ[layers.CONV_ENV] = previous
    memory = compiled.memory_analysis()
    program_bytes = (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )
    run = lambda: jax.block_until_ready(compiled(per_member, pool))
    return run, compile_s, program_bytes


def step_section(args) -> None:
    forms = args.forms.split(",")
    torch_name = "torch 2 threads" if args.torch_device == "cpu" else f"torch {args.torch_device}"
    cases, compile_s, program = {}, {}, {}
    for form in forms:
        for precision in args.precisions.split(","):
            name = f"jax {form}" + (f" {precision}" if precision else "")
            cases[name], compile_s[name], program[name] = _train_steps_program(
                args.model, 1, args.steps, "single", form, precision or None
            )
    if args.torch:
        import torch_peer

        step = torch_peer.make_step(
            _spec(args.model), IMAGE_SIZE, BATCH_SIZE, threads=2, device=args.torch_device
        )

        def torch_steps():
            for _ in range(args.steps):
                step()

        cases[torch_name] = torch_steps
    times = timing.interleave(cases, args.rounds)
    load = times.pop("_load")
    flops = _flops_per_step(args.model)
    reference = torch_name if args.torch else next(iter(cases))
    ref_wall = timing.summary(times[reference]["wall"])[0]
    ref_cpu = timing.summary(times[reference]["cpu"])[0]
    print(*timing.machine_lines(), sep="\n")
    print(f"- load average before {load['before']}, after {load['after']}")
    print(
        f"- {args.model} CNN, {args.steps} step(s) of {BATCH_SIZE} per call, {args.rounds} rounds"
    )
    print()
    print(
        "| case | s/step wall, median [min-max] | CPU s/step, median | events/s (wall) "
        "| GFLOP per CPU-second | GFLOP/s (wall) | vs reference (wall) | vs reference (per CPU-s) "
        "| compile s | XLA program MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, t in times.items():
        wall = [w / args.steps for w in t["wall"]]
        cpu = timing.summary([c / args.steps for c in t["cpu"]])[0]
        med = timing.summary(wall)[0]
        print(
            f"| {name} | {timing.fmt_spread(wall, 1, 2)} | {cpu:.2f} | {BATCH_SIZE / med:,.0f} | "
            f"{flops / 1e9 / cpu:.1f} | {flops / 1e9 / med:,.0f} | "
            f"{ref_wall / args.steps / med:.2f} | "
            f"{ref_cpu / args.steps / cpu:.2f} | "
            f"{compile_s.get(name, 0):.1f} | "
            f"{program.get(name, 0) / 1e6:,.0f} |"
        )
    print(f"\nreference: {reference}")


def members_section(args) -> None:
    sizes = [int(e) for e in args.members.split(",")]
    cases, compile_s, program, count = {}, {}, {}, {}
    for e in sizes:
        for mode in ["single"] if e == 1 else args.modes.split(","):
            for form in args.forms.split(","):
                name = f"E={e} {'lax.map' if mode == 'map' else mode} {form}"
                cases[name], compile_s[name], program[name] = _train_steps_program(
                    args.model, e, args.steps, mode, form
                )
                count[name] = e
    times = timing.interleave(cases, args.rounds)
    load = times.pop("_load")
    print(*timing.machine_lines(), sep="\n")
    print(f"- load average before {load['before']}, after {load['after']}")
    print(f"- {args.model} CNN, {args.steps} step(s) per member per call, {args.rounds} rounds")
    print()
    print(
        "| case | total events/s, median [min-max] | events/s per member | total vs first "
        "| events per CPU-second | compile s | XLA MB/member |"
    )
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, t in times.items():
        e = count[name]
        rate = [e * args.steps * BATCH_SIZE / w for w in t["wall"]]
        med = timing.summary(rate)[0]
        per_cpu = e * args.steps * BATCH_SIZE / timing.summary(t["cpu"])[0]
        base = base or med
        print(
            f"| {name} | {timing.fmt_spread(rate, 1, 0)} | {med / e:,.0f} | {med / base:.2f} | "
            f"{per_cpu:,.0f} | {compile_s[name]:.1f} | {program[name] / e / 1e6:,.0f} |"
        )


COMPILE_CHILD = """
import os, sys, time, json
start = time.perf_counter()
import jax, jax.numpy as jnp, numpy as np
from jaxws.models.cnn import SLIM_CNN, JetCNN
import jaxws.train as engine
model = JetCNN(**SLIM_CNN)
config = engine.TrainConfig(batch_size=128, max_epochs=30, patience=5)
trainer = engine.trainer_for(model, config)
E = 25
pool = jnp.zeros((2000, 2, 12, 12), jnp.float32)
keys = jax.random.split(jax.random.key(0), E)
members = engine.MemberData.from_arrays(np.zeros((E, 800), np.int32), np.zeros((E, 800)),
    np.zeros((E, 400), np.int32), np.zeros((E, 400)))
members = jax.tree.map(jnp.asarray, members)
hparams = engine.Hparams(jnp.full((E,), 1e-3))
states = trainer.start_members.lower(keys, pool, hparams, None).compile()(keys, pool, hparams, None)
block = jax.jit(trainer.members_block(config.resolved_member_map(True)), static_argnums=5,
    donate_argnums=0)
block.lower(states, keys, pool, members, hparams, 1).compile()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def compile_section(args) -> None:
    cache = tempfile.mkdtemp(prefix="jaxws-bench-cache-")
    env = dict(os.environ, JAXWS_CACHE_DIR=cache, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def child(clear: bool) -> float:
        if clear:
            shutil.rmtree(cache, ignore_errors=True)
            os.makedirs(cache)
        out = subprocess.run(
            [sys.executable, "-c", COMPILE_CHILD], env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-500:])
        return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]

    before = timing.load_average()
    cold, warm = [], []
    for _ in range(args.rounds):
        cold.append(child(clear=True))
        warm.append(child(clear=False))
    print(*timing.machine_lines(), sep="\n")
    print(f"- load average before {before}, after {timing.load_average()}")
    print(
        "- slim CNN, 25 members, 12x12: import + init/state/epoch programs compiled, fresh process"
    )
    print()
    print("| cache | seconds, median [min-max] |")
    print("|---|---|")
    print(f"| empty | {timing.fmt_spread(cold, 1, 1)} |")
    print(f"| warm | {timing.fmt_spread(warm, 1, 1)} |")


def stopping_section(args) -> None:
    """Member-epochs and time of an ensemble whose members stop at a spread of epochs.

    Cases, all with `--rows` rows trained at once: no compaction (chunks of `--rows` members
    run until their last member stops), compaction (a chunk shrinks to the next power of two
    once at most half of its rows train), and queue + compaction (one chunk whose stopped rows
    take the next queued member, then compaction). Row-epochs are counted by the engine
    (`Trainer.row_epochs`); all cases must give the same stopping epochs.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxws.train as engine
    from jaxws.models.mlp import MLP

    rng = np.random.default_rng(0)
    n, e = 6000, args.members
    labels = (rng.random(n) < 0.5).astype(np.float32)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[:, 0] += 0.6 * labels
    val = np.arange(n - 1000, n)
    sizes = rng.integers(150, 4000, e)  # a spread of training-set sizes -> of stopping epochs
    rows = []
    for size in sizes:
        index = np.zeros(sizes.max(), np.int32)
        index[:size] = rng.choice(n - 1000, size, replace=False)
        weight = (np.arange(sizes.max()) < size).astype(np.float32)
        rows.append(engine.MemberData.from_arrays(index, labels[index], val, labels[val], weight))
    members = jax.tree.map(lambda *a: np.stack(a), *rows)
    model = MLP(feature_widths=(64, 64), head_widths=(32,))
    keys = jax.random.split(jax.random.key(1), e)
    rates = engine.Hparams(jnp.asarray(rng.choice([1e-3, 3e-3, 1e-2], e), jnp.float32))
    base = engine.TrainConfig(
        batch_size=64, max_epochs=args.max_epochs, patience=args.patience, member_map="vmap"
    )
    configs = {
        "no compaction": dataclasses.replace(base, compact_members=False),
        "compaction": base,
        "queue + compaction": dataclasses.replace(base, queue_members=e - args.rows),
    }
    results, row_epochs = {}, {}

    def case(name: str):
        config = configs[name]
        trainer = engine.trainer_for(model, config)

        def run():
            before = trainer.row_epochs
            results[name] = engine.fit_ensemble(
                keys, model, x, members, rates, config, chunk_size=args.rows
            )
            jax.block_until_ready(results[name].epochs)
            row_epochs[name] = trainer.row_epochs - before

        return run

    times = timing.interleave({name: case(name) for name in configs}, args.rounds)
    load = times.pop("_load")
    epochs = np.asarray(results["compaction"].epochs)
    for name in configs:
        assert np.array_equal(epochs, np.asarray(results[name].epochs)), name
    print(*timing.machine_lines(), sep="\n")
    print(f"- load average before {load['before']}, after {load['after']}")
    print(
        f"- MLP 8-64-64-32-1, E = {e} members, {args.rows} rows at once, patience "
        f"{args.patience}, max {args.max_epochs} epochs; stopping epochs: min {epochs.min()}, "
        f"median {np.median(epochs):.0f}, max {epochs.max()}; member-epochs needed "
        f"{epochs.sum()}"
    )
    print()
    print("| case | row-epochs computed | vs needed | seconds, median [min-max] |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(
            f"| {name} | {row_epochs[name]} | {row_epochs[name] / epochs.sum():.2f} | "
            f"{timing.fmt_spread(t['wall'], 1, 2)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="section", required=True)
    step = sub.add_parser("step")
    step.add_argument("--model", default="paper")
    step.add_argument("--forms", default="im2col,shift,lax")
    step.add_argument("--torch", action="store_true")
    step.add_argument("--torch-device", default="cpu", help="cpu, or cuda for the GPU peer")
    step.add_argument(
        "--precisions",
        default="",
        help="comma list of float32 matmul precisions, e.g. "
        "highest,tensorfloat32 (empty: the one in force)",
    )
    step.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    step.add_argument("--steps", type=int, default=1)
    step.add_argument("--rounds", type=int, default=3)
    members = sub.add_parser("members")
    members.add_argument("--model", default="slim")
    members.add_argument("--members", default="1,8", help="comma list of E")
    members.add_argument("--modes", default="vmap,map", help="for E > 1: vmap and/or map")
    members.add_argument("--forms", default="auto")
    members.add_argument("--steps", type=int, default=2)
    members.add_argument("--rounds", type=int, default=3)
    members.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    compile_ = sub.add_parser("compile")
    compile_.add_argument("--rounds", type=int, default=2)
    stopping = sub.add_parser("stopping")
    stopping.add_argument("--members", type=int, default=16)
    stopping.add_argument("--rows", type=int, default=4, help="members trained at once")
    stopping.add_argument("--patience", type=int, default=10)
    stopping.add_argument("--max-epochs", type=int, default=100)
    stopping.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    globals()["BATCH_SIZE"] = getattr(args, "batch_size", BATCH_SIZE)
    {
        "step": step_section,
        "members": members_section,
        "compile": compile_section,
        "stopping": stopping_section,
    }[args.section](args)


if __name__ == "__main__":
    main()
