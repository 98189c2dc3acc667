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
# Probability in each exponential tail of a score density (see `fit_score_density`).
TAIL_FRACTION = 0.01
MIN_TAIL_EVENTS = 5
MAX_TAIL_SHAPE = 0.9
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
    """A score density: binned Gaussian KDE core, optional exponential tails (a pytree).

    Attributes:
      grid_low: first grid point; grid_step: spacing; log_density: (GRID_SIZE,) log f of the
      KDE on the grid; bandwidth: kernel width h; sample_min / sample_max: extreme sample values
      (without exponential tails the density beyond the grid follows their kernels);
      tail_low / tail_high: where the exponential tails take over (-inf / +inf: none);
      scale_low / scale_high, shape_low / shape_high: generalised-Pareto scale and shape xi of
      each tail (xi = 0: exponential); log_mass_low / log_mass_high: log of the
      probability in each tail; log_core_norm: log of the factor that makes the KDE core on
      [tail_low, tail_high] carry the remaining probability.
    """

    grid_low: jax.Array
    grid_step: jax.Array
    log_density: jax.Array
    bandwidth: jax.Array
    sample_min: jax.Array
    sample_max: jax.Array
    tail_low: jax.Array
    tail_high: jax.Array
    scale_low: jax.Array
    scale_high: jax.Array
    shape_low: jax.Array
    shape_high: jax.Array
    log_mass_low: jax.Array
    log_mass_high: jax.Array
    log_core_norm: jax.Array

    @property
    def support(self) -> tuple[float, float]:
        """(low, high) = extreme samples -/+ SUPPORT_MARGIN bandwidths (host floats)."""
        margin = SUPPORT_MARGIN * float(self.bandwidth)
        return float(self.sample_min) - margin, float(self.sample_max) + margin


def _weighted_quantile(samples: jax.Array, weights: jax.Array, q: float) -> jax.Array:
    order = jnp.argsort(samples)
    cumulative = jnp.cumsum(weights[order]) / jnp.sum(weights)
    index = jnp.minimum(jnp.searchsorted(cumulative, q), samples.shape[0] - 1)
    return samples[order][index]


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
    q25 = _weighted_quantile(samples, weights, 0.25)
    q75 = _weighted_quantile(samples, weights, 0.75)
    spread = jnp.minimum(std, (q75 - q25) / 1.34)
    spread = jnp.where(spread > 0, spread, std)
    spread = jnp.where(spread > 0, spread, 1e-3)
    return 0.9 * spread * total ** (-0.2)


