"""Densities of the anomaly score: a binned Gaussian KDE core with generalised-Pareto tails.

The null density f_0 of TS (and a signal template f_s) for the anomaly-aware test of
Scaffidi and Trotta (DARWIN, arXiv:2410.00755):

* core: a Gaussian kernel density estimate, bandwidth by Silverman's rule h = 0.9 min(std,
  IQR / 1.34) n^(-1/5), evaluated by binning the sample on a uniform grid of `GRID_SIZE` points
  spanning the core [tail_low - 6h, tail_high + 6h] (with tails; [min - 6h, max + 6h] without)
  and summing the kernels in log space (so far tails stay finite); between grid points log f
  is linearly interpolated, beyond the grid it continues as
  the Gaussian tail of the outermost kernel;
* tails: beyond the `tail_fraction` and 1 - `tail_fraction` quantiles a generalised Pareto law
  fitted to the exceedances (`jaxws.stats.anomaly.tails`), carrying the sample's share of
  events there; the core is rescaled so that the whole density integrates to one.

* coordinate: the binned KDE resolves its kernels only when the grid step is a fraction of
  the bandwidth. A score with two scales (TS = -ELBO + R H_B at large R: 99% of the
  background within a few units of the -ELBO core, the top percent at R times the classifier's
  cross-entropy, up to 1e6) puts the whole core into one grid step. When the step would exceed
  `MAX_STEP_PER_BANDWIDTH` bandwidths the density is estimated in u = asinh((TS - c) / w)
  (c the median, w the robust spread IQR / 1.349 of the sample), linear near the core and
  logarithmic far out, and returned as the density of TS with the Jacobian:
  log f(TS) = log f_u(u(TS)) - log sqrt(w^2 + (TS - c)^2). Otherwise (the usual case) u = TS.

Densities are pytrees (`ScoreDensity`), so they can be built and used inside jit and vmap.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import struct
from numpy.typing import ArrayLike

from jaxws.stats.anomaly.score import check_scores
from jaxws.stats.anomaly.tails import fit_pareto_tail, pareto_log_density

GRID_SIZE = 2048
# Probability in each generalised-Pareto tail of a score density (see `fit_score_density`).
TAIL_FRACTION = 0.01
MIN_TAIL_EVENTS = 5
# Kernel half-width (in bandwidths) used for the grid span and the support of a template.
GRID_MARGIN = 6.0
SUPPORT_MARGIN = 5.0
# Largest grid step, in bandwidths, of a KDE estimated in the score itself (else asinh).
MAX_STEP_PER_BANDWIDTH = 0.25


@struct.dataclass
class ScoreDensity:
    """A score density: binned Gaussian KDE core, optional generalised-Pareto tails (a pytree).

    Every attribute but `center` and `width` is in the density's coordinate u: u = TS when
    `width` is 0, else u = asinh((TS - center) / width) (module docstring).

    Attributes:
      grid_low: first grid point.
      grid_step: grid spacing.
      log_density: (GRID_SIZE,) log f of the KDE on the grid.
      bandwidth: kernel width h.
      sample_min: smallest sample value (without tails the density below the grid follows its
        kernel).
      sample_max: largest sample value (likewise above the grid).
      tail_low: where the lower tail takes over (-inf: none).
      tail_high: where the upper tail takes over (+inf: none).
      scale_low: generalised-Pareto scale of the lower tail.
      scale_high: generalised-Pareto scale of the upper tail.
      shape_low: shape xi of the lower tail (0: exponential).
      shape_high: shape xi of the upper tail.
      log_mass_low: log of the probability in the lower tail.
      log_mass_high: log of the probability in the upper tail.
      log_core_norm: log of the factor that makes the KDE core on [tail_low, tail_high] carry
        the remaining probability.
      center: c of the asinh coordinate (0 when linear).
      width: w of the asinh coordinate (0: the density is estimated in TS itself).
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
    center: jax.Array
    width: jax.Array

    @property
    def support(self) -> tuple[float, float]:
        """(low, high) = extreme samples -/+ SUPPORT_MARGIN bandwidths, in TS (host floats)."""
        margin = SUPPORT_MARGIN * float(self.bandwidth)
        low, high = float(self.sample_min) - margin, float(self.sample_max) + margin
        if float(self.width) > 0:
            low, high = (float(self.center) + float(self.width) * math.sinh(u) for u in (low, high))
        return low, high

    @property
    def in_asinh(self) -> bool:
        """Whether the density was estimated in the asinh coordinate (host bool)."""
        return float(self.width) > 0


