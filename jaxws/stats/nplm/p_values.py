"""p-values and one-sided significance of an observed NPLM t, from toys and from chi2.

Conventions: larger t is more signal-like. Empirical p-value ``(k + 1) / (n + 1)`` with k the
number of null toys with ``t_null >= t_obs`` (never 0); when k = 0 the toys only bound it, and
Z is quoted as a bound. Asymptotic p-value ``chi2.sf(t_obs, dof)``. Significance: one-sided
``Z = max(0, Phi^-1(1 - p))``: a discovery significance, 0 when the observation is not above
the null's median (p >= 0.5; Cowan et al., arXiv:1007.1727, set q0 = 0 there), so p = 1 (every
toy at least as large, or t <= 0 against chi2) gives Z = 0, not -inf. The p-values are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

from jaxws.stats.significance import z_from_p


def significance(t_observed: float, t_null: Sequence[float] | np.ndarray, dof: float) -> dict:
    """p-values and Z of an observation, each labelled with where it comes from.

    Conventions: ``p_toys = (k + 1) / (n + 1)`` (k null toys with t >= t_obs). When k = 0 the
    toys only bound the p-value, ``p <= 1 / (n + 1)``, so ``z_toys`` is a lower bound
    (``z_toys_is_bound`` True): Z from n toys is never quoted beyond ``Phi^-1(1 - 1/(n+1))``.
    ``p_chi2 = chi2.sf(t_obs, dof)`` relies on the asymptotic null (check it with
    :func:`compare_with_chi2`).

    Args:
        t_observed: the observed statistic.
        t_null: null toys.
        dof: degrees of freedom of the asymptotic chi2.

    Returns:
        ``t``, ``p_toys``, ``z_toys``, ``z_toys_is_bound``, ``n_toys``, ``p_chi2``, ``z_chi2``,
        ``dof``.
    """
    t_null = np.asarray(t_null, np.float64)
    p_toys = empirical_p_value(t_observed, t_null)
    p_chi2 = float(chi2_p_value(t_observed, dof))
    return {
        "t": float(t_observed),
        "p_toys": p_toys,
        "z_toys": discovery_z(p_toys),
        "z_toys_is_bound": bool(np.sum(t_null >= t_observed) == 0),
        "n_toys": int(t_null.size),
        "p_chi2": p_chi2,
        "z_chi2": discovery_z(p_chi2),
        "dof": float(dof),
    }


def discovery_z(p: float) -> float:
    """``max(0, Phi^-1(1 - p))``: one-sided, 0 for p >= 0.5 (finite for p = 1)."""
    return float(max(0.0, z_from_p(p)))


def format_significance(result: dict) -> str:
    """One line: ``Z = 2.1 (toys, p = 0.018, 1000 toys); Z = 2.3 (chi2(13), p = 0.011)``.

    A Z from toys that is only a bound prints as ``Z > ...``.
    """
    relation = ">" if result["z_toys_is_bound"] else "="
    bound = " (bound: no toy beyond t)" if result["z_toys_is_bound"] else ""
    return (
        f"t = {result['t']:.2f}: Z {relation} {result['z_toys']:.2f} from {result['n_toys']} "
        f"toys (p {'<=' if result['z_toys_is_bound'] else '='} {result['p_toys']:.3g}){bound}; "
        f"Z = {result['z_chi2']:.2f} from chi2({result['dof']:g}) (p = {result['p_chi2']:.3g})"
    )


def empirical_p_value(t_observed: float, t_null: Sequence[float] | np.ndarray) -> float:
    """Empirical p-value ``(k + 1) / (n + 1)``, k = #{t_null >= t_observed}.

    Args:
        t_observed: the observed statistic.
        t_null: n null toys.

    Returns:
        The p-value, at least 1/(n+1).
    """
    t_null = np.asarray(t_null, np.float64)
    if t_null.size == 0:
        raise ValueError("empirical_p_value needs at least one null toy")
    k = int(np.sum(t_null >= t_observed))
    return (k + 1) / (t_null.size + 1)


def chi2_p_value(t_observed: float | np.ndarray, dof: float) -> float | np.ndarray:
    """Asymptotic p-value ``P(chi2_dof >= t_observed)``.

    Args:
        t_observed: the observed statistic(s).
        dof: degrees of freedom.

    Returns:
        The p-value(s).
    """
    return scipy_stats.chi2.sf(t_observed, dof)
