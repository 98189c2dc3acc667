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

import textwrap

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator
from scipy import stats as scipy_stats

from jaxws.plotting import legend_outside, readable_log_axis, style


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8, 6))
    return figure, figure.subplots()


def _title(ax: Axes, label: str | None) -> None:
    # Wrapped here, not by matplotlib (wrap=True): with the sensitivity figure's top axis,
    # matplotlib's wrapping moved the title far above the axes and the saved figure (tight
    # bounding box) grew to twice its height, mostly empty.
    if label:
        # Spaces inside $...$ are not break points: a line break would split the mathtext.
        pieces = label.split("$")
        pieces[1::2] = [piece.replace(" ", "\0") for piece in pieces[1::2]]
        wrapped = textwrap.fill("$".join(pieces), 60).replace("\0", " ")
        ax.set_title(wrapped, fontsize="small", loc="left")


def null_histogram_figure(
    t_null: np.ndarray, dof: float, fitted_dof: float, label: str, title: str | None = None
) -> Figure:
    """Histogram of null toys' t with the chi2(dof) and chi2(fitted dof) densities.

    Log y, so the tail that p-values use stays visible; each bin is a density with its Poisson
    error sqrt(n) / (N width) (empty bins drawn without a point).

    Args:
        t_null: null toys' t.
        dof: the asymptotic degrees of freedom.
        fitted_dof: the maximum-likelihood dof of the toys.
        label: legend entry of the histogram (which test's null toys).
        title: optional neutral line naming the sample and the fit.

    Returns:
        The figure.
    """
    t_null = np.asarray(t_null, np.float64)
    with style():
        figure, ax = _figure()
        top = max(float(np.max(t_null)), scipy_stats.chi2(dof).ppf(0.999))
        counts, edges = np.histogram(t_null, bins=30, range=(0, top))
        scale = 1.0 / (t_null.size * np.diff(edges))
        centres = 0.5 * (edges[1:] + edges[:-1])
        filled = counts > 0
        ax.errorbar(
            centres[filled],
            (counts * scale)[filled],
            yerr=(np.sqrt(counts) * scale)[filled],
            xerr=0.5 * np.diff(edges)[filled],
            linestyle="none",
            marker="o",
            markersize=4,
            color="black",
            label=f"{label} ({t_null.size}), Poisson errors",
        )
        grid = np.linspace(0, top, 400)[1:]
        ax.plot(grid, scipy_stats.chi2(dof).pdf(grid), label=rf"$\chi^2_{{{dof:g}}}$")
        ax.plot(
            grid,
            scipy_stats.chi2(fitted_dof).pdf(grid),
            linestyle="--",
            label=rf"$\chi^2$, fitted dof {fitted_dof:.1f}",
        )
        ax.set_yscale("log")
        # Down to a third of one toy per bin: the tail's single toys stay on the plot.
        ax.set_ylim(scale.min() / 3, 2 * max((counts * scale).max(), 1e-300))
        readable_log_axis(ax.yaxis, *sorted(ax.get_ylim()))
        ax.set_xlabel("t")
        ax.set_ylabel("density of toys")
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
        # 1, 3 x 10^k (the checkpoints' own spacing): at 1, 2, 5 x 10^k the five-digit epoch
        # labels of 2-3 decades run into each other.
        ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 3.0)))
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
    z_chi2_band: tuple[list[float], list[float]] | None = None,
    n_expected: float | None = None,
) -> Figure:
    """Median one-sided Z of signal-injected toys against the injected signal fraction.

    Measured medians are joined by solid lines; a Z from toys that is only a lower bound (no
    null toy reaches the median t) is an upward triangle joined by a dashed line.

    Args:
        fractions: injected signal fractions s (expected signal events / N(R); over N_A for
            the symmetrized test).
        z_empirical: median Z against the toys' null, per fraction.
        z_chi2: median Z against chi2(dof), per fraction.
        title: optional neutral line naming the sample.
        z_empirical_is_bound: per fraction, whether the empirical Z is only a lower bound (no
            null toy reaches the median t: Z from n toys stops at ``Phi^-1(1 - 1/(n+1))``);
            those points are drawn as upward triangles.
        z_chi2_band: optional (low, high) Z against chi2 at the signal toys' 16th and 84th
            percentiles of t: the 68% band of the chi2 curve.
        n_expected: optional N(R): a second x axis at the top labels the expected signal
            events s N(R).

    Returns:
        The figure.
    """
    x = np.asarray(fractions, np.float64)
    z_toys = np.asarray(z_empirical, np.float64)
    bound = np.asarray(z_empirical_is_bound or [False] * len(x), bool)
    with style():
        figure, ax = _figure()
        if z_chi2_band is not None:
            ax.fill_between(
                x,
                z_chi2_band[0],
                z_chi2_band[1],
                color="C1",
                alpha=0.2,
                label=r"$\chi^2$ null: 68% of signal toys",
            )
        ax.plot(x, z_chi2, marker="s", color="C1", label=r"$\chi^2$ null: median")
        measured = ~bound
        ax.plot(x[measured], z_toys[measured], marker="o", color="C0", label="toy null: median")
        if bound.any():
            # The bounds joined to the last measured point by a dashed line, never a solid one.
            joined = np.flatnonzero(measured)[-1:].tolist() + np.flatnonzero(bound).tolist()
            joined = sorted(joined)
            ax.plot(x[joined], z_toys[joined], linestyle="--", color="C0")
            ax.plot(
                x[bound],
                z_toys[bound],
                linestyle="none",
                marker="^",
                markersize=12,
                color="C0",
                label="toy null: lower bound\n(no null toy beyond)",
            )
        ax.set_xlabel("injected signal fraction s\n(expected signal / background events)")
        ax.set_ylabel("median one-sided Z")
        if n_expected is not None:
            top = ax.secondary_xaxis(
                "top", functions=(lambda f: f * n_expected, lambda n: n / n_expected)
            )
            top.set_xlabel("expected signal events", fontsize="small")
        _title(ax, title)
        legend_outside(ax)
    return figure