@functools.partial(jax.jit, static_argnames=("tail_fraction",))
def fit_score_density(
    samples: jax.Array, weights: jax.Array | None = None, tail_fraction: float = TAIL_FRACTION
) -> ScoreDensity:
    """Binned Gaussian KDE with Silverman's bandwidth and exponential tails (pure; no checks).

    The KDE describes the core; beyond the `tail_fraction` and 1 - `tail_fraction` quantiles
    u_lo, u_hi of the sample each tail is a generalised Pareto law fitted to the exceedances
    (peaks over threshold), f = p_hi g(TS - u_hi; scale, xi) above u_hi with p_hi the share of
    the sample above u_hi, and the mirror image below u_lo; xi = 0 is an exponential tail,
    xi > 0 a power law (`_pareto_tail`). This keeps the density honest where the sample is
    sparse: a Gaussian KDE tail falls like the outermost kernel, far faster than the skewed,
    heavy-tailed scores of a VAE or a classifier, so events just beyond the sample would look
    enormously anomalous, and fresh data, which reach further than any finite toy bank, would
    get too small p-values. `tail_fraction` = 0 gives the plain KDE (Gaussian tails). Weights
    act as a mask in the tails.

    Args:
      samples: (n,) scores.
      weights: (n,) non-negative event weights (0 masks an event); None for unit weights.
      tail_fraction: probability in each exponential tail (static; 0 for none).

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

    zero = jnp.float32(0.0)
    if tail_fraction > 0:
        valid = weights > 0
        n_valid = jnp.sum(valid)
        tail_low = _weighted_quantile(samples, weights, tail_fraction)
        tail_high = _weighted_quantile(samples, weights, 1.0 - tail_fraction)
        # Upper tail: exceedances are the last n_high of the ascending valid samples.
        ascending = jnp.sort(jnp.where(valid, samples, -big))
        n_high = jnp.sum(valid & (samples > tail_high))
        rank_high = jnp.arange(samples.shape[0]) - (samples.shape[0] - n_high)
        scale_high, shape_high = _pareto_tail(ascending - tail_high, rank_high, n_high)
        # Lower tail: the first n_low of the ascending samples, ranked by distance below.
        ascending_low = jnp.sort(jnp.where(valid, samples, big))
        n_low = jnp.sum(valid & (samples < tail_low))
        rank_low = n_low - 1 - jnp.arange(samples.shape[0])
        scale_low, shape_low = _pareto_tail(tail_low - ascending_low, rank_low, n_low)
        mass_high, mass_low = n_high / n_valid, n_low / n_valid
        # KDE probability on [tail_low, tail_high] (trapezoid on the grid), rescaled to 1 - tails.
        inside = (grid >= tail_low) & (grid <= tail_high)
        core_mass = jnp.sum(jnp.where(inside, jnp.exp(log_density), 0.0)) * step
        log_core_norm = jnp.log(1.0 - mass_low - mass_high) - jnp.log(core_mass)
        log_mass_low, log_mass_high = jnp.log(mass_low), jnp.log(mass_high)
    else:
        tail_low, tail_high = jnp.float32(-jnp.inf), jnp.float32(jnp.inf)
        scale_low = scale_high = jnp.float32(1.0)
        shape_low = shape_high = zero
        log_mass_low = log_mass_high = log_core_norm = zero
    return ScoreDensity(
        grid_low=low,
        grid_step=step,
        log_density=log_density,
        bandwidth=bandwidth,
        sample_min=sample_min,
        sample_max=sample_max,
        tail_low=tail_low,
        tail_high=tail_high,
        scale_low=scale_low,
        scale_high=scale_high,
        shape_low=shape_low,
        shape_high=shape_high,
        log_mass_low=log_mass_low,
        log_mass_high=log_mass_high,
        log_core_norm=log_core_norm,
    )


def _pareto_tail(excess: jax.Array, rank: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Generalised-Pareto (scale, shape xi) of the exceedances by probability-weighted moments.

    Hosking and Wallis (1987): with a0 the mean exceedance and a1 = mean((1 - p_j) y_(j)),
    p_j = (j + 0.65) / n for the ascending exceedances y_(j) (rank j = 0..n-1; other entries
    of `excess` carry ranks outside that range), xi = 2 - a0 / (a0 - 2 a1) and scale = 2 a0 a1 /
    (a0 - 2 a1). xi is clipped to [0, MAX_TAIL_SHAPE]: a bounded tail (xi < 0) would give zero
    density beyond its end point, which new data can reach.
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


def _pareto_log_density(excess: jax.Array, scale: jax.Array, shape: jax.Array) -> jax.Array:
    """log of the generalised-Pareto density at excess >= 0 (exponential for xi -> 0)."""
    small = shape < 1e-4
    safe_shape = jnp.where(small, 1.0, shape)
    pareto = -(1.0 + 1.0 / safe_shape) * jnp.log1p(safe_shape * excess / scale)
    return -jnp.log(scale) + jnp.where(small, -excess / scale, pareto)


def score_density(
    samples, name: str = "null sample", tail_fraction: float = TAIL_FRACTION
) -> ScoreDensity:
    """`fit_score_density` with input checks (empty sample, NaN, a single distinct value).

    Each exponential tail holds at least `MIN_TAIL_EVENTS` sample events (the fraction is
    raised for small samples, at most to 0.25).

    Raises:
      ValueError: naming `name` and what is wrong with it.
    """
    array = _check_scores(samples, name)
    if array.size < 2:
        raise ValueError(f"{name} has {array.size} event(s): need at least 2 for a density")
    if not 0.0 <= tail_fraction < 0.5:
        raise ValueError(f"tail_fraction must lie in [0, 0.5), got {tail_fraction}")
    if tail_fraction > 0:
        # At least MIN_TAIL_EVENTS events per tail, so a small sample still fits its slopes.
        tail_fraction = min(max(tail_fraction, MIN_TAIL_EVENTS / array.size), 0.25)
    return fit_score_density(jnp.asarray(array, jnp.float32), tail_fraction=tail_fraction)


def log_density_at(density: ScoreDensity, scores: jax.Array) -> jax.Array:
    """log f(scores): the KDE core (linear interpolation of the tabulated log density, Gaussian
    tails beyond the grid, matched to the grid edge) and exponential tails where they exist.
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
    core = jnp.where(scores > grid_high, upper, jnp.where(scores < density.grid_low, lower, inside))
    core = core + density.log_core_norm
    # Finite stand-ins for infinite thresholds keep the unused branches free of NaN.
    tail_high = jnp.where(jnp.isfinite(density.tail_high), density.tail_high, 0.0)
    tail_low = jnp.where(jnp.isfinite(density.tail_low), density.tail_low, 0.0)
    high_tail = density.log_mass_high + _pareto_log_density(
        jnp.maximum(scores - tail_high, 0.0), density.scale_high, density.shape_high
    )
    low_tail = density.log_mass_low + _pareto_log_density(
        jnp.maximum(tail_low - scores, 0.0), density.scale_low, density.shape_low
    )
    return jnp.where(
        scores > density.tail_high,
        high_tail,
        jnp.where(scores < density.tail_low, low_tail, core),
    )


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


