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

_NEWTON_STEPS = 50
_NEWTON_TOLERANCE = 1e-5


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
    max_steps: int = _NEWTON_STEPS,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Maximum-likelihood signal count s_hat >= 0 and q0 = -2 log [L(0) / L(s_hat)].

    With r_i = f_s(TS_i) / (B f_0(TS_i)), log L(s) - log L(0) = -s + sum_i log(1 + s r_i), a
    concave function; see `fit_signal_from_ratios` for the fit.

    Args:
      scores: (n,) the events' anomaly scores TS.
      mask: (n,) True for events that enter the fit.
      null: f_0, the background density of TS.
      template: f_s, the signal density of TS.
      expected_background: B, the expected background count of the data set.
      max_steps: Newton steps at most (static).

    Returns:
      (s_hat, q0, converged), scalars; q0 is one-sided (0 when the fit prefers no signal);
      converged is False when the step limit came before the tolerance.
    """
    log_ratio = (
        log_density_at(template, scores)
        - jnp.log(expected_background)
        - log_density_at(null, scores)
    )
    return fit_signal_from_ratios(log_ratio, mask, max_steps)


def fit_signal_from_ratios(
    log_ratio: jax.Array, mask: jax.Array, max_steps: int = _NEWTON_STEPS
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """s_hat >= 0, q0 and convergence of max_s [-s + sum_i log(1 + s r_i)], from log r_i.

    The maximum solves S(s) = sum_i 1 / (w_i + s) = 1 (w_i = 1 / r_i). Newton's method runs on
    F(s) = 1 / S(s) = 1, the "parallel sum" of the affine functions w_i + s, which is concave
    and increasing (exactly linear when one event dominates): started at s = 0 (where F < 1
    when a signal is preferred) its steps rise monotonically to the root and never overshoot
    it; each step is one pass over the events (w_i is computed once), and it stops when a step
    moves s by less than `_NEWTON_TOLERANCE` (1 + s) or after `_NEWTON_STEPS` steps (3-8 steps
    in tests with 5000 to 240 000 events and ratios spanning 1e-9 to 1e9). s_hat = 0 and q0 = 0
    when S(0) <= 1.

    Args:
      log_ratio: (n,) log r_i (padded entries arbitrary).
      mask: (n,) True for events that enter the fit.
      max_steps: Newton steps at most (static; `_NEWTON_STEPS` unless a test lowers it).

    Returns:
      (s_hat, q0, converged): converged is False when the step limit was reached before the
      tolerance (reported so that a toy is never silently wrong).
    """
    w = jnp.where(mask, jnp.exp(-log_ratio), jnp.inf)

    def newton(state: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, ...]:
        s, _, count = state
        inverse = 1.0 / (w + s)
        total = jnp.sum(inverse)
        step = jnp.maximum(total - 1.0, 0.0) * total / jnp.maximum(jnp.sum(inverse**2), 1e-30)
        return s + step, step, count + 1

    def running(state: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        s, step, count = state
        return (step > _NEWTON_TOLERANCE * (1.0 + s)) & (count < max_steps)

    positive = jnp.sum(1.0 / w) > 1.0
    s_hat, last_step, _ = jax.lax.while_loop(
        running, newton, (jnp.float32(0.0), jnp.float32(jnp.inf), jnp.int32(0))
    )
    s_hat = jnp.where(positive, s_hat, 0.0)
    gain = -s_hat + jnp.sum(
        jnp.where(mask, jnp.logaddexp(0.0, jnp.log(jnp.maximum(s_hat, 1e-30)) + log_ratio), 0.0)
    )
    q0 = jnp.where(positive, jnp.maximum(2.0 * gain, 0.0), 0.0)
    converged = ~positive | (last_step <= _NEWTON_TOLERANCE * (1.0 + s_hat))
    return s_hat, q0, converged


def statistics_from_terms(
    log_null: jax.Array,
    log_ratio: jax.Array,
    mask: jax.Array,
    expected_background: float | jax.Array,
    expected_background_above_cut: float | jax.Array | None = None,
) -> dict[str, jax.Array]:
    """t, q0, s_hat from per-event terms (`jaxws.stats.anomaly.terms`; toys and data alike).

    Args:
      log_null: (n,) a_i = log f_0(TS_i).
      log_ratio: (n,) l_i = log f_s(TS_i) - log f_0(TS_i) - log P_s(TS > c).
      mask: (n,) True for events in the test (real and above the cut).
      expected_background: B.
      expected_background_above_cut: B_c = B P_0(TS > c) (None: B, no cut).

    Returns:
      dict of scalars gof (t = 2 B_c - 2 sum (log B + a_i)), q0, s_hat, converged.
    """
    log_b = jnp.log(expected_background)
    b_cut = (
        expected_background
        if expected_background_above_cut is None
        else (expected_background_above_cut)
    )
    gof = 2.0 * b_cut - 2.0 * jnp.sum(jnp.where(mask, log_b + log_null, 0.0))
    s_hat, q0, converged = fit_signal_from_ratios(log_ratio - log_b, mask)
    return {"q0": q0, "s_hat": s_hat, "gof": gof, "converged": converged}


def data_set_statistics(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
    cut: float | jax.Array = -jnp.inf,
    null_fraction: float | jax.Array = 1.0,
    signal_fraction: float | jax.Array = 1.0,
) -> dict[str, jax.Array]:
    """The statistics t (gof), q0 and s_hat of one data set (toys and observed data alike).

    With a TS cut c only events with TS > c enter (`jaxws.stats.anomaly.terms`): B_c = B
    `null_fraction`, the template renormalised by `signal_fraction` = P_s(TS > c).

    Returns:
      dict of scalars gof, q0, s_hat, converged.
    """
    log_null = log_density_at(null, scores)
    log_ratio = log_density_at(template, scores) - log_null - jnp.log(signal_fraction)
    return statistics_from_terms(
        log_null,
        log_ratio,
        mask & (scores > cut),
        expected_background,
        expected_background * null_fraction,
    )


@jax.jit
def observed_statistics(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
    cut: float | jax.Array = -jnp.inf,
    null_fraction: float | jax.Array = 1.0,
    signal_fraction: float | jax.Array = 1.0,
) -> dict[str, jax.Array]:
    """The statistics t (gof), q0 and s_hat of data sets (D, n) padded with a mask, as in toys.

    Args:
      scores: (D, n) scores of D data sets (padded).
      mask: (D, n) True for real events.
      null: f_0.
      template: f_s.
      expected_background: B.
      cut: the TS cut c (-inf: none).
      null_fraction: P_0(TS > c).
      signal_fraction: P_s(TS > c).

    Returns:
      dict of (D,) arrays gof, q0, s_hat and converged.
    """
    return jax.vmap(data_set_statistics, in_axes=(0, 0, None, None, None, None, None, None))(
        scores, mask, null, template, expected_background, cut, null_fraction, signal_fraction
    )
