"""Numerical checks on a GPU: does float32 arithmetic there change jaxws' numbers?

On NVIDIA GPUs from Ampere on, XLA may run float32 matrix products and convolutions in
TF32 (10-bit mantissa) at the default precision. This script measures, on the GPU that JAX
sees, against float64 NumPy and against the CPU backend of the same process:

1. a float32 matrix product (1024 x 1024) at the default and at "highest" precision;
2. the NPLM test statistic t of the same toys (1-4-1 network, N_R = 20k, N(R) = 2k, Adam,
   clip 9) fitted on the CPU, on the GPU at the default precision and on the GPU at
   "highest": the largest |delta t| over the toys.

  JAX_PLATFORMS=cuda,cpu python bench/gpu_checks.py [--toys 8] [--epochs 2000]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_PLATFORMS", "cuda,cpu")

import jax
import jax.numpy as jnp
import numpy as np
import timing


def matmul_errors() -> dict[str, float]:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(exact).max()
    out = {}
    for precision in ("default", "highest"):
        with jax.default_matmul_precision(precision):
            got = np.asarray(jax.jit(jnp.matmul)(a, b), np.float64)
        out[precision] = float(np.abs(got - exact).max() / scale)
    return out


def nplm_t(toys: int, epochs: int) -> dict[str, np.ndarray]:
    from nplm_toys import CLIP, LEARNING_RATE, _inputs

    from jaxws.stats import nplm

    x, dw, rw = _inputs(toys, 20_000, 2000.0)
    x, dw, rw = (np.asarray(a) for a in (x, dw, rw))
    keys = jax.random.split(jax.random.key(1), toys)
    train = nplm.NPLMTraining(epochs)
    hparams = nplm.NPLMHparams(np.float32(LEARNING_RATE), np.float32(CLIP))

    def fit(device, precision):
        with jax.default_device(device), jax.default_matmul_precision(precision):
            k = jax.device_put(keys, device)
            result = nplm.fit_toys(k, x, dw, rw, hparams, nplm.NetworkSpec(), train, toys)
        return np.asarray(result.t, np.float64)

    cpu, gpu = jax.devices("cpu")[0], jax.devices()[0]
    return {
        "cpu": fit(cpu, "highest"),
        "gpu default": fit(gpu, "default"),
        "gpu highest": fit(gpu, "highest"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args()
    print(*timing.machine_lines(), sep="\n")
    print("\n| float32 1024^3 matmul precision | max |error| / max |exact| vs float64 |")
    print("|---|---|")
    for precision, error in matmul_errors().items():
        print(f"| {precision} | {error:.2e} |")
    t = nplm_t(args.toys, args.epochs)
    print(f"\nNPLM t, {args.toys} toys, N_R = 20k, N(R) = 2k, {args.epochs} Adam epochs, clip 9:\n")
    print("| backend | t (first 4 toys) | max abs(t - t_cpu) |")
    print("|---|---|---|")
    for name, values in t.items():
        shown = ", ".join(f"{v:.4f}" for v in values[:4])
        print(f"| {name} | {shown} | {np.abs(values - t['cpu']).max():.2e} |")


if __name__ == "__main__":
    main()
