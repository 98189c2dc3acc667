"""Throughput of NPLM toy training: toys per hour, one toy alone against vmapped chunks.

The 1-4-1 setting of arXiv:1806.02350 (N_R = 200k reference events, N(R) = 2k expected data
events, weight clip 9). Each case times a few hundred full-batch Adam epochs (after a warm-up
call that compiles) and extrapolates linearly to the papers' 300k epochs per toy; the damped
Newton optimizer (jaxws' default, ~200 iterations to converge) is timed the same way. The
reference TensorFlow implementation needs about 45 ms per epoch per toy; the target is
100 toys x 300k epochs in at most 4 hours on 2 cores.

Usage: python bench/nplm_toys.py [--epochs 200] [--chunks 1 4 8 16] [--newton-iterations 20]
Prints a markdown table with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxws.simulate import nplm_toys as toys  # noqa: E402
from jaxws.stats import nplm  # noqa: E402

PAPER_EPOCHS = 300_000
TENSORFLOW_MS_PER_EPOCH = 45.0
TARGET_TOYS, TARGET_HOURS = 100, 4.0


def _inputs(n_toys: int, n_reference: int, n_expected: float):
    n_max = toys.capacity(n_expected)

    def make(key):
        k_data, k_reference = jax.random.split(key)
        sample = toys.sample_data(k_data, n_expected, 0.0, toys.SignalShape(), n_max)
        reference = toys.sample_reference(k_reference, n_reference)
        ones = jnp.ones(n_reference)
        return nplm.nplm_inputs(sample.events, sample.mask, reference, ones, n_expected)

    return jax.jit(jax.vmap(make))(jax.random.split(jax.random.key(0), n_toys))


def _seconds_per_step(chunk: int, steps: int, optimizer: str, inputs) -> float:
    x, dw, rw = (a[:chunk] for a in inputs)
    keys = jax.random.split(jax.random.key(1), chunk)
    train = nplm.TrainSpec(steps, optimizer=optimizer)
    hparams = nplm.Hparams(jnp.float32(1e-3), jnp.float32(9.0))
    spec = nplm.NetworkSpec()
    nplm.fit_ensemble(keys, x, dw, rw, hparams, spec, train, chunk_size=chunk)  # compile
    start = time.perf_counter()
    nplm.fit_ensemble(keys, x, dw, rw, hparams, spec, train, chunk_size=chunk)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="Adam epochs timed per case")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--newton-iterations", type=int, default=20)
    parser.add_argument("--newton-to-converge", type=int, default=200)
    parser.add_argument("--n-reference", type=int, default=200_000)
    parser.add_argument("--n-expected", type=float, default=2000.0)
    args = parser.parse_args()

    inputs = _inputs(max(args.chunks), args.n_reference, args.n_expected)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} ({jax.default_backend()}), load average {load:.1f} at start"
    )
    print(
        f"Setting: 1-4-1, N_R = {args.n_reference}, N(R) = {args.n_expected:g}; Adam timed over "
        f"{args.epochs} epochs, extrapolated to {PAPER_EPOCHS} epochs per toy; Newton timed "
        f"over {args.newton_iterations} iterations, {args.newton_to_converge} per toy.\n"
    )
    print(
        "| optimizer | toys per call | ms per step per toy | s per toy (full training) "
        "| toys per hour | hours for 100 toys | speed-up per toy vs TF (45 ms x 300k) |"
    )
    print("|---|---|---|---|---|---|---|")
    for optimizer, steps, per_toy in (
        ("adam", args.epochs, PAPER_EPOCHS),
        ("newton", args.newton_iterations, args.newton_to_converge),
    ):
        for chunk in args.chunks:
            seconds = _seconds_per_step(chunk, steps, optimizer, inputs) / chunk
            toy_seconds = seconds * per_toy
            print(
                f"| {optimizer} | {chunk} | {seconds * 1e3:.2f} | {toy_seconds:.0f} | "
                f"{3600 / toy_seconds:.2f} | {TARGET_TOYS * toy_seconds / 3600:.1f} | "
                f"{TENSORFLOW_MS_PER_EPOCH * 1e-3 * PAPER_EPOCHS / toy_seconds:.1f}x |"
            )
    print(
        f"\nTarget: {TARGET_TOYS} toys x {PAPER_EPOCHS} epochs in <= {TARGET_HOURS:g} h "
        f"({TARGET_HOURS * 3600 / (TARGET_TOYS * PAPER_EPOCHS) * 1e3:.2f} ms per epoch per toy)."
    )


if __name__ == "__main__":
    main()
