"""The anomaly score TS and an unbinned extended-likelihood test in it, calibrated with toys.

Follows the anomaly-aware search of Scaffidi and Trotta (DARWIN, arXiv:2410.00755):

* score, per event: TS = -ELBO + R H_B with H_B = -log(1 - p(x)) = softplus(logit), p the
  classifier's probability of a nuclear recoil, R >= 0 (R = 0: pure VAE; large R: classifier);
* null density f_0 of TS: a Gaussian kernel density estimate of held-out background scores,
  bandwidth by Silverman's rule h = 0.9 min(std, IQR / 1.34) n^(-1/5), evaluated by binning the
  sample on a uniform grid of `GRID_SIZE` points spanning [min - 6h, max + 6h] and summing the
  kernels in log space (so far tails stay finite); between grid points log f is linearly
  interpolated, beyond the grid it continues as the Gaussian tail of the outermost kernel;
* extended likelihood of a data set TS_1..TS_N under H0 (B expected background events):
  log L(TS | H0) = -B + sum_i log(B f_0(TS_i)) (the slides' eq.); the goodness-of-fit
  statistic is t = -2 log L(TS | H0) (large = poor fit);
* with a signal template f_s (the same kind of KDE built from simulated signal scores) and
  s >= 0 expected signal events, L(s) = e^-(B + s) prod_i (B f_0(TS_i) + s f_s(TS_i)) and the
  one-sided discovery statistic q0 = -2 log [L(0) / L(s_hat)] for s_hat > 0, q0 = 0 otherwise;
  Z = sqrt(q0) asymptotically (Wilks with the half-chi2 boundary term; Cowan et al. 2011);
* p-values from toys: pseudo-data sets with N_B ~ Poisson(B) background scores (drawn with
  replacement from a held-out pool that was not used for f_0: validity comes from the toys
  following the background law, f_0 only sets the power) plus N_S ~ Poisson(s) signal
  scores, padded to a fixed size with a mask; p = P(stat_null >= stat_obs), Z = Phi^-1(1 - p)
  (one-sided). `toy_p_values` can randomise ties (q0 = 0 is an atom) so p is exactly uniform
  under H0.

Everything on toys is pure JAX and vmapped over toys, signal rates and R.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.scipy.special import ndtri

GRID_SIZE = 2048
# Kernel half-width (in bandwidths) used for the grid span and the support of a template.
GRID_MARGIN = 6.0
SUPPORT_MARGIN = 5.0
_BISECTION_STEPS = 60


def _check_scores(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least 2 events")
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return array


# ----------------------------------------------------------------------------- score


def anomaly_score(
    negative_elbo: jax.Array, classifier_logit: jax.Array, r: float | jax.Array
) -> jax.Array:
    """TS = -ELBO + R H_B with H_B = -log(1 - sigmoid(logit)) = softplus(logit) (pure, no checks).

    Args:
      negative_elbo: (N,) per-event -ELBO (or the beta-weighted loss) of the background VAE.
      classifier_logit: (N,) logit of p(NR | x).
      r: weight R of the classifier term (scalar; vmap it for a scan).

    Returns:
      (N,) scores; larger means more anomalous.
    """
    return negative_elbo + r * jax.nn.softplus(classifier_logit)


def checked_anomaly_score(
    negative_elbo, classifier_logit, r: float | np.ndarray | jax.Array
) -> jax.Array:
    """`anomaly_score` for one R or a 1-D array of R values ((N,) or (n_R, N)), with input checks.

    Raises:
      ValueError: NaN/inf inputs, mismatched shapes, or R < 0.
    """
    nelbo = _check_scores(negative_elbo, "negative_elbo")
    logit = _check_scores(classifier_logit, "classifier_logit")
    if nelbo.shape != logit.shape:
        raise ValueError(
            f"negative_elbo {nelbo.shape} and classifier_logit {logit.shape} must match"
        )
    r_values = np.asarray(r, dtype=np.float64)
    if not np.all(np.isfinite(r_values)) or np.any(r_values < 0):
        raise ValueError(f"R must be finite and >= 0, got {r_values.tolist()}")
    nelbo, logit = jnp.asarray(nelbo, jnp.float32), jnp.asarray(logit, jnp.float32)
    if r_values.ndim == 0:
        return anomaly_score(nelbo, logit, float(r_values))
    return jax.vmap(anomaly_score, in_axes=(None, None, 0))(
        nelbo, logit, jnp.asarray(r_values, jnp.float32)
    )


# ----------------------------------------------------------------------------- densities


@struct.dataclass
class ScoreDensity:
    """A binned Gaussian KDE of scores, tabulated in log space on a uniform grid (a pytree).

    Attributes:
      grid_low: first grid point; grid_step: spacing; log_density: (GRID_SIZE,) log f on the
      grid; bandwidth: kernel width h; sample_min / sample_max: extreme sample values (the
      tails beyond the grid follow their kernels).
    """

    grid_low: jax.Array
    grid_step: jax.Array
    log_density: jax.Array
    bandwidth: jax.Array
    sample_min: jax.Array
    sample_max: jax.Array

    @property
    def support(self) -> tuple[float, float]:
        """(low, high) = extreme samples -/+ SUPPORT_MARGIN bandwidths (host floats)."""
        margin = SUPPORT_MARGIN * float(self.bandwidth)
        return float(self.sample_min) - margin, float(self.sample_max) + margin


def silverman_bandwidth(samples: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Silverman's rule h = 0.9 min(std, IQR / 1.34) n^(-1/5) (weighted: n = sum of weights).

    Falls back to the standard deviation when the IQR is zero, and to 1e-3 when both are.
    """
    if weights is None:
        weights = jnp.ones_like(samples)
    total = jnp.sum(weights)
    mean = jnp.sum(weights * samples) / total
    std = jnp.sqrt(jnp.sum(weights * (samples - mean) ** 2) / total)
    # Weighted quantiles from the sorted cumulative weights (masked events carry weight 0).
    order = jnp.argsort(samples)
    cumulative = jnp.cumsum(weights[order]) / total
    sorted_samples = samples[order]
    q25 = sorted_samples[jnp.searchsorted(cumulative, 0.25)]
    q75 = sorted_samples[jnp.minimum(jnp.searchsorted(cumulative, 0.75), samples.shape[0] - 1)]
    spread = jnp.minimum(std, (q75 - q25) / 1.34)
    spread = jnp.where(spread > 0, spread, std)
    spread = jnp.where(spread > 0, spread, 1e-3)
    return 0.9 * spread * total ** (-0.2)


