"""NPLM toy training speed, side by side in one run: jaxws, a minimal JAX loop, NPLM_package.

Setting of arXiv:1806.02350: 1-4-1 sigmoid network, N_R = 200k reference events, N(R) = 2k
expected data events, weight clip 9, full-batch Adam (lr 1e-3). Cases, each timed over
``--epochs`` epochs after a call that compiles:

* jaxws ``fit_toys`` with 1 toy, and chunks of toys vmapped or run one after the other
  (``lax.map`` inside the same compiled program: the "sequential" schedule);
* the floor: the shortest plain JAX loop for the same fit (matmul layers, optax Adam, clip,
  ``lax.scan`` over epochs, one jitted call), 1 toy;
* NPLM_package (TensorFlow), run unmodified through bench/nplm_package_driver.py in another
  interpreter, when ``--tf-python`` and ``--nplm-package`` are given (TensorFlow is not a jaxws
  dependency).

The cases are interleaved over ``--repetitions`` rounds and the medians reported, with the load
average at each round (the machine is shared). The unit is ms per toy-epoch (wall time of a
call over toys x epochs).

Usage: python bench/nplm_toys.py [--epochs 100] [--repetitions 3] [--chunks 4 8]
       [--tf-python /path/to/python --nplm-package /path/to/NPLM_package/src]
       python bench/nplm_toys.py --kernel-only [--repetitions 3]   # kernel NPLM alone

Kernel NPLM (``--kernel-only`` or after the table): one toy per call, the whitened Newton fit
run to its tolerance (at most ``--kernel-iterations`` steps), with the steps it took and
whether it converged.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm
from jaxws.stats.nplm import kernel as kernel_nplm

CLIP, LEARNING_RATE = 9.0, 1e-3
PAPER_EPOCHS = 300_000  # neural NPLM's training length per toy in the papers


def _inputs(n_toys: int, n_reference: int, n_expected: float):
    n_max = toys.capacity(n_expected)

    def make(key):
        k_data, k_reference = jax.random.split(key)
        sample = toys.sample_data(k_data, n_expected, 0.0, toys.SignalShape(), n_max)
        reference = toys.sample_reference(k_reference, n_reference)
        ones = jnp.ones(n_reference)
        return nplm.nplm_inputs(sample.events, sample.mask, reference, ones, n_expected)

    return jax.jit(jax.vmap(make))(jax.random.split(jax.random.key(0), n_toys))


def _jaxws_case(inputs, chunk: int, schedule: str, epochs: int):
    x, dw, rw = (a[:chunk] for a in inputs)
    keys = jax.random.split(jax.random.key(1), chunk)
    train = nplm.NPLMTraining(epochs)
    hparams = nplm.NPLMHparams(jnp.float32(LEARNING_RATE), jnp.float32(CLIP))

    def call():
        nplm.fit_toys(keys, x, dw, rw, hparams, nplm.NetworkSpec(), train, chunk, schedule=schedule)

    return call, chunk


def _floor_case(inputs, epochs: int):
    """The shortest plain JAX fit: what jaxws' per-toy cost should approach."""
    x, d, r = (a[0] for a in inputs)
    optimizer = optax.adam(LEARNING_RATE)

    def loss(p):
        h = jax.nn.sigmoid(x @ p["w1"] + p["b1"])
        f = (h @ p["w2"] + p["b2"])[:, 0]
        return jnp.sum(r * jnp.expm1(f) - d * f)

    def step(carry, _):
        p, state = carry
        updates, state = optimizer.update(jax.grad(loss)(p), state, p)
        p = jax.tree.map(lambda a: jnp.clip(a, -CLIP, CLIP), optax.apply_updates(p, updates))
        return (p, state), None

    @jax.jit
    def fit(p):
        (p, _), _ = jax.lax.scan(step, (p, optimizer.init(p)), None, length=epochs)
        return -2.0 * loss(p)

    p0 = {"w1": jnp.full((1, 4), 0.5), "b1": jnp.zeros(4), "w2": jnp.full((4, 1), 0.5),
          "b2": jnp.zeros(1)}  # fmt: skip
    return (lambda: fit(p0).block_until_ready()), 1


def _kernel_case(inputs, spec: kernel_nplm.KernelSpec):
    """Kernel NPLM (M centres, Newton to convergence): one whole toy per call."""
    x, d, r = (a[:1] for a in inputs)
    keys = jax.random.split(jax.random.key(2), 1)
    return (lambda: kernel_nplm.fit_kernel_ensemble(keys, x, d, r, 1.0, 1.0, spec)), 1


def _time(call, n_toys: int, epochs: int) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) / (n_toys * epochs) * 1e3


def _package_ms(args) -> float:
    driver = Path(__file__).with_name("nplm_package_driver.py")
    env = {**os.environ, "PYTHONPATH": args.nplm_package}
    command = [args.tf_python, str(driver), str(args.n_reference), str(args.n_expected),
               str(args.epochs), "0"]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.split()[out.split().index("ms_per_epoch") + 1])


