"""Exact Poisson and binomial counts for the detector chain (inverse CDF for small means)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxws.simulate.tpc.yields import _MAX_SMALL_COUNT, SMALL_MEAN


def _inverse_cdf_count(
    uniform: jax.Array, first_pmf: jax.Array, next_ratio: Callable[[jax.Array], jax.Array]
):
    """Smallest k with CDF(k) >= u, for pmf_{k+1} = pmf_k * next_ratio(k) (k < 100)."""

    def body(k: jax.Array, carry: tuple[jax.Array, jax.Array, jax.Array]):
        count, pmf, cdf = carry
        count = count + (uniform > cdf).astype(jnp.float32)
        pmf = pmf * next_ratio(k)
        return count, pmf, cdf + pmf

    init = (jnp.zeros_like(uniform), first_pmf, first_pmf)
    count, _, _ = jax.lax.fori_loop(0, _MAX_SMALL_COUNT, body, init)
    return count


def poisson_counts(key: jax.Array, mean: jax.Array) -> jax.Array:
    """Poisson counts (float) with the shape of `mean`; exact below SMALL_MEAN."""
    uniform_key, normal_key = jax.random.split(key)
    small_mean = jnp.minimum(mean, SMALL_MEAN)
    exact = _inverse_cdf_count(
        jax.random.uniform(uniform_key, mean.shape),
        jnp.exp(-small_mean),
        lambda k: small_mean / (k + 1.0),
    )
    gaussian = jnp.round(mean + jnp.sqrt(mean) * jax.random.normal(normal_key, mean.shape))
    return jnp.where(mean < SMALL_MEAN, exact, jnp.maximum(gaussian, 0.0))


def binomial_counts(key: jax.Array, trials: jax.Array, probability: jax.Array) -> jax.Array:
    """Binomial counts (float) for float `trials`; exact when min(n p, n (1 - p)) < SMALL_MEAN."""
    uniform_key, normal_key = jax.random.split(key)
    trials, probability = jnp.broadcast_arrays(trials, jnp.asarray(probability, jnp.float32))
    flipped = probability > 0.5
    p = jnp.where(flipped, 1.0 - probability, probability)
    small = trials * p < SMALL_MEAN
    n_small = jnp.where(small, trials, 0.0)
    exact = _inverse_cdf_count(
        jax.random.uniform(uniform_key, trials.shape),
        jnp.exp(n_small * jnp.log1p(-p)),
        lambda k: jnp.maximum(n_small - k, 0.0) / (k + 1.0) * p / (1.0 - p),
    )
    sigma = jnp.sqrt(trials * p * (1.0 - p))
    gaussian = jnp.round(trials * p + sigma * jax.random.normal(normal_key, trials.shape))
    count = jnp.where(small, exact, jnp.clip(gaussian, 0.0, trials))
    return jnp.where(flipped, trials - count, count)
