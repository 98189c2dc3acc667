"""Generalised-Pareto tails of a score density, fitted by probability-weighted moments.

Peaks over threshold: beyond a high (or below a low) quantile u of a sample the exceedances
y = TS - u follow a generalised Pareto law g(y; scale, xi) = (1 / scale) (1 + xi y / scale)^(-1
- 1 / xi) (xi = 0: exponential, xi > 0: power law). The fit follows Hosking and Wallis,
Technometrics 29 (1987) 339. Used by `jaxws.stats.anomaly.density` for honest tails of f_0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MAX_TAIL_SHAPE = 0.9


def fit_pareto_tail(
    excess: jax.Array, rank: jax.Array, n: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Generalised-Pareto (scale, shape xi) of the exceedances by probability-weighted moments.

    With a0 the mean exceedance and a1 = mean((1 - p_j) y_(j)), p_j = (j + 0.65) / n for the
    ascending exceedances y_(j) (rank j = 0..n-1; other entries of `excess` carry ranks outside
    that range), xi = 2 - a0 / (a0 - 2 a1) and scale = 2 a0 a1 / (a0 - 2 a1). xi is clipped to
    [0, MAX_TAIL_SHAPE]: a bounded tail (xi < 0) would give zero density beyond its end point,
    which new data can reach; the scale is then set so the mean exceedance stays right.

    Args:
      excess: (m,) distances beyond the threshold (entries outside the tail are ignored).
      rank: (m,) rank of each entry among the ascending exceedances.
      n: number of exceedances (entries with 0 <= rank < n are in the tail).

    Returns:
      (scale, shape) scalars.
    """
    in_tail = (rank >= 0) & (rank < n)
    y = jnp.where(in_tail, excess, 0.0)
    n = jnp.maximum(n, 1).astype(jnp.float32)
    a0 = jnp.sum(y) / n
    a1 = jnp.sum(jnp.where(in_tail, (1.0 - (rank + 0.65) / n) * y, 0.0)) / n
    denominator = jnp.maximum(a0 - 2.0 * a1, 1e-30)
    shape = jnp.clip(2.0 - a0 / denominator, 0.0, MAX_TAIL_SHAPE)
    # With xi clipped, keep the mean exceedance right: mean = scale / (1 - xi).
    scale = jnp.maximum(a0 * (1.0 - shape), 1e-30)
    return scale, shape


def pareto_log_density(excess: jax.Array, scale: jax.Array, shape: jax.Array) -> jax.Array:
    """The log density log g(excess; scale, xi) at excess >= 0 (the exponential law for xi < 1e-4).

    Args:
      excess: distances beyond the threshold (>= 0).
      scale: scale of the law (> 0).
      shape: shape xi (>= 0).

    Returns:
      The log density, shaped like `excess`.
    """
    small = shape < 1e-4
    safe_shape = jnp.where(small, 1.0, shape)
    pareto = -(1.0 + 1.0 / safe_shape) * jnp.log1p(safe_shape * excess / scale)
    return -jnp.log(scale) + jnp.where(small, -excess / scale, pareto)
