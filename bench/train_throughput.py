"""Training throughput of the jet CNN: E vmapped members vs one, and vs PyTorch (issue 2, item 10).

Measures what users run: `jaxws.train.Trainer.train_step`, scanned over minibatches
gathered from a device pool with `lax.scan` exactly as `Trainer.epoch` does, jitted alone
for E = 1 (the `fit` path) and under `jax.vmap` over members for E > 1 (the `fit_ensemble`
path). Steady-state steps are timed (compilation and one warm-up call excluded; compile time
is reported separately); of `--repeats` timed calls the fastest is kept, as the least
disturbed by other load on a shared machine. The peer is the same network in PyTorch
(bench/torch_peer.py) trained serially on `torch.set_num_threads(2)`.

FLOPs are counted analytically (arXiv:2312.06152 Table 2 at R x R input, two jets per event):
  forward MACs per jet = sum_conv H_l * W_l * k_l^2 * C_in,l * C_out,l + sum_dense in * out
  forward FLOPs per event = 2 (jets) * 2 (FLOP per MAC) * MACs per jet
  training FLOPs per event = 3 * forward (backward = grads w.r.t. inputs and weights).
The paper CNN at 25 x 25 is 79.6 MFLOP forward per event, 119 GFLOP per training step of 500.

Memory per member: XLA's compiled `memory_analysis()` (arguments + outputs + temporaries of
the scanned step program, divided by E) and the growth of the process's peak RSS over its
RSS before the model was built (each case runs in its own process), divided by E.

Each case runs in a fresh subprocess (clean peak RSS; XLA flags or a patched convolution
apply to that case only). Usage:
  python bench/train_throughput.py [--quick] [--models slim,paper] [--members 1,2,4,8]
      [--steps N] [--repeats N] [--no-torch] [--no-conv-variants] [--xla-variants]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

IMAGE_SIZE = 25
BATCH_SIZE = 500  # Table 2
POOL_EVENTS = 2000
MODELS = ("slim", "paper")
# Defaults (steps per timed call, timed calls); a paper-CNN step takes seconds on 2 cores.
DEFAULT_STEPS = {"slim": 20, "paper": 1}
DEFAULT_REPEATS = {"slim": 3, "paper": 2}
# Beyond this (XLA's program size) a case is not run: the machine is shared; reported as skipped.
MAX_PROGRAM_GB = 10.0


# -- analytic FLOPs -----------------------------------------------------------------------
def model_spec(name: str) -> dict:
    from jaxws.models.cnn import PAPER_CNN, SLIM_CNN

    return {"slim": SLIM_CNN, "paper": PAPER_CNN}[name]


def forward_flops_per_event(spec: dict, image_size: int = IMAGE_SIZE) -> float:
    """Forward FLOPs of one event (two jets): 2 * 2 * (conv + dense MACs of one jet)."""
    macs, size, channels = 0, image_size, 1
    for features, kernel, pool in zip(
        spec["conv_features"], spec["kernel_sizes"], spec["pool_after"], strict=True
    ):
        macs += size * size * kernel * kernel * channels * features
        channels = features
        if pool:
            size //= 2
    width = size * size * channels
    for features in (*spec["dense_features"], 1):
        macs += width * features
        width = features
    return 2.0 * 2.0 * macs


def training_flops_per_event(spec: dict, image_size: int = IMAGE_SIZE) -> float:
    return 3.0 * forward_flops_per_event(spec, image_size)


# -- one case, run in a child process -------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _patch_convolution(conv: str) -> None:
    """Force a convolution form for this process: `JAXWS_CONV`, read when the step is traced.

    "shift" (one matmul per kernel offset), "im2col" and "lax"; "auto" keeps the library's
    per-backend choice (im2col on CPU).
    """
    from jaxws.models import layers

    if conv != "auto" and conv not in layers.CONV_METHODS:
        raise ValueError(f"unknown conv variant {conv!r}; expected auto or {layers.CONV_METHODS}")
    os.environ[layers.CONV_ENV] = conv


def scanned_steps_problem(
    spec: dict,
    members: int,
    steps: int,
    image_size: int = IMAGE_SIZE,
    batch_size: int = BATCH_SIZE,
    pool_events: int = POOL_EVENTS,
) -> tuple:
    """`steps` engine train steps of `members` jet-CNN members on random events, unjitted.

    Returns (train_steps, [carry, pool, index, labels, weights, step_keys, hparams]): every
    argument but the pool has a leading member axis; `train_steps(carry, pool, ...)` is the body
    of `Trainer.epoch`'s scan (gather a minibatch from the pool, one train step) for one member.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxws.models.cnn import JetCNN
    from jaxws.train import Hparams, TrainConfig, Trainer

    trainer = Trainer(JetCNN(**spec), TrainConfig(batch_size=batch_size))
    rng = np.random.default_rng(0)
    pool = jnp.asarray(
        rng.exponential(size=(pool_events, 2, image_size, image_size)).astype(np.float32)
    )
    shape = (members, steps, batch_size)
    index = jnp.asarray(rng.integers(0, pool_events, shape), jnp.int32)
    labels = jnp.asarray(rng.integers(0, 2, shape), jnp.float32)
    weights = jnp.ones(shape, jnp.float32)
    keys = jax.random.split(jax.random.key(0), members)
    step_keys = jax.vmap(lambda k: jax.random.split(k, steps))(keys)
    variables = jax.vmap(trainer.init_variables, in_axes=(0, None))(keys, pool)
    states = jax.vmap(trainer.init_state)(variables)
    carry = (states.params, states.model_state, states.opt_state)
    hparams = Hparams(learning_rate=jnp.full((members,), 1e-3, jnp.float32))

    def train_steps(carry, pool, index, labels, weights, step_keys, hparams):
        def step(carry, batch):
            idx, lab, w, k = batch
            return trainer.train_step(carry, (pool[idx], lab, w, k), hparams)

        return jax.lax.scan(step, carry, (index, labels, weights, step_keys))

    return train_steps, [carry, pool, index, labels, weights, step_keys, hparams]


