"""Figures of the NPLM method: the null against chi2, t against epochs, the sensitivity curve.

Follows the figures of D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155): the histogram of null
toys' t with the chi2(dof) density (dof = trainable parameters of f for NPLM, that minus one
for the symmetrized test) and with a chi2 of fitted dof; t against training epochs for a few
toys, whose median should settle at the chi2 median; the median one-sided Z of
signal-injected toys against the injected fraction, from the toys and from chi2.

Same style as every jaxws figure (:func:`jaxws.plotting.style`): legends outside the axes
(:func:`jaxws.plotting.legend_outside`), log axes labelled with plain numbers
(:func:`jaxws.plotting.readable_log_axis`), an optional neutral line naming the sample
(``label``, e.g. from :func:`jaxws.plotting.sample_label`). Figures are built without pyplot
and saved by the tracker.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from jaxws.plotting import legend_outside, readable_log_axis, style


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8, 6))
    return figure, figure.subplots()


def _title(ax: Axes, label: str | None) -> None:
    if label:
        ax.set_title(label, fontsize="small", loc="left", wrap=True)


def null_histogram_figure(
    t_null: np.ndarray, dof: float, fitted_dof: float, label: str, title: str | None = None
) -> Figure:
    """Histogram of null toys' t with the chi2(dof) and chi2(fitted dof) densities.

    Args:
        t_null: null toys' t.
        dof: the asymptotic degrees of freedom.
        fitted_dof: the maximum-likelihood dof of the toys.
        label: legend entry of the histogram (which test's null toys).
        title: optional neutral line naming the sample.

    Returns:
        The figure.
    """
    with style():
        figure, ax = _figure()
        top = max(float(np.max(t_null)), scipy_stats.chi2(dof).ppf(0.999))
        ax.hist(t_null, bins=30, range=(0, top), density=True, histtype="step", label=label)
        grid = np.linspace(0, top, 400)
        ax.plot(grid, scipy_stats.chi2(dof).pdf(grid), label=rf"$\chi^2_{{{dof:g}}}$")
        ax.plot(
            grid,
            scipy_stats.chi2(fitted_dof).pdf(grid),
            linestyle="--",
            label=rf"$\chi^2$, fitted dof {fitted_dof:.1f}",
        )
        ax.set_xlabel("t")
        ax.set_ylabel("density")
        _title(ax, title)
        legend_outside(ax)
    return figure


def history_figure(
    checkpoints: tuple[int, ...],
    t_history: np.ndarray,
    dof: float,
    n_show: int,
    title: str | None = None,
) -> Figure:
    """The t against epochs of a few toys, with the median over all toys and the chi2 median.

    Args:
        checkpoints: the epochs at which t was recorded.
        t_history: (n_toys, n_checkpoints) t values.
        dof: the asymptotic degrees of freedom.
        n_show: toys drawn one by one (grey).
        title: optional neutral line naming the sample.

    Returns:
        The figure (log epoch axis).
    """
    with style():
        figure, ax = _figure()
        for row in t_history[:n_show]:
            ax.plot(checkpoints, row, color="grey", alpha=0.6, marker="o", markersize=3)
        ax.plot(checkpoints, np.median(t_history, axis=0), color="black", label="median of toys")
        ax.axhline(
            scipy_stats.chi2(dof).median(), linestyle="--", label=rf"$\chi^2_{{{dof:g}}}$ median"
        )
        ax.set_xscale("log")
        readable_log_axis(ax.xaxis, *sorted(ax.get_xlim()))
        ax.set_xlabel("epochs")
        ax.set_ylabel("t")
        _title(ax, title)
        legend_outside(ax)
    return figure


def sensitivity_figure(
    fractions: list[float],
    z_empirical: list[float],
    z_chi2: list[float],
    title: str | None = None,
    z_empirical_is_bound: list[bool] | None = None,
) -> Figure:
    """Median one-sided Z of signal-injected toys against the signal fraction.

    Args:
        fractions: injected signal fractions.
        z_empirical: median Z against the toys' null, per fraction.
        z_chi2: median Z against chi2(dof), per fraction.
        title: optional neutral line naming the sample.
        z_empirical_is_bound: per fraction, whether the empirical Z is only a lower bound (no
            null toy reaches the median t: Z from n toys stops at ``Phi^-1(1 - 1/(n+1))``);
            those points are drawn as upward triangles.

    Returns:
        The figure.
    """
    with style():
        figure, ax = _figure()
        line = ax.plot(fractions, z_empirical, marker="o", label="empirical null")[0]
        bound = np.asarray(z_empirical_is_bound or [False] * len(fractions), bool)
        if bound.any():
            ax.plot(
                np.asarray(fractions)[bound],
                np.asarray(z_empirical)[bound],
                linestyle="none",
                marker="^",
                markersize=12,
                color=line.get_color(),
                label="empirical null: lower bound\n(no null toy beyond)",
            )
        ax.plot(fractions, z_chi2, marker="s", linestyle="--", label=r"$\chi^2$ null")
        ax.set_xlabel("signal fraction")
        ax.set_ylabel("median Z")
        _title(ax, title)
        legend_outside(ax)
    return figure