def coordinate(center: jax.Array, width: jax.Array, scores: jax.Array) -> tuple[jax.Array, ...]:
    """(u, log du/dTS) of `scores`: u = TS when `width` is 0, else asinh((TS - c) / w)."""
    linear = width <= 0
    safe = jnp.where(linear, 1.0, width)
    offset = scores - center
    u = jnp.where(linear, scores, jnp.arcsinh(offset / safe))
    log_jacobian = jnp.where(linear, 0.0, -0.5 * jnp.log(safe**2 + offset**2))
    return u, log_jacobian


def _weighted_quantile(samples: jax.Array, weights: jax.Array, q: float) -> jax.Array:
    order = jnp.argsort(samples)
    cumulative = jnp.cumsum(weights[order]) / jnp.sum(weights)
    index = jnp.minimum(jnp.searchsorted(cumulative, q), samples.shape[0] - 1)
    return samples[order][index]


def silverman_bandwidth(samples: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Silverman's rule h = 0.9 min(std, IQR / 1.34) n^(-1/5) (weighted: n = sum of weights).

    Falls back to the standard deviation when the IQR is zero, and to 1e-3 when both are.

    Args:
      samples: (n,) values.
      weights: (n,) non-negative weights (0 masks an event); None for unit weights.

    Returns:
      The bandwidth h (scalar).
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


def _binned_kde(
    samples: jax.Array,
    weights: jax.Array,
    bandwidth: jax.Array,
    span: tuple[jax.Array, jax.Array] | None = None,
) -> dict:
    """The Gaussian KDE's log density on a grid of GRID_SIZE points (the sample binned to it).

    The grid spans `span` (low, high) widened by GRID_MARGIN bandwidths on each side, or the
    whole sample when `span` is None. Samples outside the grid are left out of the binned sum:
    their kernels reach the span only beyond GRID_MARGIN bandwidths (a factor < 1.6e-8). With
    tails the span is the core [tail_low, tail_high], so one far outlier (a large R H_B) cannot
    stretch the grid and coarsen the core's resolution.
    """
    big = jnp.finfo(jnp.float32).max
    sample_min = jnp.min(jnp.where(weights > 0, samples, big))
    sample_max = jnp.max(jnp.where(weights > 0, samples, -big))
    span_low, span_high = (sample_min, sample_max) if span is None else span
    low = span_low - GRID_MARGIN * bandwidth
    high = span_high + GRID_MARGIN * bandwidth
    step = (high - low) / (GRID_SIZE - 1)
    # Bin the sample to the nearest grid point; the kernel sum then costs GRID_SIZE^2.
    position = jnp.round((samples - low) / step)
    on_grid = (position >= 0) & (position <= GRID_SIZE - 1)
    index = jnp.clip(position, 0, GRID_SIZE - 1).astype(jnp.int32)
    counts = jnp.zeros(GRID_SIZE, jnp.float32).at[index].add(jnp.where(on_grid, weights, 0.0))
    grid = low + step * jnp.arange(GRID_SIZE, dtype=jnp.float32)
    log_counts = jnp.where(counts > 0, jnp.log(jnp.maximum(counts, 1e-30)), -jnp.inf)
    exponent = log_counts[None, :] - 0.5 * ((grid[:, None] - grid[None, :]) / bandwidth) ** 2
    log_norm = jnp.log(jnp.sum(weights)) + jnp.log(bandwidth) + 0.5 * math.log(2.0 * math.pi)
    log_density = jax.scipy.special.logsumexp(exponent, axis=1) - log_norm
    return {
        "grid": grid,
        "grid_low": low,
        "grid_step": step,
        "log_density": log_density,
        "sample_min": sample_min,
        "sample_max": sample_max,
    }


def _pareto_tails(samples: jax.Array, weights: jax.Array, kde: dict, tail_fraction: float) -> dict:
    """Both generalised-Pareto tails beyond the tail quantiles, and the core's normalisation."""
    big = jnp.finfo(jnp.float32).max
    valid = weights > 0
    n_valid = jnp.sum(valid)
    tail_low = _weighted_quantile(samples, weights, tail_fraction)
    tail_high = _weighted_quantile(samples, weights, 1.0 - tail_fraction)
    # Upper tail: exceedances are the last n_high of the ascending valid samples.
    ascending = jnp.sort(jnp.where(valid, samples, -big))
    n_high = jnp.sum(valid & (samples > tail_high))
    rank_high = jnp.arange(samples.shape[0]) - (samples.shape[0] - n_high)
    scale_high, shape_high = fit_pareto_tail(ascending - tail_high, rank_high, n_high)
    # Lower tail: the first n_low of the ascending samples, ranked by distance below.
    ascending_low = jnp.sort(jnp.where(valid, samples, big))
    n_low = jnp.sum(valid & (samples < tail_low))
    rank_low = n_low - 1 - jnp.arange(samples.shape[0])
    scale_low, shape_low = fit_pareto_tail(tail_low - ascending_low, rank_low, n_low)
    mass_high, mass_low = n_high / n_valid, n_low / n_valid
    # KDE probability on [tail_low, tail_high] (sum on the grid), rescaled to 1 - tails.
    grid = kde["grid"]
    inside = (grid >= tail_low) & (grid <= tail_high)
    core_mass = jnp.sum(jnp.where(inside, jnp.exp(kde["log_density"]), 0.0)) * kde["grid_step"]
    return {
        "tail_low": tail_low,
        "tail_high": tail_high,
        "scale_low": scale_low,
        "scale_high": scale_high,
        "shape_low": shape_low,
        "shape_high": shape_high,
        "log_mass_low": jnp.log(mass_low),
        "log_mass_high": jnp.log(mass_high),
        "log_core_norm": jnp.log(1.0 - mass_low - mass_high) - jnp.log(core_mass),
    }


def _no_tails() -> dict:
    zero = jnp.float32(0.0)
    return {
        "tail_low": jnp.float32(-jnp.inf),
        "tail_high": jnp.float32(jnp.inf),
        "scale_low": jnp.float32(1.0),
        "scale_high": jnp.float32(1.0),
        "shape_low": zero,
        "shape_high": zero,
        "log_mass_low": zero,
        "log_mass_high": zero,
        "log_core_norm": zero,
    }


@functools.partial(jax.jit, static_argnames=("tail_fraction",))
def _step_per_bandwidth(samples: jax.Array, weights: jax.Array, tail_fraction: float) -> jax.Array:
    """Grid step / bandwidth of the KDE estimated in the score itself."""
    bandwidth = silverman_bandwidth(samples, weights)
    if tail_fraction > 0:
        low = _weighted_quantile(samples, weights, tail_fraction)
        high = _weighted_quantile(samples, weights, 1.0 - tail_fraction)
    else:
        big = jnp.finfo(jnp.float32).max
        low = jnp.min(jnp.where(weights > 0, samples, big))
        high = jnp.max(jnp.where(weights > 0, samples, -big))
    return ((high - low) / bandwidth + 2.0 * GRID_MARGIN) / (GRID_SIZE - 1)


@functools.partial(jax.jit, static_argnames=("tail_fraction",))
def _asinh_coordinate(samples: jax.Array, weights: jax.Array, tail_fraction: float):
    """(c, w): the weighted median and robust spread IQR / 1.349 (std, then 1e-3 if zero)."""
    del tail_fraction
    center = _weighted_quantile(samples, weights, 0.5)
    spread = (
        _weighted_quantile(samples, weights, 0.75) - _weighted_quantile(samples, weights, 0.25)
    ) / 1.349
    total = jnp.sum(weights)
    mean = jnp.sum(weights * samples) / total
    std = jnp.sqrt(jnp.sum(weights * (samples - mean) ** 2) / total)
    spread = jnp.where(spread > 0, spread, std)
    return center, jnp.where(spread > 0, spread, 1e-3)


def fit_score_density(
    samples: jax.Array,
    weights: jax.Array | None = None,
    tail_fraction: float = TAIL_FRACTION,
    coordinate: str = "auto",
) -> ScoreDensity:
    """Binned Gaussian KDE with Silverman's bandwidth and generalised-Pareto tails (no checks).

    `coordinate` "auto" estimates in TS unless the grid would be coarser than
    `MAX_STEP_PER_BANDWIDTH` bandwidths, then in u = asinh((TS - c) / w) (module docstring);
    "linear" and "asinh" force one. Host function (the choice depends on the sample); the fit
    itself is jitted.
    """
    samples = jnp.asarray(samples, jnp.float32)
    weights = jnp.ones_like(samples) if weights is None else jnp.asarray(weights, jnp.float32)
    if coordinate not in ("auto", "linear", "asinh"):
        raise ValueError(f"coordinate must be auto, linear or asinh, got {coordinate!r}")
    if coordinate == "auto":
        coarse = float(_step_per_bandwidth(samples, weights, tail_fraction))
        coordinate = "asinh" if coarse > MAX_STEP_PER_BANDWIDTH else "linear"
    if coordinate == "asinh":
        center, width = _asinh_coordinate(samples, weights, tail_fraction)
    else:
        center, width = jnp.float32(0.0), jnp.float32(0.0)
    return _fit_score_density(samples, weights, center, width, tail_fraction=tail_fraction)


@functools.partial(jax.jit, static_argnames=("tail_fraction",))
def _fit_score_density(
    samples: jax.Array,
    weights: jax.Array,
    center: jax.Array,
    width: jax.Array,
    tail_fraction: float = TAIL_FRACTION,
) -> ScoreDensity:
    """Binned Gaussian KDE with Silverman's bandwidth and generalised-Pareto tails, in u.

    The KDE describes the core; beyond the `tail_fraction` and 1 - `tail_fraction` quantiles
    u_lo, u_hi of the sample each tail is a generalised Pareto law fitted to the exceedances
    (peaks over threshold), f = p_hi g(TS - u_hi; scale, xi) above u_hi with p_hi the share of
    the sample above u_hi, and the mirror image below u_lo; xi = 0 is an exponential tail,
    xi > 0 a power law. This keeps the density honest where the sample is sparse: a Gaussian
    KDE tail falls like the outermost kernel, far faster than the skewed, heavy-tailed scores
    of a VAE or a classifier, so events just beyond the sample would look enormously
    anomalous, and fresh data, which reach further than any finite toy bank, would get too
    small p-values. `tail_fraction` = 0 gives the plain KDE (Gaussian tails). Weights act as a
    mask in the tails.

    Args:
      samples: (n,) scores (TS).
      weights: (n,) non-negative event weights (0 masks an event).
      center: c of the asinh coordinate.
      width: w of the asinh coordinate (0: estimate in TS).
      tail_fraction: probability in each tail (static; 0 for none).

    Returns:
      `ScoreDensity` normalised to one over the real line.
    """
    samples, _ = coordinate(center, width, samples)
    bandwidth = silverman_bandwidth(samples, weights)
    span = None
    if tail_fraction > 0:
        span = (
            _weighted_quantile(samples, weights, tail_fraction),
            _weighted_quantile(samples, weights, 1.0 - tail_fraction),
        )
    kde = _binned_kde(samples, weights, bandwidth, span)
    tails = (
        _pareto_tails(samples, weights, kde, tail_fraction) if tail_fraction > 0 else _no_tails()
    )
    del kde["grid"]
    return ScoreDensity(bandwidth=bandwidth, **kde, **tails, center=center, width=width)


def score_density(
    samples: ArrayLike, name: str = "null sample", tail_fraction: float = TAIL_FRACTION
) -> ScoreDensity:
    """`fit_score_density` with input checks (empty sample, NaN, a single distinct value).

    Each tail holds at least `MIN_TAIL_EVENTS` sample events (the fraction is raised for small
    samples, at most to 0.25).

    Args:
      samples: (n,) scores, n >= 2.
      name: what the sample is (for messages).
      tail_fraction: probability in each tail, in [0, 0.5).

    Returns:
      The fitted `ScoreDensity`.

    Raises:
      ValueError: naming `name` and what is wrong with it.
    """
    array = check_scores(samples, name)
    if array.size < 2:
        raise ValueError(f"{name} has {array.size} event(s): need at least 2 for a density")
    if not 0.0 <= tail_fraction < 0.5:
        raise ValueError(f"tail_fraction must lie in [0, 0.5), got {tail_fraction}")
    if tail_fraction > 0:
        # At least MIN_TAIL_EVENTS events per tail, so a small sample still fits its slopes.
        tail_fraction = min(max(tail_fraction, MIN_TAIL_EVENTS / array.size), 0.25)
    return fit_score_density(jnp.asarray(array, jnp.float32), tail_fraction=tail_fraction)


def log_density_at(density: ScoreDensity, scores: jax.Array) -> jax.Array:
    """The log density log f(scores), normalised over the real line.

    The KDE core is the linear interpolation of the tabulated log density, with Gaussian tails
    beyond the grid matched to the grid edge; the generalised-Pareto tails replace it beyond
    their thresholds where they exist.

    Args:
      density: the density.
      scores: points at which to evaluate it (any shape).

    Returns:
      log f, shaped like `scores` (the density of TS: with the asinh coordinate, the density
      of u times |du/dTS|).
    """
    scores, log_jacobian = coordinate(density.center, density.width, scores)
    return _log_density_in_u(density, scores) + log_jacobian


def _log_density_in_u(density: ScoreDensity, scores: jax.Array) -> jax.Array:
    """Log f_u at points already in the density's coordinate."""
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
    high_tail = density.log_mass_high + pareto_log_density(
        jnp.maximum(scores - tail_high, 0.0), density.scale_high, density.shape_high
    )
    low_tail = density.log_mass_low + pareto_log_density(
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

    Args:
      null: f_0.
      template: f_s.

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