def sensitivity_toys(
    key: jax.Array,
    background_bank: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float,
    signal_rates,
    n_null_toys: int,
    n_signal_toys: int,
) -> dict[str, jax.Array]:
    """Null toys and signal toys at several expected signal counts (vmapped over toys).

    Background scores in every toy are drawn with replacement from `background_bank`: scores of
    background events simulated afresh and *not* used to build f_0, many times more than one
    data set holds (a bank of a few data sets misses the rare tail that fresh data show, and the
    p-values then come out too small; `null_calibration` measures this). Signal scores are
    drawn from `signal_pool`, held out from the template's sample.

    Args:
      key: PRNG key.
      background_bank: (n,) background scores, disjoint from f_0's sample.
      signal_pool: (m,) signal scores to inject.
      null, template: densities f_0 and f_s.
      expected_background: B.
      signal_rates: (K,) expected signal counts s.
      n_null_toys, n_signal_toys: toys per hypothesis (static).

    Returns:
      dict with (n_null_toys,) null_gof and null_q0, (K, n_signal_toys) signal_gof, signal_q0
      and signal_s_hat, (K,) signal_rates, overflow (bool: some toy was truncated).
    """
    signal_rates = jnp.asarray(signal_rates, jnp.float32)
    max_events = max_toy_events(float(expected_background), float(jnp.max(signal_rates)))
    return _sensitivity_toys(
        key,
        jnp.asarray(background_bank, jnp.float32),
        jnp.asarray(signal_pool, jnp.float32),
        null,
        template,
        jnp.float32(expected_background),
        signal_rates,
        n_null_toys,
        n_signal_toys,
        max_events,
    )


@functools.partial(jax.jit, static_argnums=(7, 8, 9))
def _sensitivity_toys(
    key,
    background_bank,
    signal_pool,
    null,
    template,
    expected_background,
    signal_rates,
    n_null_toys,
    n_signal_toys,
    max_events,
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
            background_bank,
            signal_pool,
            null,
            template,
            expected_background,
            rate,
            max_events,
        )

    stats = jax.lax.map(at_rate, (rates, rate_keys))
    null_stats = jax.tree.map(lambda a: a[:null_blocks].reshape(-1)[:n_null_toys], stats)
    signal_stats = jax.tree.map(lambda a: a[null_blocks:], stats)
    return {
        "signal_rates": signal_rates,
        "null_gof": null_stats["gof"],
        "null_q0": null_stats["q0"],
        "signal_gof": signal_stats["gof"],
        "signal_q0": signal_stats["q0"],
        "signal_s_hat": signal_stats["s_hat"],
        "overflow": jnp.any(signal_stats["overflow"]) | jnp.any(null_stats["overflow"]),
    }


