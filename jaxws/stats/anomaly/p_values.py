"""p-values and significances of the anomaly-aware test from toys, and their summaries.

Conventions: every statistic is "large = signal-like" (t and q0 of
`jaxws.stats.anomaly.likelihood`); p = P(stat >= observed | H0) estimated from n null toys;
Z = Phi^-1(1 - p) is one-sided. A p-value from n toys cannot go below the floor 1 / (1 + n):
a median at that floor is only an upper bound and is reported as "p < floor".
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jaxws.stats.significance import z_from_p

SUMMARY_KEYS = ("median_p", "p_low", "p_high", "at_cap", "median_z")


def toy_p_values(
    observed: jax.Array, null_statistics: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """The p-value P(stat >= observed | H0) from null toys, for each observed value.

    Without `key`: p = (1 + #{null >= obs}) / (1 + n) (conservative, never 0). With `key`: ties
    are randomised, p = (#{null > obs} + U (1 + #{null == obs})) / (1 + n), U ~ U(0, 1), which is
    exactly uniform under H0 when the observed value and the n toys are exchangeable (needed for
    q0, whose null distribution has an atom at 0).

    Args:
      observed: observed statistics (any shape).
      null_statistics: (n,) statistics of null toys.
      key: PRNG key for randomised ties, or None.

    Returns:
      p-values shaped like `observed`.
    """
    observed = jnp.asarray(observed)
    null_statistics = jnp.asarray(null_statistics)
    n = null_statistics.shape[0]
    above = jnp.sum(null_statistics[None, :] > observed.reshape(-1, 1), axis=1)
    ties = jnp.sum(null_statistics[None, :] == observed.reshape(-1, 1), axis=1)
    if key is None:
        p = (1.0 + above + ties) / (1.0 + n)
    else:
        u = jax.random.uniform(key, (observed.size,))
        p = (above + u * (1.0 + ties)) / (1.0 + n)
    return p.reshape(observed.shape)


def asymptotic_p_value(q0: jax.Array) -> jax.Array:
    """The asymptotic p-value 1 - Phi(sqrt(q0)) (one-sided; Wilks with the boundary at s = 0).

    Args:
      q0: discovery statistics.

    Returns:
      Asymptotic p-values, shaped like `q0`.
    """
    return jax.scipy.stats.norm.sf(jnp.sqrt(jnp.maximum(q0, 0.0)))


def median_p_value(null_statistics: ArrayLike, signal_statistics: ArrayLike) -> dict:
    """Median p-value of signal toys with a 68% band, and whether it is only a bound (host).

    Convention: p_i = (1 + #{null >= t_i}) / (1 + n) for each signal toy (conservative, never
    below 1 / (1 + n)); the median p is the median of the p_i (the p-value of the median
    statistic). The band is the order-statistic 68% confidence interval of that median (ranks
    n/2 -/+ sqrt(n)/2 of the sorted p_i): the toy uncertainty, not the seed-to-seed scatter. When
    the median sits at the floor 1 / (1 + n) it is only an upper bound, `at_cap` is True, and it
    must be shown as "p < 1/(1 + n)".

    Args:
      null_statistics: (n,) statistic of null toys (large = signal-like).
      signal_statistics: (..., m) statistic of signal toys (last axis: toys).

    Returns:
      dict of (...) arrays: median_p, p_low, p_high, at_cap, median_z (one-sided, >= 0) and the
      scalar floor 1 / (1 + n).
    """
    null = np.sort(np.asarray(null_statistics, np.float64))
    signal = np.asarray(signal_statistics, np.float64)
    n = null.size
    above = n - np.searchsorted(null, signal, side="left")
    p = np.sort((1.0 + above) / (1.0 + n), axis=-1)
    m = p.shape[-1]
    half_width = 0.5 * math.sqrt(m)
    low_rank = max(math.floor(0.5 * m - half_width), 0)
    high_rank = min(math.ceil(0.5 * m + half_width), m - 1)
    median = np.median(p, axis=-1)
    floor = 1.0 / (1.0 + n)
    return {
        "median_p": median,
        "p_low": p[..., low_rank],
        "p_high": p[..., high_rank],
        "at_cap": median <= floor * (1.0 + 1e-9),
        "median_z": np.maximum(z_from_p(np.clip(median, 1e-300, 1.0)), 0.0),
        "floor": floor,
    }


def format_p(p: float, at_cap: bool, floor: float) -> str:
    """A p-value for tables: "< 1/(1 + n)" written out when it sits at the toy floor.

    Args:
      p: the median p-value.
      at_cap: whether it sits at the floor (`median_p_value`'s at_cap).
      floor: 1 / (1 + n).

    Returns:
      e.g. "0.034" or "< 0.01".
    """
    return f"< {floor:.1g}" if at_cap else f"{p:.2g}"


def uniformity_summary(
    p_values: ArrayLike,
    observed: ArrayLike | None = None,
    toys: ArrayLike | None = None,
) -> dict[str, float]:
    """How uniform null p-values are: KS p-value, fractions below 0.05 and 0.01 with errors.

    p-values computed from a finite set of n_toys null toys share that set's noise: the toys'
    own fraction beyond the alpha-quantile is Binomial(n_toys, alpha) / n_toys, so the count of
    data sets below alpha scatters around n alpha with variance alpha (1 - alpha) (n + n^2 /
    n_toys), not n alpha (1 - alpha). With `observed` and `toys` (the statistics behind the
    p-values; large = signal-like) the errors are sqrt(alpha (1 - alpha) (1 / n + 1 / n_toys))
    and the KS test is the two-sample test of the observed statistics against the toys
    (`scipy.stats.ks_2samp`), which is exact for that comparison; without them the errors are
    binomial, sqrt(alpha (1 - alpha) / n), and the KS test is against U(0, 1) (valid when
    n_toys >> n). `(fraction - alpha) / error` is the pull of each fraction; the binomial
    p-values are the exact two-sided tests of the count below alpha against Binomial(n,
    alpha) (`scipy.stats.binomtest`), which ignore the toys' noise.

    Args:
      p_values: (n,) p-values that should be uniform under H0.
      observed: (n,) the statistics of the data sets behind `p_values` (optional).
      toys: (n_toys,) the null toys' statistics they were compared with (optional).

    Returns:
      dict with n, ks_pvalue and, for a = 0.05 and 0.01 (tags 05, 01), fraction_below_<tag>,
      error_<tag> and binomial_pvalue_<tag>.
    """
    from scipy import stats

    p = np.asarray(p_values, np.float64)
    n = p.size
    if (observed is None) != (toys is None):
        raise ValueError("uniformity_summary: pass both `observed` and `toys`, or neither")
    if toys is None:
        ks, inverse_toys = stats.kstest(p, "uniform").pvalue, 0.0
    else:
        toys = np.asarray(toys, np.float64).ravel()
        ks = stats.ks_2samp(np.asarray(observed, np.float64).ravel(), toys).pvalue
        inverse_toys = 1.0 / toys.size
    summary = {"n": float(n), "ks_pvalue": float(ks)}
    for alpha, tag in ((0.05, "05"), (0.01, "01")):
        summary[f"fraction_below_{tag}"] = float(np.mean(p < alpha))
        summary[f"error_{tag}"] = math.sqrt(alpha * (1.0 - alpha) * (1.0 / n + inverse_toys))
        below = int(np.sum(p < alpha))
        summary[f"binomial_pvalue_{tag}"] = float(stats.binomtest(below, n, alpha).pvalue)
    return summary
