"""Toys of the 1D exponential NPLM example with systematic nuisances (arXiv:2111.13633).

The reference is exp(-x) on x >= 0 at the central nuisance values nu = 0. The data of a toy
are drawn at true nuisances nu* (units of their standard deviations sigma): the expected count
is ``N(R) exp(sigma_N nu*_N)`` (normalisation, a log-normal rate) and the observable is
multiplied by ``exp(sigma_S nu*_S)`` (scale). The auxiliary measurements are fluctuated too:
``A ~ Normal(nu*, 1)``. Conventions of the statistic: :mod:`jaxws.stats.nplm.nuisances`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxws.simulate.nplm_toys import Sample


def sample_data_with_nuisances(
    key: jax.Array,
    n_expected: float,
    true_nuisances: jax.Array,
    sigma: jax.Array,
    n_max: int,
) -> Sample:
    """Data at true nuisances: Poisson(N(R) exp(sigma_N nu_N)) events exp(sigma_S nu_S) * E.

    Args:
        key: typed key, consumed.
        n_expected: N(R), the expected count at nu = 0.
        true_nuisances: (2,) nu* = (nu_N, nu_S) in units of sigma (traced leaves).
        sigma: (2,) standard deviations (sigma_N, sigma_S).
        n_max: buffer size, at least ``capacity(N(R) exp(sigma_N nu_N))``.

    Returns:
        The padded sample (events (n_max, 1)); ``overflow`` when the count exceeded n_max.
    """
    k_count, k_events = jax.random.split(key)
    count = jax.random.poisson(k_count, n_expected * jnp.exp(sigma[0] * true_nuisances[0]))
    events = jnp.exp(sigma[1] * true_nuisances[1]) * jax.random.exponential(k_events, (n_max, 1))
    mask = (jnp.arange(n_max) < count).astype(jnp.float32)
    return Sample(events, mask, count > n_max)


def sample_auxiliary(key: jax.Array, true_nuisances: jax.Array) -> jax.Array:
    """Auxiliary measurements ``A ~ Normal(nu*, 1)`` (units of sigma), shape (2,)."""
    return true_nuisances + jax.random.normal(key, (2,))
