"""Discovery significance of a counting experiment, eqs. 2 and 8 of the CWoLa transfer/meta paper.

Follows "Improving weak supervision searches using transfer and meta-learning"
(../shared/seeds/001, Sec. 3 and Appendix A), which takes both formulas from ATLAS:2020yaz
(Cowan's Asimov formulas).

Conventions, used everywhere in this module:

* Z is the one-sided discovery significance: the background-only hypothesis is tested against
  a positive signal, Z = sqrt(q0) with q0 = -2 ln lambda(0) the profile likelihood ratio.
* The data set is the Asimov one: the observed count is the expected count n = N_s + N_b, so
  Z is the median significance expected if the signal is there (not an observed p-value).
* N_b is the expected background in the signal region after whatever cut is applied (before
  the classifier cut for the *initial* significance, N_b * eps_b after it for the *final*
  one); N_s is the expected signal in the same place. Both are expected counts (reals), not
  observed integers. N_b > 0, N_s >= 0.
* Eq. 8 adds an absolute uncertainty sigma_b on N_b. Its closed form is exact for an
  auxiliary Poisson measurement m = tau N_b with tau = N_b / sigma_b^2 (the "on/off" model),
  not for a Gaussian constraint (the two agree to O(sigma_b^2 / N_b)). The paper quotes a
  *relative* systematic (1 % in its Fig. 7): sigma_b = relative_uncertainty * N_b, applied
  before and after the classifier cut alike.
* Limits: eq. 8 -> eq. 2 as sigma_b -> 0; both -> N_s / sqrt(N_b + sigma_b^2) for N_s << N_b.

The functions take NumPy arrays (validated, broadcast) or JAX arrays (no validation, jit- and
vmap-compatible, differentiable also at N_s = 0). They are written as N_s times a sum of
non-negative terms, so a small N_s / N_b loses no precision (the literal formulas cancel);
checked against 80-digit evaluations of eqs. 2 and 8 to 1e-13 over N_s in [1e-9, 1e7],
N_b in [1e-3, 1e9], sigma_b / N_b in [0, 10].
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

if TYPE_CHECKING:
    import jax

    # Inputs: array-likes (validated with NumPy) or JAX arrays and tracers (not validated).
    Values: TypeAlias = ArrayLike | jax.Array
    # Outputs: NumPy arrays (a float for scalar inputs), or JAX arrays for JAX inputs.
    Result: TypeAlias = np.ndarray | float | jax.Array

# Background efficiencies at which the final significance is evaluated by default. The paper
# only says it "chooses certain background efficiencies"; we use a fixed log-spaced list down
# to 1e-3 (20 background events out of a 20k test set, the paper's size).
DEFAULT_BACKGROUND_EFFICIENCIES: tuple[float, ...] = (
    0.5,
    0.2,
    0.1,
    0.05,
    0.02,
    0.01,
    0.005,
    0.002,
    0.001,
)

# Taylor coefficients of g(x) = ((1 + x) log1p(x) - x) / x^2 = sum_j (-1)^j x^j / ((j+1)(j+2)).
_G_SERIES = tuple((-1.0) ** j / ((j + 1) * (j + 2)) for j in range(16))
_G_SERIES_RADIUS = 0.1  # truncation error at the edge: 0.1^16 / 306 ~ 3e-19 (relative 7e-19)


def _namespace(*arrays: object) -> ModuleType:
    """Return jax.numpy if any argument is a JAX array (or tracer), else NumPy."""
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def _is_numpy(xp: ModuleType) -> bool:
    return xp is np


def _poisson_deviance_over_square(x: np.ndarray | jax.Array, xp: ModuleType):
    """Return g(x) = ((1 + x) log1p(x) - x) / x^2 for x > -1, accurate near x = 0 (g(0) = 1/2)."""
    small = xp.abs(x) < _G_SERIES_RADIUS
    series = xp.zeros_like(x)
    for coefficient in reversed(_G_SERIES):
        series = series * x + coefficient
    x_safe = xp.where(small, xp.ones_like(x), x)  # keeps the unused branch finite (JAX grads)
    direct = ((1.0 + x_safe) * xp.log1p(x_safe) - x_safe) / (x_safe * x_safe)
    return xp.where(small, series, direct)


def _check_counts(n_s: np.ndarray, n_b: np.ndarray, sigma_b: np.ndarray) -> None:
    for name, value in (("n_s", n_s), ("n_b", n_b), ("sigma_b", sigma_b)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value}")
    if np.any(n_b <= 0):
        raise ValueError(f"n_b (expected background) must be > 0, got {n_b}")
    if np.any(n_s < 0):
        raise ValueError(f"n_s (expected signal) must be >= 0, got {n_s}")
    if np.any(sigma_b < 0):
        raise ValueError(f"sigma_b (background uncertainty) must be >= 0, got {sigma_b}")


def _significance(n_s: Values, n_b: Values, sigma_b: Values):
    """Eq. 8 (eq. 2 when sigma_b = 0) as N_s times a smooth positive factor.

    With tau = b / sigma^2, the background-only fit to the Asimov data (n = s + b, m = tau b)
    gives bb = b + s sigma^2 / (b + sigma^2), and q0 = 2 [bb h(x) + tau bb h(y)] with
    x = (n - bb) / bb = s b / ((b + sigma^2) bb), y = (b - bb) / bb and h(x) = x^2 g(x), a sum
    of non-negative terms. Taking s^2 out of both gives
    Z = s sqrt(2 b (b g(x) + sigma^2 g(y)) / ((b + sigma^2)^2 bb)): no cancellation at small
    s, no division by sigma, and a finite gradient at s = 0 (dZ/ds = 1 / sqrt(b + sigma^2)).
    """
    xp = _namespace(n_s, n_b, sigma_b)
    if _is_numpy(xp):
        n_s, n_b, sigma_b = np.broadcast_arrays(
            *(np.asarray(v, dtype=np.float64) for v in (n_s, n_b, sigma_b))
        )
        _check_counts(n_s, n_b, sigma_b)
    variance = sigma_b * sigma_b
    total_background = n_b + variance
    fitted_background = n_b + n_s * variance / total_background  # bb
    x = n_s * n_b / (total_background * fitted_background)
    y = -n_s * variance / (total_background * fitted_background)
    factor = (
        2.0
        * n_b
        * (
            n_b * _poisson_deviance_over_square(x, xp)
            + variance * _poisson_deviance_over_square(y, xp)
        )
        / (total_background * total_background * fitted_background)
    )
    z = n_s * xp.sqrt(factor)
    return z[()] if _is_numpy(xp) else z


def _absolute_uncertainty(n_b: Values, sigma_b: Values | None, relative_uncertainty: Values | None):
    if (sigma_b is None) == (relative_uncertainty is None):
        raise ValueError("give exactly one of sigma_b and relative_uncertainty")
    if sigma_b is not None:
        return sigma_b
    xp = _namespace(n_b, relative_uncertainty)
    if _is_numpy(xp) and np.any(np.asarray(relative_uncertainty) < 0):
        raise ValueError(f"relative_uncertainty must be >= 0, got {relative_uncertainty}")
    return relative_uncertainty * n_b


def asimov_significance(n_s: Values, n_b: Values) -> Result:
    """Eq. 2: Z = sqrt(2 ((N_s + N_b) ln(1 + N_s / N_b) - N_s)), no background uncertainty.

    Args:
        n_s: expected signal N_s >= 0 (array-like, broadcasts with n_b).
        n_b: expected background N_b > 0 in the same region and after the same cut.

    Returns:
        One-sided Asimov discovery significance Z (0 where N_s = 0; ~ N_s / sqrt(N_b) for
        N_s << N_b). A float for scalar NumPy inputs.
    """
    return _significance(n_s, n_b, 0.0)


def asimov_significance_with_uncertainty(
    n_s: Values,
    n_b: Values,
    sigma_b: Values | None = None,
    *,
    relative_uncertainty: Values | None = None,
) -> Result:
    """Eq. 8: Asimov discovery significance with an uncertainty on the background.

    Z = sqrt(2 (N ln(N (N_b + s^2) / (N_b^2 + N s^2)) - N_b^2 / s^2 ln(1 + s^2 N_s /
    (N_b (N_b + s^2))))) with N = N_s + N_b and s = sigma_b; exact for an auxiliary Poisson
    measurement of the background with tau = N_b / sigma_b^2 (see module docstring).

    Args:
        n_s: expected signal N_s >= 0.
        n_b: expected background N_b > 0.
        sigma_b: absolute background uncertainty (>= 0; 0 gives eq. 2).
        relative_uncertainty: instead of sigma_b, the relative one: sigma_b = rel * N_b.

    Returns:
        One-sided Asimov discovery significance Z.

    Raises:
        ValueError: unless exactly one of sigma_b and relative_uncertainty is given, or (NumPy
            inputs) if a count is not finite, N_b <= 0, N_s < 0 or the uncertainty < 0.
    """
    return _significance(n_s, n_b, _absolute_uncertainty(n_b, sigma_b, relative_uncertainty))


def signal_for_significance(
    target_z: ArrayLike,
    n_b: ArrayLike,
    *,
    sigma_b: ArrayLike | None = None,
    relative_uncertainty: ArrayLike | None = None,
    rtol: float = 1e-12,
) -> np.ndarray | float:
    """Expected signal N_s for which the Asimov significance equals target_z (eq. 2 or 8).

    E.g. the signal needed for a 5 sigma discovery. Z is strictly increasing in N_s, so the
    root is unique; it is bracketed by doubling and found with Brent's method (NumPy only).

    Args:
        target_z: wanted significance(s) >= 0.
        n_b: expected background(s) > 0 (broadcasts with target_z).
        sigma_b: absolute background uncertainty; default none (eq. 2).
        relative_uncertainty: instead of sigma_b, sigma_b = rel * N_b.
        rtol: relative tolerance on N_s.

    Returns:
        N_s with the broadcast shape of the inputs (a float for scalars).

    Raises:
        ValueError: if target_z is negative or not finite, N_b <= 0, or the uncertainty < 0.
    """
    if sigma_b is None and relative_uncertainty is None:
        sigma_b = 0.0
    sigma_b = _absolute_uncertainty(np.asarray(n_b, float), sigma_b, relative_uncertainty)
    target_z, n_b, sigma_b = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (target_z, n_b, sigma_b))
    )
    _check_counts(np.zeros_like(n_b), n_b, sigma_b)
    if not np.all(np.isfinite(target_z)) or np.any(target_z < 0):
        raise ValueError(f"target_z must be finite and >= 0, got {target_z}")
    result = np.empty_like(target_z)
    for index in np.ndindex(target_z.shape):
        z0, b, sigma = float(target_z[index]), float(n_b[index]), float(sigma_b[index])
        if z0 == 0.0:
            result[index] = 0.0
            continue
        excess = lambda s, b=b, sigma=sigma, z0=z0: _significance(s, b, sigma) - z0
        # Start near the small-signal solution s ~ z0 sqrt(b + sigma^2) and double until the
        # root is bracketed (Z is unbounded in s, so this ends).
        upper = z0 * np.sqrt(b + sigma * sigma) + z0 * z0
        while excess(upper) <= 0:
            upper *= 2.0
        result[index] = optimize.brentq(
            excess, 0.0, upper, xtol=1e-300, rtol=max(rtol, 4 * np.finfo(float).eps)
        )
    return result[()]


def initial_significance(
    n_s_sr: Values, n_b_sr: Values, *, relative_uncertainty: float = 0.0
) -> Result:
    """Significance in the signal region before any classifier cut (the x axis of Figs. 3-7).

    Args:
        n_s_sr: expected signal in the signal region.
        n_b_sr: expected background in the signal region.
        relative_uncertainty: relative background systematic (0: eq. 2, else eq. 8).

    Returns:
        Z(N_s, N_b) with sigma_b = relative_uncertainty * N_b.
    """
    return asimov_significance_with_uncertainty(
        n_s_sr, n_b_sr, relative_uncertainty=relative_uncertainty
    )


def final_significance(
    n_s_sr: Values,
    n_b_sr: Values,
    eps_s: Values,
    eps_b: Values,
    *,
    relative_uncertainty: float = 0.0,
) -> Result:
    """Significance after keeping a fraction eps_b of the background (the y axis of Figs. 3-7).

    Args:
        n_s_sr: expected signal in the signal region before the cut.
        n_b_sr: expected background in the signal region before the cut.
        eps_s: signal efficiency of the cut (from the test ROC curve), in [0, 1].
        eps_b: background efficiency of the cut, in (0, 1].
        relative_uncertainty: relative background systematic after the cut (0: eq. 2).

    Returns:
        Z(N_s eps_s, N_b eps_b) with sigma_b = relative_uncertainty * N_b eps_b.
    """
    xp = _namespace(n_s_sr, n_b_sr, eps_s, eps_b)
    if _is_numpy(xp):
        eps_s, eps_b = np.asarray(eps_s, float), np.asarray(eps_b, float)
        if np.any(~(eps_s >= 0) | ~(eps_s <= 1)):
            raise ValueError(f"eps_s (signal efficiency) must be in [0, 1], got {eps_s}")
        if np.any(~(eps_b > 0) | ~(eps_b <= 1)):
            raise ValueError(f"eps_b (background efficiency) must be in (0, 1], got {eps_b}")
    return asimov_significance_with_uncertainty(
        n_s_sr * eps_s, n_b_sr * eps_b, relative_uncertainty=relative_uncertainty
    )


@dataclasses.dataclass(frozen=True)
class WorkingPointSignificance:
    """Final significance at each background-efficiency working point, and the best one.

    Attributes:
        background_efficiencies: the working points eps_b, shape (K,).
        signal_efficiencies: eps_s at each working point, shape (..., K).
        significance: final Z at each working point, shape (..., K).
        best_significance: max over the K working points, shape (...).
        best_index: index of that working point, shape (...).
    """

    background_efficiencies: np.ndarray
    signal_efficiencies: np.ndarray
    significance: np.ndarray
    best_significance: np.ndarray
    best_index: np.ndarray


def significance_at_working_points(
    n_s_sr: ArrayLike,
    n_b_sr: ArrayLike,
    signal_efficiencies: ArrayLike,
    background_efficiencies: Sequence[float] = DEFAULT_BACKGROUND_EFFICIENCIES,
    *,
    relative_uncertainty: float = 0.0,
) -> WorkingPointSignificance:
    """Final significance at a fixed list of eps_b working points; reports each and the max.

    The paper picks "certain background efficiencies" and reads eps_s off the test ROC curve.
    We report Z at every working point and the maximum over the fixed list. The maximum is
    chosen with the test set's truth labels, so it is an optimistic (best-case) figure; the
    per-working-point values are free of that choice.

    Args:
        n_s_sr: expected signal in the signal region before the cut; broadcasts with the
            leading axes of signal_efficiencies (e.g. shape (n_points, 1) for runs).
        n_b_sr: expected background in the signal region before the cut.
        signal_efficiencies: eps_s at each working point, shape (..., K), e.g. from
            `jaxws.stats.roc.signal_efficiency_at`.
        background_efficiencies: the K working points eps_b in (0, 1].
        relative_uncertainty: relative background systematic (0: eq. 2, else eq. 8).

    Returns:
        A WorkingPointSignificance.
    """
    eps_b = np.asarray(background_efficiencies, dtype=np.float64)
    eps_s = np.asarray(signal_efficiencies, dtype=np.float64)
    if eps_b.ndim != 1 or eps_b.size == 0:
        raise ValueError(f"background_efficiencies must be a non-empty 1-d list, got {eps_b}")
    if eps_s.ndim == 0 or eps_s.shape[-1] != eps_b.size:
        raise ValueError(
            f"signal_efficiencies must have last axis {eps_b.size} (one per working point), "
            f"got shape {eps_s.shape}"
        )
    n_s = np.asarray(n_s_sr, dtype=np.float64)[..., None]
    n_b = np.asarray(n_b_sr, dtype=np.float64)[..., None]
    z = np.asarray(
        final_significance(n_s, n_b, eps_s, eps_b, relative_uncertainty=relative_uncertainty)
    )
    best_index = np.argmax(z, axis=-1)
    return WorkingPointSignificance(
        background_efficiencies=eps_b,
        signal_efficiencies=np.broadcast_to(eps_s, z.shape),
        significance=z,
        best_significance=np.take_along_axis(z, best_index[..., None], axis=-1)[..., 0],
        best_index=best_index,
    )


def z_from_p(p: Values) -> Result:
    """One-sided significance of a p-value: Z = Phi^-1(1 - p), the project's one p-to-Z.

    Convention: a one-sided (upper-tail) Gaussian equivalent, so p = 0.5 gives Z = 0,
    p = 2.87e-7 gives Z = 5, and p > 0.5 gives a negative Z (callers that report a
    discovery significance clip at 0 themselves). Evaluated as -ndtri(p), which keeps its
    precision for tiny p. NumPy in, NumPy out; a JAX array in gives a JAX array (jittable).
    """
    xp = _namespace(p)
    if _is_numpy(xp):
        from scipy.special import ndtri

        return -ndtri(np.asarray(p, dtype=np.float64))
    from jax.scipy.special import ndtri

    return -ndtri(p)