def jax_case(
    model: str,
    members: int,
    steps: int,
    repeats: int,
    conv: str = "shift",
    max_gb: float = MAX_PROGRAM_GB,
) -> dict:
    """Time `steps` scanned engine train steps of `members` members (vmapped if > 1)."""
    import jax

    _patch_convolution(conv)
    rss_before = _rss_bytes()
    train_steps, args = scanned_steps_problem(model_spec(model), members, steps)
    if members == 1:  # the `fit` path: no vmap
        squeeze = lambda tree: jax.tree.map(lambda a: a[0], tree)
        args = [squeeze(a) if i != 1 else a for i, a in enumerate(args)]
        fn = jax.jit(train_steps)
    else:  # the `fit_ensemble` path
        fn = jax.jit(jax.vmap(train_steps, in_axes=(0, None, 0, 0, 0, 0, 0)))
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    program_bytes = (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )
    result = {
        "compile_s": compile_s,
        "xla_bytes_per_member": program_bytes / members,
        "xla_temp_bytes_per_member": memory.temp_size_in_bytes / members,
    }
    if program_bytes > max_gb * 1e9:
        result["skipped"] = f"program needs {program_bytes / 1e9:.1f} GB > {max_gb} GB"
        return result
    jax.block_until_ready(compiled(*args))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    result["step_s"] = best / steps
    result["rss_bytes_per_member"] = (_peak_rss_bytes() - rss_before) / members
    return result


def torch_case(model: str, steps: int, repeats: int) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_peer  # torch is imported only there

    rss_before = _rss_bytes()
    result = torch_peer.train_throughput(
        model_spec(model), IMAGE_SIZE, BATCH_SIZE, steps, repeats, threads=2
    )
    result["rss_bytes_per_member"] = _peak_rss_bytes() - rss_before
    result["compile_s"] = result.pop("setup_s")
    return result


