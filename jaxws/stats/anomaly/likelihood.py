"""The unbinned extended likelihood in the anomaly score and its two test statistics.

Conventions (Scaffidi and Trotta, DARWIN, arXiv:2410.00755; Cowan et al., arXiv:1007.1727):

* a data set is TS_1..TS_N (padded to a fixed size, with a mask), B the expected number of
  background events and f_0 the background density of TS;
* log L(TS | H0) = -B + sum_i log(B f_0(TS_i)) (the seed's equation); the model-independent
  goodness-of-fit statistic is t = -2 log L(TS | H0): large t = poor fit to H0;
* with a signal template f_s and s >= 0 expected signal events, L(s) = e^-(B + s) prod_i
  (B f_0(TS_i) + s f_s(TS_i)); the one-sided, model-dependent discovery statistic is
  q0 = -2 log [L(0) / L(s_hat)] for s_hat > 0 and q0 = 0 otherwise. Asymptotically
  Z = sqrt(q0) (Wilks with the half-chi2 boundary term), but every reported p comes from toys.

Arguments of every function: `scores` (n,) scores of one data set padded to a fixed size,
`mask` (n,) True for real events, `null` f_0 and `template` f_s (`ScoreDensity`),
`expected_background` B.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxws.stats.anomaly.density import ScoreDensity, log_density_at

_BISECTION_STEPS = 60


def null_log_likelihood(
    scores: jax.Array, mask: jax.Array, null: ScoreDensity, expected_background: float | jax.Array
) -> jax.Array:
    """Extended log L(TS | H0) = -B + sum_i [log B + log f_0(TS_i)] over events with mask 1.

    Returns:
      log L (scalar).
    """
    terms = jnp.log(expected_background) + log_density_at(null, scores)
    return -expected_background + jnp.sum(jnp.where(mask, terms, 0.0))


def goodness_of_fit_statistic(
    scores: jax.Array, mask: jax.Array, null: ScoreDensity, expected_background: float | jax.Array
) -> jax.Array:
    """The model-independent t = -2 log L(TS | H0); large values mean the data fit H0 poorly.

    Returns:
      t (scalar).
    """
    return -2.0 * null_log_likelihood(scores, mask, null, expected_background)


def fit_signal_count(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Maximum-likelihood signal count s_hat >= 0 and q0 = -2 log [L(0) / L(s_hat)].

    With r_i = f_s(TS_i) / (B f_0(TS_i)), log L(s) - log L(0) = -s + sum_i log(1 + s r_i), a
    concave function whose derivative -1 + sum_i r_i / (1 + s r_i) decreases in s and is <= 0
    at s = N; s_hat is found by bisection on [0, N] (s_hat = 0 when the derivative at 0 is <= 0).

    Returns:
      (s_hat, q0), scalars; q0 is one-sided (0 when the fit prefers no signal).
    """
    log_ratio = (
        log_density_at(template, scores)
        - jnp.log(expected_background)
        - log_density_at(null, scores)
    )
    log_ratio = jnp.where(mask, log_ratio, -jnp.inf)
    n_events = jnp.sum(mask)

    def slope(s: jax.Array) -> jax.Array:
        # r / (1 + s r) = 1 / (1 / r + s), stable for huge and tiny r.
        return -1.0 + jnp.sum(jnp.where(mask, 1.0 / (jnp.exp(-log_ratio) + s), 0.0))

    def bisect(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        low, high = bounds
        middle = 0.5 * (low + high)
        rising = slope(middle) > 0
        return jnp.where(rising, middle, low), jnp.where(rising, high, middle)

    low, high = jax.lax.fori_loop(
        0, _BISECTION_STEPS, bisect, (jnp.float32(0.0), n_events.astype(jnp.float32))
    )
    positive = slope(jnp.float32(0.0)) > 0
    s_hat = jnp.where(positive, 0.5 * (low + high), 0.0)
    gain = -s_hat + jnp.sum(
        jnp.where(mask, jnp.logaddexp(0.0, jnp.log(jnp.maximum(s_hat, 1e-30)) + log_ratio), 0.0)
    )
    q0 = jnp.where(positive, jnp.maximum(2.0 * gain, 0.0), 0.0)
    return s_hat, q0


def data_set_statistics(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
) -> dict[str, jax.Array]:
    """The statistics t (gof), q0 and s_hat of one data set (toys and observed data alike).

    Returns:
      dict of scalars gof, q0, s_hat.
    """
    s_hat, q0 = fit_signal_count(scores, mask, null, template, expected_background)
    gof = goodness_of_fit_statistic(scores, mask, null, expected_background)
    return {"q0": q0, "s_hat": s_hat, "gof": gof}


@jax.jit
def observed_statistics(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
) -> dict[str, jax.Array]:
    """The statistics t (gof), q0 and s_hat of data sets (D, n) padded with a mask, as in toys.

    Args:
      scores: (D, n) scores of D data sets (padded).
      mask: (D, n) True for real events.
      null: f_0.
      template: f_s.
      expected_background: B.

    Returns:
      dict of (D,) arrays gof, q0 and s_hat.
    """
    return jax.vmap(data_set_statistics, in_axes=(0, 0, None, None, None))(
        scores, mask, null, template, expected_background
    )