@jax.jit
def fit_score_density(samples: jax.Array, weights: jax.Array | None = None) -> ScoreDensity:
    """Binned Gaussian KDE with Silverman's bandwidth (pure; see `score_density` for checks).

    Args:
      samples: (n,) scores.
      weights: (n,) non-negative event weights (0 masks an event); None for unit weights.

    Returns:
      `ScoreDensity` normalised to one over the real line.
    """
    samples = jnp.asarray(samples, jnp.float32)
    if weights is None:
        weights = jnp.ones_like(samples)
    bandwidth = silverman_bandwidth(samples, weights)
    big = jnp.finfo(jnp.float32).max
    sample_min = jnp.min(jnp.where(weights > 0, samples, big))
    sample_max = jnp.max(jnp.where(weights > 0, samples, -big))
    low = sample_min - GRID_MARGIN * bandwidth
    high = sample_max + GRID_MARGIN * bandwidth
    step = (high - low) / (GRID_SIZE - 1)
    # Bin the sample to the nearest grid point; the kernel sum then costs GRID_SIZE^2.
    index = jnp.clip(jnp.round((samples - low) / step), 0, GRID_SIZE - 1).astype(jnp.int32)
    counts = jnp.zeros(GRID_SIZE, jnp.float32).at[index].add(weights)
    grid = low + step * jnp.arange(GRID_SIZE, dtype=jnp.float32)
    log_counts = jnp.where(counts > 0, jnp.log(jnp.maximum(counts, 1e-30)), -jnp.inf)
    exponent = log_counts[None, :] - 0.5 * ((grid[:, None] - grid[None, :]) / bandwidth) ** 2
    log_norm = jnp.log(jnp.sum(weights)) + jnp.log(bandwidth) + 0.5 * math.log(2.0 * math.pi)
    log_density = jax.scipy.special.logsumexp(exponent, axis=1) - log_norm
    return ScoreDensity(
        grid_low=low,
        grid_step=step,
        log_density=log_density,
        bandwidth=bandwidth,
        sample_min=sample_min,
        sample_max=sample_max,
    )


