"""Does the optional Newton fit reach long Adam training's t on the same NPLM toys?

Issue 12 keeps Newton only "with a test that it reaches the same t as long Adam training". This
script measures it on a few small null toys (standardised inputs, 1-4-1, every weight clipped
at 9, the same initial weights for both fits) and prints, per toy: Newton's t after
``--newton`` iterations, Adam's t after ``--adam-epochs`` epochs, the norm of Newton's final
gradient over the parameters not held at the clip bound (0 at a stationary point of the box),
and the t that ``--restart-epochs`` further Adam epochs reach when started from Newton's final
weights (equal to Newton's t when Newton stopped in a local minimum).

Usage:
    python experiments/nplm_newton_vs_adam.py --toys 4 --n-reference 2000 --n-expected 200
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxws.methods.nplm import standardise_by_reference
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm

CLIP = 9.0


def null_toys(key: jax.Array, n_toys: int, n_reference: int, n_expected: float) -> tuple:
    """Standardised NPLM inputs (x, data weight, reference weight) of ``n_toys`` null toys."""
    n_max = toys.capacity(n_expected)

    def make(toy_key: jax.Array) -> tuple:
        k_data, k_reference = jax.random.split(toy_key)
        sample = toys.sample_data(k_data, n_expected, 0.0, toys.SignalShape(), n_max)
        reference = toys.sample_reference(k_reference, n_reference)
        x, data_weight, reference_weight = nplm.nplm_inputs(
            sample.events, sample.mask, reference, jnp.ones(n_reference), n_expected
        )
        return standardise_by_reference(x, reference_weight), data_weight, reference_weight

    return jax.vmap(make)(jax.random.split(key, n_toys))


def restart_with_adam(
    params: dict, x: jax.Array, data_weight: jax.Array, reference_weight: jax.Array, epochs: int
) -> tuple[float, float]:
    """(free-gradient norm at ``params``, t after ``epochs`` Adam epochs started from them)."""
    spec = nplm.NetworkSpec()
    flat, unravel = ravel_pytree(params)

    def loss(p: jax.Array) -> jax.Array:
        f = nplm.apply_test_function(unravel(p), x, spec)
        return jnp.sum(nplm.nplm_loss_terms(f, data_weight, reference_weight))

    gradient = jax.grad(loss)(flat)
    held = (jnp.abs(flat) >= CLIP * (1 - 1e-6)) & (flat * gradient < 0)
    free_gradient = float(jnp.linalg.norm(jnp.where(held, 0.0, gradient)))
    optimizer = optax.adam(0.01)

    def step(carry: tuple, _: None) -> tuple[tuple, None]:
        p, state = carry
        updates, state = optimizer.update(jax.grad(loss)(p), state, p)
        return (jnp.clip(optax.apply_updates(p, updates), -CLIP, CLIP), state), None

    (final, _), _ = jax.lax.scan(step, (flat, optimizer.init(flat)), None, length=epochs)
    return free_gradient, float(-2.0 * loss(final))


def main() -> None:
    """Fit the toys both ways and print one row per toy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", type=int, default=4)
    parser.add_argument("--n-reference", type=int, default=2000)
    parser.add_argument("--n-expected", type=float, default=200.0)
    parser.add_argument("--newton", type=int, default=400, help="Newton iterations")
    parser.add_argument("--adam-epochs", type=int, default=20000)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--restart-epochs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if min(args.toys, args.n_reference, args.newton, args.adam_epochs, args.restart_epochs) < 1:
        print("nplm_newton_vs_adam: error: counts must be >= 1", file=sys.stderr)
        sys.exit(2)
    toy_key, fit_key = jax.random.split(jax.random.key(args.seed))
    x, data_weight, reference_weight = null_toys(
        toy_key, args.toys, args.n_reference, args.n_expected
    )
    keys = jax.random.split(fit_key, args.toys)
    spec = nplm.NetworkSpec()
    hparams = nplm.NPLMHparams(jnp.float32(args.learning_rate), jnp.float32(CLIP))
    newton = nplm.fit_toys(
        keys, x, data_weight, reference_weight, hparams, spec,
        nplm.NPLMTraining(args.newton, optimizer="newton"),
    )  # fmt: skip
    adam = nplm.fit_toys(
        keys, x, data_weight, reference_weight, hparams, spec,
        nplm.NPLMTraining(args.adam_epochs, optimizer="adam"),
    )  # fmt: skip
    print(
        f"N_R = {args.n_reference}, N(R) = {args.n_expected:g}, null toys, 1-4-1 sigmoid, clip "
        f"{CLIP:g} (all weights), glorot init shared; Newton {args.newton} iterations; Adam lr "
        f"{args.learning_rate:g} x {args.adam_epochs} epochs; load average "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| toy | t Newton | t Adam | Adam - Newton | free gradient at Newton's end | "
        f"t after {args.restart_epochs} Adam epochs from Newton's end |"
    )
    print("|---|---|---|---|---|---|")
    for i in range(args.toys):
        params = jax.tree.map(lambda a, i=i: jnp.asarray(a[i]), newton.params)
        free_gradient, restarted = restart_with_adam(
            params, x[i], data_weight[i], reference_weight[i], args.restart_epochs
        )
        print(
            f"| {i} | {newton.t[i]:.3f} | {adam.t[i]:.3f} | {adam.t[i] - newton.t[i]:+.3f} | "
            f"{free_gradient:.3g} | {restarted:.3f} |"
        )
    print(f"\nmean t: Newton {np.mean(newton.t):.3f}, Adam {np.mean(adam.t):.3f}")


if __name__ == "__main__":
    main()