def _kernel_only(inputs, args) -> None:
    """Time kernel NPLM alone: seconds per toy over the rounds, steps taken, convergence."""
    spec = kernel_nplm.KernelSpec(args.kernel_centres, args.kernel_iterations)
    call, _ = _kernel_case(inputs, spec)
    fit = call()  # compile
    seconds, loads = [], []
    for _ in range(args.repetitions):
        loads.append(os.getloadavg()[0])
        start = time.perf_counter()
        fit = jax.block_until_ready(call())
        seconds.append(time.perf_counter() - start)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} ({jax.default_backend()}); load average (1 min) at each round: "
        f"{', '.join(f'{x:.1f}' for x in loads)}"
    )
    median = statistics.median(seconds)
    print(
        f"Kernel NPLM, N_R = {args.n_reference}, N(R) = {args.n_expected:g}, M = "
        f"{args.kernel_centres}, whitened Newton to tolerance {spec.tolerance:g} (at most "
        f"{spec.iterations} steps): {median:.2f} s per toy (median; rounds "
        f"{', '.join(f'{s:.2f}' for s in seconds)} s), {60 / median:.1f} toys per minute; "
        f"{int(np.asarray(fit.iterations)[0])} Newton steps, converged "
        f"{bool(np.asarray(fit.converged)[0])}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--chunks", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--n-reference", type=int, default=200_000)
    parser.add_argument("--n-expected", type=float, default=2000.0)
    parser.add_argument("--kernel-centres", type=int, default=50)
    parser.add_argument("--kernel-iterations", type=int, default=30)
    parser.add_argument("--kernel-only", action="store_true", help="time kernel NPLM alone")
    parser.add_argument("--tf-python", default="", help="interpreter with TensorFlow, tf_keras")
    parser.add_argument("--nplm-package", default="", help="NPLM_package's src folder")
    args = parser.parse_args()

    inputs = _inputs(max(args.chunks), args.n_reference, args.n_expected)
    if args.kernel_only:
        _kernel_only(inputs, args)
        return
    cases = {"jaxws, 1 toy": _jaxws_case(inputs, 1, "vmap", args.epochs)}
    for chunk in args.chunks:
        cases[f"jaxws, {chunk} toys vmapped"] = _jaxws_case(inputs, chunk, "vmap", args.epochs)
        cases[f"jaxws, {chunk} toys sequential (lax.map)"] = _jaxws_case(
            inputs, chunk, "sequential", args.epochs
        )
    cases["floor: minimal JAX loop, 1 toy"] = _floor_case(inputs, args.epochs)
    kernel_spec = kernel_nplm.KernelSpec(args.kernel_centres, 30)
    kernel_call, _ = _kernel_case(inputs, kernel_spec)
    for call, _ in cases.values():
        call()  # compile
    kernel_call()
    kernel_seconds = []
    use_package = bool(args.tf_python and args.nplm_package)
    times: dict[str, list[float]] = {name: [] for name in cases}
    if use_package:
        times["NPLM_package (TensorFlow), 1 toy"] = []
    loads = []
    for _ in range(args.repetitions):
        loads.append(os.getloadavg()[0])
        for name, (call, n_toys) in cases.items():
            times[name].append(_time(call, n_toys, args.epochs))
        start = time.perf_counter()
        kernel_call()
        kernel_seconds.append(time.perf_counter() - start)
        if use_package:
            times["NPLM_package (TensorFlow), 1 toy"].append(_package_ms(args))

    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} ({jax.default_backend()}); load average (1 min) at each round: "
        f"{', '.join(f'{x:.1f}' for x in loads)}"
    )
    print(
        f"Setting: 1-4-1 sigmoid, N_R = {args.n_reference}, N(R) = {args.n_expected:g}, clip "
        f"{CLIP:g}, Adam lr {LEARNING_RATE:g}, full batch; {args.epochs} epochs per call, "
        f"medians of {args.repetitions} interleaved rounds.\n"
    )
    floor = times["floor: minimal JAX loop, 1 toy"]
    package = times.get("NPLM_package (TensorFlow), 1 toy", [np.nan] * args.repetitions)
    print(
        "| case | ms per toy-epoch (median) | all rounds | time / floor (median of rounds) "
        "| speed-up vs NPLM_package (median of rounds) |"
    )
    print("|---|---|---|---|---|")
    for name, values in times.items():
        rounds = ", ".join(f"{v:.2f}" for v in values)
        vs_floor = statistics.median(v / f for v, f in zip(values, floor, strict=True))
        vs_package = statistics.median(p / v for v, p in zip(values, package, strict=True))
        print(
            f"| {name} | {statistics.median(values):.2f} | {rounds} | {vs_floor:.2f}x | "
            f"{vs_package:.1f}x |"
        )
    jaxws_cases = {n: statistics.median(v) for n, v in times.items() if n.startswith("jaxws")}
    best = min(jaxws_cases, key=jaxws_cases.get)
    print(
        f"\nFastest jaxws schedule: {best}, {jaxws_cases[best]:.4f} ms per toy-epoch: "
        f"{3.6e6 / (jaxws_cases[best] * PAPER_EPOCHS):,.0f} toys per hour at the papers' "
        f"{PAPER_EPOCHS} epochs per toy."
    )
    neural = statistics.median(times["jaxws, 1 toy"]) * PAPER_EPOCHS / 1e3
    kernel = statistics.median(kernel_seconds)
    print(
        f"\nToys per minute, 1 toy per call: neural NPLM (jaxws, {PAPER_EPOCHS} epochs) "
        f"{60 / neural:.4f} ({neural:.0f} s per toy); kernel NPLM (M = {args.kernel_centres}, "
        f"30 Newton iterations) {60 / kernel:.1f} ({kernel:.2f} s per toy; rounds "
        f"{', '.join(f'{k:.2f}' for k in kernel_seconds)} s)."
    )
    if not use_package:
        print("\nNPLM_package not run (give --tf-python and --nplm-package); vs floor only.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