def score_density(samples, name: str = "null sample") -> ScoreDensity:
    """`fit_score_density` with input checks (empty sample, NaN, a single distinct value).

    Raises:
      ValueError: naming `name` and what is wrong with it.
    """
    array = _check_scores(samples, name)
    if array.size < 2:
        raise ValueError(f"{name} has {array.size} event(s): need at least 2 for a density")
    return fit_score_density(jnp.asarray(array, jnp.float32))


def log_density_at(density: ScoreDensity, scores: jax.Array) -> jax.Array:
    """log f(scores): linear interpolation of the tabulated log density, Gaussian tails outside.

    Beyond the grid the density follows the kernel of the nearest extreme sample, matched to
    the tabulated value at the grid edge (so it is continuous and never zero).
    """
    grid_high = density.grid_low + density.grid_step * (GRID_SIZE - 1)
    grid = density.grid_low + density.grid_step * jnp.arange(GRID_SIZE, dtype=jnp.float32)
    inside = jnp.interp(scores, grid, density.log_density)
    h = density.bandwidth
    upper = density.log_density[-1] - 0.5 * (
        ((scores - density.sample_max) / h) ** 2 - ((grid_high - density.sample_max) / h) ** 2
    )
    lower = density.log_density[0] - 0.5 * (
        ((scores - density.sample_min) / h) ** 2
        - ((density.grid_low - density.sample_min) / h) ** 2
    )
    return jnp.where(scores > grid_high, upper, jnp.where(scores < density.grid_low, lower, inside))


def check_template_support(null: ScoreDensity, template: ScoreDensity) -> None:
    """Refuse a signal template whose support does not overlap the background data's.

    The likelihood ratio then rests entirely on extrapolated kernel tails of f_0, which no
    background event constrains (usually a template built with another R or score).

    Raises:
      ValueError: naming both supports.
    """
    null_low, null_high = null.support
    low, high = template.support
    if high < null_low or low > null_high:
        raise ValueError(
            f"signal template has no support where the data are: template support "
            f"[{low:.4g}, {high:.4g}], background (null) data support [{null_low:.4g}, "
            f"{null_high:.4g}]; was the template built with the same R and score?"
        )


# ----------------------------------------------------------------------------- statistics


def null_log_likelihood(
    scores: jax.Array, mask: jax.Array, null: ScoreDensity, expected_background: float | jax.Array
) -> jax.Array:
    """Extended log L(TS | H0) = -B + sum_i [log B + log f_0(TS_i)] over events with mask 1."""
    terms = jnp.log(expected_background) + log_density_at(null, scores)
    return -expected_background + jnp.sum(jnp.where(mask, terms, 0.0))


