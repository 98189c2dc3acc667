"""The null distribution of t against chi2: bulk (KS), fitted dof, and the tail.

Under the null, NPLM's t is asymptotically chi2 with as many degrees of freedom as f has
trainable parameters (13 for 1-4-1; arXiv:1806.02350), inflated by about ``1 + N(R)/N_R`` when
the reference is resampled per toy; the symmetrized test's with ``n_params - 1``. Whether toys
follow it is checked in the bulk (two-sided KS), by a maximum-likelihood dof, and in the tail
(quantiles and binomial counts beyond chi2's 95% and 99% points), where a discovery is
claimed. The clip value is calibrated on that check (arXiv:1912.12155).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats


def fit_chi2_dof(t: Sequence[float] | np.ndarray) -> float:
    """Maximum-likelihood number of degrees of freedom of a chi2 (location 0, scale 1).

    Args:
        t: null toys' test statistics, all > 0.

    Returns:
        The fitted dof.
    """
    t = np.asarray(t, np.float64)
    if t.size < 2 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("fit_chi2_dof needs at least 2 finite, positive t values")
    dof, _, _ = scipy_stats.chi2.fit(t, floc=0.0, fscale=1.0)
    return float(dof)


def compare_with_chi2(t: Sequence[float] | np.ndarray, dof: float) -> dict[str, float]:
    """Compare toy t values with chi2(dof) and with a chi2 of fitted dof.

    Args:
        t: null toys' test statistics.
        dof: the expected degrees of freedom (number of trainable parameters for NPLM).

    Returns:
        ``ks_statistic``, ``ks_pvalue`` (two-sided KS against chi2(dof)), ``fitted_dof``,
        ``fitted_ks_pvalue`` (KS against chi2(fitted_dof); optimistic since fitted),
        ``mean``, ``variance`` and ``n_toys``.
    """
    t = np.asarray(t, np.float64)
    ks = scipy_stats.kstest(t, scipy_stats.chi2(dof).cdf)
    positive = t[np.isfinite(t) & (t > 0)]
    if positive.size < t.size:
        # t <= 0 means a fit ended worse than f = 0: training did not converge.
        warnings.warn(
            f"{t.size - positive.size} of {t.size} toys have t <= 0 or non-finite t "
            "(unconverged fits); the dof fit uses the others",
            RuntimeWarning,
            stacklevel=2,
        )
    fitted = fit_chi2_dof(positive) if positive.size >= 2 else math.nan
    ks_fitted = scipy_stats.kstest(t, scipy_stats.chi2(fitted).cdf) if positive.size >= 2 else None
    return {
        **tail_comparison(t, dof),
        "dof": float(dof),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "fitted_dof": fitted,
        "fitted_ks_pvalue": math.nan if ks_fitted is None else float(ks_fitted.pvalue),
        "n_nonpositive": int(t.size - positive.size),
        "mean": float(t.mean()),
        "variance": float(t.var(ddof=1)),
        "n_toys": int(t.size),
    }


TAIL_QUANTILES = (0.95, 0.99)


def tail_comparison(
    t: Sequence[float] | np.ndarray, dof: float, quantiles: Sequence[float] = TAIL_QUANTILES
) -> dict[str, float]:
    """The tail of the toys against chi2(dof): quantiles and counts beyond them.

    KS is dominated by the bulk; an anti-conservative tail (too many toys beyond chi2's
    99% point, so chi2 p-values too small where a discovery is claimed) needs its own test.
    For each quantile q: the empirical q-quantile of t, chi2(dof)'s, the number of toys beyond
    chi2's (expected ``n (1 - q)``), and binomial p-values of that count (two-sided, and
    one-sided for an excess).

    Args:
        t: null toys' test statistics.
        dof: the chi2 degrees of freedom compared with.
        quantiles: the probabilities q.

    Returns:
        Keys ``q95_empirical``, ``q95_chi2``, ``n_beyond_q95``, ``expected_beyond_q95``,
        ``binomial_pvalue_q95``, ``excess_pvalue_q95`` (and the same for every q).
    """
    t = np.asarray(t, np.float64)
    result: dict[str, float] = {}
    for q in quantiles:
        name = f"q{100 * q:g}".replace(".", "_")
        threshold = float(scipy_stats.chi2(dof).ppf(q))
        beyond = int(np.sum(t > threshold))
        result[f"{name}_empirical"] = float(np.quantile(t, q))
        result[f"{name}_chi2"] = threshold
        result[f"n_beyond_{name}"] = beyond
        result[f"expected_beyond_{name}"] = t.size * (1.0 - q)
        result[f"binomial_pvalue_{name}"] = float(
            scipy_stats.binomtest(beyond, t.size, 1 - q).pvalue
        )
        result[f"excess_pvalue_{name}"] = float(
            scipy_stats.binomtest(beyond, t.size, 1 - q, alternative="greater").pvalue
        )
    return result


def follows_chi2(comparison: dict[str, float], significance_level: float = 0.01) -> bool:
    """Whether toys follow chi2(dof) in the bulk and in the tail.

    Args:
        comparison: :func:`compare_with_chi2`'s numbers.
        significance_level: the level every p-value must exceed.

    Returns:
        True when the KS p-value against chi2(dof) and the binomial p-values of the counts
        beyond chi2's 95% and 99% points all exceed ``significance_level``.
    """
    smallest = min(
        comparison["ks_pvalue"],
        comparison["binomial_pvalue_q95"],
        comparison["binomial_pvalue_q99"],
    )
    return smallest > significance_level