def median_p_value(null_statistics, signal_statistics) -> dict[str, np.ndarray]:
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
    low_rank = max(int(math.floor(0.5 * m - half_width)), 0)
    high_rank = min(int(math.ceil(0.5 * m + half_width)), m - 1)
    median = np.median(p, axis=-1)
    floor = 1.0 / (1.0 + n)
    return {
        "median_p": median,
        "p_low": p[..., low_rank],
        "p_high": p[..., high_rank],
        "at_cap": median <= floor * (1.0 + 1e-9),
        "median_z": np.maximum(-np.asarray(ndtri(np.clip(median, 1e-300, 1.0))), 0.0),
        "floor": floor,
    }


def format_p(p: float, at_cap: bool, floor: float) -> str:
    """A p-value for tables: "< 1/(1 + n)" written out when it sits at the toy floor."""
    return f"< {floor:.1g}" if at_cap else f"{p:.2g}"


def median_sensitivity(
    key: jax.Array,
    background_bank: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float,
    signal_rates,
    n_null_toys: int,
    n_signal_toys: int,
) -> dict:
    """Median sensitivity versus expected signal count, for both statistics.

    "gof" is the seed's model-independent test (t = -2 log L(TS | H0), no signal template);
    "q0" the model-dependent likelihood ratio against `template`. Toys as in `sensitivity_toys`.

    Returns:
      dict with signal_rates, gof and q0 (each the `median_p_value` summary over rates),
      median_s_hat (K,), null_gof, null_q0 and overflow.
    """
    toys = sensitivity_toys(
        key,
        background_bank,
        signal_pool,
        null,
        template,
        expected_background,
        signal_rates,
        n_null_toys,
        n_signal_toys,
    )
    return {
        "signal_rates": np.asarray(toys["signal_rates"]),
        "gof": median_p_value(toys["null_gof"], toys["signal_gof"]),
        "q0": median_p_value(toys["null_q0"], toys["signal_q0"]),
        "median_s_hat": np.median(np.asarray(toys["signal_s_hat"]), axis=-1),
        "null_gof": np.asarray(toys["null_gof"]),
        "null_q0": np.asarray(toys["null_q0"]),
        "overflow": bool(toys["overflow"]),
    }


def scan_score_weight(
    key: jax.Array,
    r_values,
    null_reference: tuple[jax.Array, jax.Array],
    background_bank: tuple[jax.Array, jax.Array],
    signal_templates: tuple[jax.Array, jax.Array],
    signal_pools: tuple[jax.Array, jax.Array],
    expected_background: float,
    expected_signal,
    n_null_toys: int,
    n_signal_toys: int,
) -> dict:
    """Median p-value of rejecting H0 versus R for several signal benchmarks (slides' Fig. 8).

    For every R (`lax.map` over R, toys vmapped): scores of all samples, f_0 from
    `null_reference`, one template per benchmark, null toys and signal toys (s =
    `expected_signal`, one value or one per benchmark) drawn as in `sensitivity_toys`.
    Samples are (negative_elbo, classifier_logit) pairs of equal-length arrays; the benchmark
    samples carry a leading benchmark axis M.

    Returns:
      dict with r_values; gof and q0, each the `median_p_value` summary of (n_R, M) arrays;
      best_r_gof / best_r_q0 (M,): the R of the smallest median p (first of ties);
      overflow (bool).
    """
    r_values = np.asarray(r_values, dtype=np.float64)
    if r_values.ndim != 1 or np.any(r_values < 0) or not np.all(np.isfinite(r_values)):
        raise ValueError(f"R values must be a 1-D array of finite numbers >= 0, got {r_values}")
    n_benchmarks = np.asarray(signal_templates[0]).shape[0]
    rates = np.broadcast_to(np.asarray(expected_signal, np.float64), (n_benchmarks,))
    max_events = max_toy_events(float(expected_background), float(np.max(rates)))
    as_float = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    toys = _scan_score_weight(
        key,
        jnp.asarray(r_values, jnp.float32),
        as_float(null_reference),
        as_float(background_bank),
        as_float(signal_templates),
        as_float(signal_pools),
        jnp.float32(expected_background),
        jnp.asarray(rates, jnp.float32),
        n_null_toys,
        n_signal_toys,
        max_events,
    )
    result = {"r_values": r_values, "signal_rates": rates, "overflow": bool(toys["overflow"])}
    for name in ("gof", "q0"):
        null, signal = np.asarray(toys[f"null_{name}"]), np.asarray(toys[f"signal_{name}"])
        per = [
            [median_p_value(null[i, j], signal[i, j]) for j in range(n_benchmarks)]
            for i in range(r_values.size)
        ]
        summary = {
            k: np.array([[cell[k] for cell in row] for row in per])
            for k in ("median_p", "p_low", "p_high", "at_cap", "median_z")
        }
        summary["floor"] = per[0][0]["floor"]
        result[name] = summary
        result[f"best_r_{name}"] = r_values[np.argmin(summary["median_p"], axis=0)]
    return result