def goodness_of_fit_statistic(
    scores: jax.Array, mask: jax.Array, null: ScoreDensity, expected_background: float | jax.Array
) -> jax.Array:
    """t = -2 log L(TS | H0); large values mean the data fit H0 poorly."""
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
      (s_hat, q0), scalars.
    """
    log_ratio = (
        log_density_at(template, scores)
        - jnp.log(expected_background)
        - log_density_at(null, scores)
    )
    log_ratio = jnp.where(mask, log_ratio, -jnp.inf)
    n_events = jnp.sum(mask)

    def slope(s):
        # r / (1 + s r) = 1 / (1 / r + s), stable for huge and tiny r.
        return -1.0 + jnp.sum(jnp.where(mask, 1.0 / (jnp.exp(-log_ratio) + s), 0.0))

    def bisect(_, bounds):
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


def discovery_statistic(scores, mask, null, template, expected_background) -> jax.Array:
    """One-sided q0 of `fit_signal_count` (0 when the fit prefers no signal)."""
    return fit_signal_count(scores, mask, null, template, expected_background)[1]


# ----------------------------------------------------------------------------- toys


def max_toy_events(expected_background: float, largest_signal: float) -> int:
    """Padded toy size: mean + 8 sigma + 10 of the largest Poisson total (static)."""
    total = expected_background + largest_signal
    return int(math.ceil(total + 8.0 * math.sqrt(total) + 10.0))


def poisson_by_inversion(key: jax.Array, mean: jax.Array, max_count: int) -> jax.Array:
    """Poisson count by inverting the CDF tabulated on 0..max_count (max_count + 1 = beyond).

    Exact up to float32 rounding of the CDF, and much cheaper to compile than
    `jax.random.poisson` (whose rejection loop costs seconds in every program that holds it).
    """
    counts = jnp.arange(max_count + 1, dtype=jnp.float32)
    safe_mean = jnp.maximum(mean, 1e-30)
    log_pmf = counts * jnp.log(safe_mean) - safe_mean - jax.scipy.special.gammaln(counts + 1.0)
    pmf = jnp.where(mean > 0, jnp.exp(log_pmf), (counts == 0).astype(jnp.float32))
    cdf = jnp.cumsum(pmf)
    return jnp.sum(cdf < jax.random.uniform(key)).astype(jnp.int32)


def sample_toy(
    key: jax.Array,
    background_pool: jax.Array,
    signal_pool: jax.Array,
    expected_background: float | jax.Array,
    expected_signal: float | jax.Array,
    max_events: int,
    background_smoothing: float | jax.Array = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One pseudo-data set: N_B ~ Poisson(B) background and N_S ~ Poisson(s) signal scores.

    Scores are drawn with replacement from the pools; the set is padded to `max_events`. With
    `background_smoothing` = h > 0 every background draw gets h N(0, 1) added (smoothed
    bootstrap): with the null reference sample as pool and h its KDE bandwidth the background
    scores are exact draws from f_0, so the toys sample H0 itself.

    Returns:
      scores (max_events,), mask (max_events,) bool, overflow (bool: N_B + N_S > max_events, the
      excess dropped; `max_toy_events` makes this a > 8 sigma event).
    """
    count_key, background_key, signal_key, smoothing_key = jax.random.split(key, 4)
    background_count_key, signal_count_key = jax.random.split(count_key)
    n_background = poisson_by_inversion(background_count_key, expected_background, max_events)
    n_signal = poisson_by_inversion(signal_count_key, expected_signal, max_events)
    position = jnp.arange(max_events)
    background = background_pool[
        jax.random.randint(background_key, (max_events,), 0, background_pool.shape[0])
    ] + background_smoothing * jax.random.normal(smoothing_key, (max_events,))
    signal = signal_pool[jax.random.randint(signal_key, (max_events,), 0, signal_pool.shape[0])]
    scores = jnp.where(position < n_background, background, signal)
    mask = position < n_background + n_signal
    return scores, mask, n_background + n_signal > max_events


def toy_statistics(
    keys: jax.Array,
    background_pool: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
    expected_signal: float | jax.Array,
    max_events: int,
    background_smoothing: float | jax.Array = 0.0,
) -> dict[str, jax.Array]:
    """q0, s_hat and the goodness-of-fit t for one toy per key (vmapped over `keys`).

    Returns:
      dict of (n_toys,) arrays: q0, s_hat, gof, n_events, overflow.
    """

    def one(key):
        scores, mask, overflow = sample_toy(
            key,
            background_pool,
            signal_pool,
            expected_background,
            expected_signal,
            max_events,
            background_smoothing,
        )
        s_hat, q0 = fit_signal_count(scores, mask, null, template, expected_background)
        gof = goodness_of_fit_statistic(scores, mask, null, expected_background)
        return {
            "q0": q0,
            "s_hat": s_hat,
            "gof": gof,
            "n_events": jnp.sum(mask),
            "overflow": overflow,
        }

    return jax.vmap(one)(keys)