def _run_child(case: dict) -> dict:
    """Run one case in a fresh interpreter; returns its result dict (or an `error`)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if case.get("xla_flags"):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + case["xla_flags"]).strip()
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--case", json.dumps(case)],
            capture_output=True,
            text=True,
            env=env,
            timeout=case.get("timeout_s"),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"not finished within {case['timeout_s']:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]}
    return json.loads(lines[-1])


def _child_main(case: dict) -> None:
    if case["framework"] == "torch":
        result = torch_case(case["model"], case["steps"], case["repeats"])
    else:
        result = jax_case(
            case["model"],
            case["members"],
            case["steps"],
            case["repeats"],
            case["conv"],
            case.get("max_gb", MAX_PROGRAM_GB),
        )
    print(json.dumps(result))


# -- the table ------------------------------------------------------------------------------
def machine_lines() -> list[str]:
    import timing

    return [
        *timing.machine_lines(),
        f"- input: two {IMAGE_SIZE}x{IMAGE_SIZE} jets per event, batch {BATCH_SIZE}, float32",
    ]


def _fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="few steps, E in {1, 4}")
    parser.add_argument("--models", default="slim,paper")
    parser.add_argument("--members", default=None, help="comma list (default 1,2,4,8)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (best kept)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=600.0,
        help="seconds before a case is given up (reported as such)",
    )
    parser.add_argument(
        "--max-gb",
        type=float,
        default=MAX_PROGRAM_GB,
        help="skip JAX cases whose compiled program needs more memory",
    )
    parser.add_argument(
        "--no-conv-variants",
        action="store_true",
        help="skip the E=1, 4 lax.conv / shift-matmul comparison rows",
    )
    parser.add_argument(
        "--xla-variants", action="store_true", help="add E=4 rows with XLA CPU flags changed"
    )
    args = parser.parse_args(argv)
    if args.case:
        _child_main(json.loads(args.case))
        return

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            raise ValueError(f"--models: unknown model {m!r}; expected some of {MODELS}")
    members = [int(e) for e in (args.members or ("1,4" if args.quick else "1,2,4,8")).split(",")]
    if any(e < 1 for e in members):
        raise ValueError(f"--members must be >= 1, got {members}")

    def steps_of(m):
        return args.steps or (max(1, DEFAULT_STEPS[m] // 4) if args.quick else DEFAULT_STEPS[m])

    def repeats_of(m):
        return args.repeats or (1 if args.quick else DEFAULT_REPEATS[m])

    cases = []
    for m in models:
        base = {
            "model": m,
            "steps": steps_of(m),
            "repeats": repeats_of(m),
            "max_gb": args.max_gb,
            "timeout_s": args.case_timeout,
        }
        if not args.no_torch:
            cases.append({**base, "framework": "torch", "members": 1, "label": "torch serial"})
        for e in members:
            cases.append(
                {**base, "framework": "jax", "members": e, "conv": "shift", "label": "jax (shift)"}
            )
        if not args.no_conv_variants:
            for conv in ("lax", "im2col"):
                for e in (1, 4):
                    # lax.conv under vmap is an XLA CPU grouped convolution: far slower, so
                    # it gets a tenth of the steps and one timed call.
                    slow = (
                        {"steps": max(1, base["steps"] // 10), "repeats": 1}
                        if conv == "lax"
                        else {}
                    )
                    cases.append(
                        {
                            **base,
                            "framework": "jax",
                            "members": e,
                            "conv": conv,
                            "label": f"jax {conv}",
                            **slow,
                        }
                    )
        if args.xla_variants:
            for flag in ("--xla_cpu_multi_thread_eigen=false", "--xla_cpu_use_thunk_runtime=false"):
                cases.append(
                    {
                        **base,
                        "framework": "jax",
                        "members": 4,
                        "conv": "shift",
                        "xla_flags": flag,
                        "label": f"jax (shift) {flag}",
                    }
                )

    print("\n".join(machine_lines()))
    print(
        "\n| model | variant | E | events/s total | events/s per member | per member vs E=1 "
        "| total vs E=1 | per member vs torch | GFLOP/s | ms/step/member | compile s "
        "| XLA MB/member | peak RSS MB/member |"
    )
    print("|" + "---|" * 13)
    solo: dict[str, float] = {}
    peer: dict[str, float] = {}
    for case in cases:
        result = _run_child(case)
        spec = model_spec(case["model"])
        e = case["members"]
        row = [case["model"], case["label"], str(e)]
        if "error" in result or "skipped" in result:
            note = result.get("error") or result["skipped"]
            row += [f"({note})"] + ["-"] * 6
            row += [
                _fmt(result.get("compile_s"), 1),
                _fmt(result.get("xla_bytes_per_member", 0) / 1e6 or None),
                "-",
            ]
            print("| " + " | ".join(row) + " |", flush=True)
            continue
        per_member = BATCH_SIZE / result["step_s"]  # each member trains B events per step
        total = per_member * e
        if case["framework"] == "torch":
            peer[case["model"]] = per_member
        elif case["conv"] == "shift" and e == 1 and not case.get("xla_flags"):
            solo[case["model"]] = per_member
        vs_solo = (
            per_member / solo[case["model"]]
            if case["model"] in solo and case["framework"] == "jax"
            else None
        )
        vs_peer = (
            per_member / peer[case["model"]]
            if case["model"] in peer and case["framework"] == "jax"
            else None
        )
        gflops = total * training_flops_per_event(spec) / 1e9
        row += [
            _fmt(total),
            _fmt(per_member),
            _fmt(vs_solo, 2),
            _fmt(None if vs_solo is None else vs_solo * e, 2),
            _fmt(vs_peer, 2),
            _fmt(gflops, 1),
            _fmt(result["step_s"] * 1e3 / e, 1),
            _fmt(result["compile_s"], 1),
            _fmt(result["xla_bytes_per_member"] / 1e6) if "xla_bytes_per_member" in result else "-",
            _fmt(result["rss_bytes_per_member"] / 1e6),
        ]
        print("| " + " | ".join(row) + " |", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at end: {load}")
    for m in models:
        spec = model_spec(m)
        print(
            f"- {m}: {forward_flops_per_event(spec) / 1e6:.2f} MFLOP forward per event, "
            f"{training_flops_per_event(spec) * BATCH_SIZE / 1e9:.2f} GFLOP per training step"
        )


if __name__ == "__main__":
    main()