@functools.partial(jax.jit, static_argnums=(8, 9, 10))
def _scan_score_weight(
    key,
    r_values,
    null_reference,
    background_bank,
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
        background = anomaly_score(*background_bank, r)

        def benchmark(args):
            template_nelbo, template_logit, pool_nelbo, pool_logit, rate, benchmark_key = args
            template = fit_score_density(anomaly_score(template_nelbo, template_logit, r))
            signal = anomaly_score(pool_nelbo, pool_logit, r)
            n_toys = n_signal_toys
            null_blocks = -(-n_null_toys // n_toys)

            def toys(args):
                toy_rate, toy_key = args
                return toy_statistics(
                    jax.random.split(toy_key, n_toys),
                    background,
                    signal,
                    null,
                    template,
                    expected_background,
                    toy_rate,
                    max_events,
                )

            # Null (rate 0) and signal toys through one program, to compile the toy code once.
            rates = jnp.concatenate([jnp.zeros(null_blocks, jnp.float32), rate[None]])
            stats = jax.lax.map(toys, (rates, jax.random.split(benchmark_key, null_blocks + 1)))
            null_stats = jax.tree.map(lambda a: a[:-1].reshape(-1)[:n_null_toys], stats)
            signal_stats = jax.tree.map(lambda a: a[-1], stats)
            overflow = jnp.any(null_stats["overflow"]) | jnp.any(signal_stats["overflow"])
            return {
                "null_gof": null_stats["gof"],
                "null_q0": null_stats["q0"],
                "signal_gof": signal_stats["gof"],
                "signal_q0": signal_stats["q0"],
                "overflow": overflow,
            }

        return jax.lax.map(
            benchmark, (*signal_templates, *signal_pools, expected_signal, benchmark_keys)
        )

    out = jax.lax.map(at_weight, r_values)
    out["overflow"] = jnp.any(out["overflow"])
    return out


# ----------------------------------------------------------------------------- null check


@jax.jit
def observed_statistics(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
) -> dict[str, jax.Array]:
    """gof and q0 of data sets (D, n) padded with a mask, as the toys compute them."""

    def one(s, m):
        q0 = fit_signal_count(s, m, null, template, expected_background)[1]
        return {"gof": goodness_of_fit_statistic(s, m, null, expected_background), "q0": q0}

    return jax.vmap(one)(scores, mask)


def uniformity_summary(p_values) -> dict[str, float]:
    """How uniform null p-values are: KS p-value, fractions below 0.05 and 0.01 with errors.

    The errors are binomial standard errors at the nominal rate, sqrt(a (1 - a) / n), so
    `(fraction - a) / error` is the pull of each fraction.
    """
    from scipy import stats

    p = np.asarray(p_values, np.float64)
    n = p.size
    summary = {"n": float(n), "ks_pvalue": float(stats.kstest(p, "uniform").pvalue)}
    for alpha, tag in ((0.05, "05"), (0.01, "01")):
        summary[f"fraction_below_{tag}"] = float(np.mean(p < alpha))
        summary[f"error_{tag}"] = math.sqrt(alpha * (1.0 - alpha) / n)
    return summary