def toy_p_values(
    observed: jax.Array, null_statistics: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """p = P(stat >= observed | H0) from null toys, for each observed value.

    Without `key`: p = (1 + #{null >= obs}) / (1 + n) (conservative, never 0). With `key`: ties
    are randomised, p = (#{null > obs} + U (1 + #{null == obs})) / (1 + n), U ~ U(0, 1), which is
    exactly uniform under H0 when the observed value and the n toys are exchangeable (needed for
    q0, whose null distribution has an atom at 0).
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


def p_to_significance(p: jax.Array) -> jax.Array:
    """One-sided Z = Phi^-1(1 - p)."""
    return -ndtri(jnp.asarray(p))


def asymptotic_p_value(q0: jax.Array) -> jax.Array:
    """p = 1 - Phi(sqrt(q0)) (one-sided; Wilks with the boundary at s = 0)."""
    return jax.scipy.stats.norm.sf(jnp.sqrt(jnp.maximum(q0, 0.0)))


def median_sensitivity(
    key: jax.Array,
    background_pool: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float,
    signal_rates,
    n_null_toys: int,
    n_signal_toys: int,
    background_smoothing: float = 0.0,
) -> dict[str, jax.Array]:
    """Median discovery sensitivity versus expected signal count (toys, vmapped over rates).

    Background scores in every toy are drawn with replacement from `background_pool`, held-out
    background that was *not* used to build f_0: the toys then follow the background law itself
    (up to the finite pool), so the p-values are valid whatever the quality of f_0, which only
    affects the power. (Drawing from f_0's own sample would place toy events on the kernel
    centres and make real data look more anomalous than the toys.) Signal scores are drawn
    from `signal_pool`, held out from the template's sample.

    Args:
      key: PRNG key (split for null and signal toys).
      background_pool: (n,) held-out background scores, disjoint from f_0's sample.
      signal_pool: (m,) signal scores to inject.
      null, template: densities f_0 and f_s.
      expected_background: B.
      signal_rates: (K,) expected signal counts s.
      n_null_toys, n_signal_toys: toys per hypothesis (static).
      background_smoothing: h > 0 adds h N(0, 1) to every background draw (smoothed bootstrap).

    Returns:
      dict with (K,) median_q0, median_p (toys, (1 + #null >= q0_med) / (1 + n), so floored at
      1 / (1 + n_null_toys)), median_z (from median_p), median_z_asymptotic = sqrt(median_q0),
      median_s_hat; (n_null_toys,) null_q0 and null_gof; overflow (any toy truncated).
    """
    signal_rates = jnp.asarray(signal_rates, jnp.float32)
    max_events = max_toy_events(float(expected_background), float(jnp.max(signal_rates)))
    return _median_sensitivity(
        key,
        jnp.asarray(background_pool, jnp.float32),
        jnp.asarray(signal_pool, jnp.float32),
        null,
        template,
        jnp.float32(expected_background),
        signal_rates,
        n_null_toys,
        n_signal_toys,
        max_events,
        jnp.float32(background_smoothing),
    )


@functools.partial(jax.jit, static_argnums=(7, 8, 9))
def _median_sensitivity(
    key,
    background_pool,
    signal_pool,
    null,
    template,
    expected_background,
    signal_rates,
    n_null_toys,
    n_signal_toys,
    max_events,
    background_smoothing,
):
    # One toy program of n_signal_toys toys for every hypothesis, to compile the toy code
    # once: the null toys are the first `null_blocks` blocks (rate 0).
    n_toys = n_signal_toys
    null_blocks = -(-n_null_toys // n_toys)
    rates = jnp.concatenate([jnp.zeros(null_blocks, jnp.float32), signal_rates])
    rate_keys = jax.random.split(key, rates.shape[0])

    def at_rate(args):
        rate, rate_key = args
        return toy_statistics(
            jax.random.split(rate_key, n_toys),
            background_pool,
            signal_pool,
            null,
            template,
            expected_background,
            rate,
            max_events,
            background_smoothing,
        )

    stats = jax.lax.map(at_rate, (rates, rate_keys))
    null_stats = jax.tree.map(lambda a: a[:null_blocks].reshape(-1)[:n_null_toys], stats)
    signal_stats = jax.tree.map(lambda a: a[null_blocks:], stats)
    median_q0 = jnp.median(signal_stats["q0"], axis=1)
    median_s_hat = jnp.median(signal_stats["s_hat"], axis=1)
    overflow = jnp.any(signal_stats["overflow"], axis=1)
    median_p = toy_p_values(median_q0, null_stats["q0"])
    return {
        "signal_rates": signal_rates,
        "median_q0": median_q0,
        "median_s_hat": median_s_hat,
        "median_p": median_p,
        "median_z": p_to_significance(median_p),
        "median_z_asymptotic": jnp.sqrt(median_q0),
        "null_q0": null_stats["q0"],
        "null_gof": null_stats["gof"],
        "overflow": jnp.any(overflow) | jnp.any(null_stats["overflow"]),
    }


def scan_score_weight(
    key: jax.Array,
    r_values,
    null_reference: tuple[jax.Array, jax.Array],
    background_pool: tuple[jax.Array, jax.Array],
    signal_templates: tuple[jax.Array, jax.Array],
    signal_pools: tuple[jax.Array, jax.Array],
    expected_background: float,
    expected_signal: float,
    n_null_toys: int,
    n_signal_toys: int,
) -> dict[str, jax.Array]:
    """Median p-value of rejecting H0 versus R for several signal benchmarks (slides' Fig. 8).

    For every R (`lax.map` over R, toys vmapped): scores of all samples, f_0 from
    `null_reference`, one template per benchmark, null toys and signal toys (s =
    `expected_signal`) drawn from the pools as in `median_sensitivity`, the median q0
    of the signal toys and its p-value. Samples are (negative_elbo, classifier_logit) pairs of
    equal-length arrays; the benchmark samples carry a leading benchmark axis M.

    Returns:
      dict with r_values and (n_R, M) arrays median_q0, median_p (toys, floored at
      1 / (1 + n_null_toys)), median_p_asymptotic = 1 - Phi(sqrt(median q0)); overflow (bool).
    """
    r_values = np.asarray(r_values, dtype=np.float64)
    if r_values.ndim != 1 or np.any(r_values < 0) or not np.all(np.isfinite(r_values)):
        raise ValueError(f"R values must be a 1-D array of finite numbers >= 0, got {r_values}")
    max_events = max_toy_events(float(expected_background), float(expected_signal))
    as_float = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    return _scan_score_weight(
        key,
        jnp.asarray(r_values, jnp.float32),
        as_float(null_reference),
        as_float(background_pool),
        as_float(signal_templates),
        as_float(signal_pools),
        jnp.float32(expected_background),
        jnp.float32(expected_signal),
        n_null_toys,
        n_signal_toys,
        max_events,
    )


@functools.partial(jax.jit, static_argnums=(8, 9, 10))
def _scan_score_weight(
    key,
    r_values,
    null_reference,
    background_pool,
    signal_templates,
    signal_pools,
    expected_background,
    expected_signal,
    n_null_toys,
    n_signal_toys,
    max_events,
):
    n_benchmarks = signal_templates[0].shape[0]
    benchmark_keys = jax.random.split(key, n_benchmarks)

    def at_weight(r):
        null = fit_score_density(anomaly_score(*null_reference, r))
        background = anomaly_score(*background_pool, r)

        def benchmark(args):
            template_nelbo, template_logit, pool_nelbo, pool_logit, benchmark_key = args
            template = fit_score_density(anomaly_score(template_nelbo, template_logit, r))
            signal = anomaly_score(pool_nelbo, pool_logit, r)
            n_toys = n_signal_toys
            null_blocks = -(-n_null_toys // n_toys)

            def toys(args):
                rate, toy_key = args
                return toy_statistics(
                    jax.random.split(toy_key, n_toys),
                    background,
                    signal,
                    null,
                    template,
                    expected_background,
                    rate,
                    max_events,
                )

            # Null (rate 0) and signal toys through one program, to compile the toy code once.
            rates = jnp.concatenate(
                [jnp.zeros(null_blocks, jnp.float32), jnp.reshape(expected_signal, (1,))]
            )
            stats = jax.lax.map(toys, (rates, jax.random.split(benchmark_key, null_blocks + 1)))
            null_stats = jax.tree.map(lambda a: a[:-1].reshape(-1)[:n_null_toys], stats)
            signal_stats = jax.tree.map(lambda a: a[-1], stats)
            median_q0 = jnp.median(signal_stats["q0"])
            overflow = jnp.any(null_stats["overflow"]) | jnp.any(signal_stats["overflow"])
            return median_q0, toy_p_values(median_q0, null_stats["q0"]), overflow

        return jax.lax.map(benchmark, (*signal_templates, *signal_pools, benchmark_keys))

    median_q0, median_p, overflow = jax.lax.map(at_weight, r_values)
    return {
        "r_values": r_values,
        "median_q0": median_q0,
        "median_p": median_p,
        "median_p_asymptotic": asymptotic_p_value(median_q0),
        "overflow": jnp.any(overflow),
    }
