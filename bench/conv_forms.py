"""Convolution forms per layer, side by side: forward + backward of each conv of the jet CNNs.

For every conv layer of the paper CNN (arXiv:2312.06152 Table 2) and the slim CNN at the
engine's real shapes (batch 500 events = 1000 jet images of 25 x 25), times
`grad(sum(sin(conv(x, kernel, bias))))` with respect to (x, kernel, bias) for each form of
`jaxws.models.layers` (im2col, rows, shift, lax), jitted, interleaved round-robin in one
process (bench/timing.py). This is the measurement behind `choose_conv_method` on CPU.

  JAX_PLATFORMS=cpu python bench/conv_forms.py [--models paper,slim] [--rounds 5]
      [--forms im2col,rows,shift,lax] [--members 1]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import timing

IMAGES = 1000  # 500 events x 2 jets
SIZE = 25


def layer_shapes(spec: dict) -> list[tuple[int, int, int, int]]:
    """(H, k, C_in, C_out) of each conv layer of a `PAPER_CNN`-like spec at 25 x 25."""
    shapes, size, channels = [], SIZE, 1
    for features, kernel, pool in zip(
        spec["conv_features"], spec["kernel_sizes"], spec["pool_after"], strict=True
    ):
        shapes.append((size, kernel, channels, features))
        channels = features
        if pool:
            size //= 2
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="paper,slim")
    parser.add_argument("--forms", default="im2col,rows,shift,lax")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--members", type=int, default=1, help="E > 1: vmapped over kernels")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from jaxws.models import layers
    from jaxws.models.cnn import PAPER_CNN, SLIM_CNN

    specs = {"paper": PAPER_CNN, "slim": SLIM_CNN}
    forms = args.forms.split(",")
    print(*timing.machine_lines(), sep="\n")
    print(f"- backend {jax.default_backend()}; E = {args.members}; rounds {args.rounds}")
    print()
    print("| model | layer | H | k | C_in | C_out | form | ms median [min-max] | vs im2col |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for number, (size, k, cin, cout) in enumerate(layer_shapes(specs[model])):
            keys = jax.random.split(jax.random.key(number), 3)
            e = args.members
            x = jax.random.normal(keys[0], (e, IMAGES, size, size, cin))
            kernel = jax.random.normal(keys[1], (e, k, k, cin, cout)) * 0.1
            bias = jax.random.normal(keys[2], (e, cout))
            cases = {}
            for form in forms:
                conv = layers._FORMS[form]
                loss = lambda a, b, c, conv=conv: jnp.sum(jnp.sin(conv(a, b, c)))
                grad = jax.grad(loss, argnums=(0, 1, 2))
                fn = jax.jit(jax.vmap(grad) if e > 1 else grad)
                xs, ks, bs = (x, kernel, bias) if e > 1 else (x[0], kernel[0], bias[0])
                cases[form] = lambda fn=fn, xs=xs, ks=ks, bs=bs: jax.block_until_ready(
                    fn(xs, ks, bs)
                )
            times = timing.interleave(cases, args.rounds)
            load = times.pop("_load")
            base = timing.summary(times[forms[0]]["wall"])[0]
            for form in forms:
                med = timing.summary(times[form]["wall"])[0]
                print(
                    f"| {model} | conv_{number} | {size} | {k} | {cin} | {cout} | {form} | "
                    f"{timing.fmt_spread(times[form]['wall'], 1e3)} | {base / med:.2f} |"
                )
            print(f"<!-- load before {load['before']}, after {load['after']} -->")
    print(f"\nload average at end: {timing.load_average()}")


if __name__ == "__main__":
    main()
