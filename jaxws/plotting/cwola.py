"""Figures of the CWoLa studies: final vs initial significance, ROC, SIC, no-signal control.

The significance curves follow Figs. 3-7 of the CWoLa transfer/meta paper
(../shared/seeds/001): final significance (after the classifier cut) against initial
significance (before it), mean and standard deviation over pseudo-experiments, one curve per
method, with the dotted slope-1 line Z_final = Z_initial (the cut gains nothing).

Style: mplhep's CMS style for every figure (no experiment label: these are not CMS results).
Every function draws on a given Axes or, with ax=None, on a new Figure built without pyplot
(no global figure registry to leak), and returns the Figure. No file IO here: the tracker
saves figures (`Tracker.save_figure`).

Fit for a talk: every log axis is labelled with plain numbers at 1, 2, 5 (or every integer)
times a power of ten, chosen from the axis range so that any range shows at least two labels
and labels never crowd (`readable_log_axis`); legends sit outside the axes, to the right, so
they never cover data; bands and error bars name what they are (spread over how many
pseudo-experiments) and stay inside physical bounds (an efficiency ratio is never negative);
a neutral line (`sample_label`) names the sample, the events and the number of
pseudo-experiments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from numpy.typing import ArrayLike

from jaxws.plotting.style import (
    _axes,
    _check_scale,
    _readable_log_axes,
    _runs_mean_std,
    _set_label,
    legend_outside,
    style,
)
from jaxws.stats.roc import RocCurve, SicCurve, significance_improvement

SLOPE_ONE_GID = "slope_one"  # gid of the slope-1 reference line, for finding it in tests


def significance_curve(
    ax: Axes | None,
    initial_z: ArrayLike,
    final_z_runs_by_method: Mapping[str, np.ndarray],
    *,
    linestyles: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    scale: str = "log",
    discovery_z: float | None = None,
    title: str | None = None,
    injections: ArrayLike | None = None,
) -> Figure:
    """Final vs initial significance: mean line, markers and +-1 standard deviation band.

    The band is the sample standard deviation (ddof=1) over pseudo-experiments, i.e. the
    spread from both training and event sampling, as in the paper. Each method has one legend
    entry (line, marker and band together); what the band is stands in the legend's title.

    Args:
        ax: Axes to draw on, or None for a new Figure.
        initial_z: initial significance of each signal injection, shape (n_points,).
        final_z_runs_by_method: method name -> final significance, shape (n_points, n_runs).
        linestyles: optional method -> matplotlib linestyle (the paper: solid vs dashed).
        colors: optional method -> colour.
        scale: "log" (both axes) or "linear".
        discovery_z: if given, a horizontal line at that final significance (e.g. 5).
        title: optional line above the axes; `sample_label` makes a neutral one.
        injections: optional injected signal events per point, shape (n_points,): labelled on
            a second x axis at the top, at each point's initial significance.

    Returns:
        The Figure.
    """
    _check_scale(scale)
    initial_z = np.asarray(initial_z, dtype=np.float64)
    if initial_z.ndim != 1 or initial_z.size == 0:
        raise ValueError(f"initial_z must be a non-empty 1-d array, got shape {initial_z.shape}")
    if not final_z_runs_by_method:
        raise ValueError("final_z_runs_by_method is empty")
    if injections is not None:
        injections = np.asarray(injections)
        if injections.shape != initial_z.shape:
            raise ValueError(
                f"injections must have the shape of initial_z {initial_z.shape}, "
                f"got {injections.shape}"
            )
    order = np.argsort(initial_z)
    linestyles = linestyles or {}
    colors = colors or {}
    with style():
        ax = _axes(ax)
        low = [initial_z.min()]
        handles, labels, n_runs = [], [], set()
        for method, runs in final_z_runs_by_method.items():
            runs = np.asarray(runs, dtype=np.float64)
            if runs.ndim != 2 or runs.shape[0] != initial_z.size or runs.shape[1] == 0:
                raise ValueError(
                    f"final significance of {method!r} must have shape (n_points={initial_z.size},"
                    f" n_runs), got {runs.shape}"
                )
            n_runs.add(runs.shape[1])
            mean, std = _runs_mean_std(runs[order])
            (line,) = ax.plot(
                initial_z[order],
                mean,
                linestyle=linestyles.get(method, "-"),
                color=colors.get(method),
                marker="o",
                markersize=5,
                label=method,
            )
            band = ax.fill_between(
                initial_z[order],
                mean - std,
                mean + std,
                color=line.get_color(),
                alpha=0.25,
                label=f"_{method} band",  # in the legend through the method's entry
            )
            handles.append((band, line))
            labels.append(method)
            low.append(np.min(mean - std))
        # Over the initial-significance range, down to the lowest band edge (log: > 0).
        positive = [v for v in low if v > 0]
        start = min(positive, default=initial_z.min()) if scale == "log" else 0.0
        stop = initial_z.max()
        (slope,) = ax.plot(
            [start, stop],
            [start, stop],
            linestyle=":",
            color="black",
            label="slope 1 (no gain)",
            gid=SLOPE_ONE_GID,
        )
        handles.append(slope)
        labels.append(slope.get_label())
        if discovery_z is not None:
            discovery = ax.axhline(
                discovery_z, color="grey", linewidth=1, label=f"{discovery_z:g}$\\sigma$"
            )
            handles.append(discovery)
            labels.append(discovery.get_label())
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        if scale == "log":
            _readable_log_axes(ax)
        ax.set_xlabel("Initial significance [$\\sigma$]")
        ax.set_ylabel("Final significance [$\\sigma$]")
        if injections is not None:
            top = ax.secondary_xaxis("top")
            top.set_xticks(initial_z, labels=[f"{n:g}" for n in injections])
            top.xaxis.set_minor_locator(NullLocator())
            top.set_xlabel("Injected signal events", fontsize="small")
            top.tick_params(labelsize="small")
        _set_label(ax, title)
        runs_text = " or ".join(str(n) for n in sorted(n_runs))
        legend_outside(
            ax,
            handles=handles,
            labels=labels,
            title=f"mean, $\\pm1$ s.d.\nover {runs_text} pseudo-exp.",
            title_fontsize="small",
            fontsize="small",
        )
    return ax.figure


def roc_figure(
    ax: Axes | None,
    curves: Mapping[str, RocCurve],
    *,
    rejection: bool = True,
    show_random: bool = True,
) -> Figure:
    """ROC curves, one per label.

    Args:
        ax: Axes to draw on, or None for a new Figure.
        curves: label -> RocCurve.
        rejection: True for the HEP form (x = eps_s, y = 1 / eps_b, log y; points with
            eps_b = 0 are left out), False for eps_s against eps_b.
        show_random: draw the random classifier (eps_s = eps_b), dotted.

    Returns:
        The Figure.
    """
    if not curves:
        raise ValueError("curves is empty")
    with style():
        ax = _axes(ax)
        for label, curve in curves.items():
            eps_b, eps_s = curve.background_efficiency, curve.signal_efficiency
            if rejection:
                keep = eps_b > 0
                ax.plot(eps_s[keep], 1.0 / eps_b[keep], label=label)
            else:
                ax.plot(eps_b, eps_s, label=label)
        if show_random:
            grid = np.linspace(0.0, 1.0, 201)
            if rejection:
                ax.plot(grid[1:], 1.0 / grid[1:], ":", color="black", label="random")
            else:
                ax.plot(grid, grid, ":", color="black", label="random")
        if rejection:
            ax.set_yscale("log")
            ax.set_xlabel("Signal efficiency $\\epsilon_S$")
            ax.set_ylabel("Background rejection $1/\\epsilon_B$")
        else:
            ax.set_xlabel("Background efficiency $\\epsilon_B$")
            ax.set_ylabel("Signal efficiency $\\epsilon_S$")
        if rejection:
            _readable_log_axes(ax)
        legend_outside(ax)
    return ax.figure


def sic_figure(
    ax: Axes | None,
    curves: Mapping[str, RocCurve | SicCurve],
    *,
    references: Mapping[str, float] | None = None,
    min_background_efficiency: float = 0.0,
    show_random: bool = True,
    reference_colors: Mapping[str, str] | None = None,
) -> Figure:
    """SIC = eps_s / sqrt(eps_b) against eps_s, one curve per label.

    Args:
        ax: Axes to draw on, or None for a new Figure.
        curves: label -> RocCurve (converted with `significance_improvement`) or SicCurve.
        references: optional label -> SIC value, drawn as dashed horizontal lines (e.g. the
            SIC an idealised supervised classifier reaches).
        min_background_efficiency: passed to `significance_improvement` for RocCurves.
        show_random: draw the random classifier's SIC = sqrt(eps_s), dotted.
        reference_colors: optional reference label -> colour, or the label of a curve to take
            its colour (default grey).

    Returns:
        The Figure.
    """
    if not curves:
        raise ValueError("curves is empty")
    with style():
        ax = _axes(ax)
        line_colors: dict[str, Any] = {}
        for label, curve in curves.items():
            if isinstance(curve, RocCurve):
                curve = significance_improvement(
                    curve, min_background_efficiency=min_background_efficiency
                )
            (line,) = ax.plot(curve.signal_efficiency, curve.sic, label=label)
            line_colors[label] = line.get_color()
        if show_random:
            grid = np.linspace(0.0, 1.0, 201)
            ax.plot(grid, np.sqrt(grid), ":", color="black", label="random")
        reference_colors = reference_colors or {}
        for label, value in (references or {}).items():
            color = reference_colors.get(label, "grey")
            color = line_colors.get(color, color)  # a curve's label: that curve's colour
            ax.axhline(value, linestyle="--", color=color, linewidth=1, label=label)
            # named on the line itself too, so it reads without the legend
            ax.text(
                0.99,
                value,
                f"{label}: {value:g}",
                transform=ax.get_yaxis_transform(),
                ha="right",
                va="bottom",
                fontsize="x-small",
                color=color,
            )
        ax.set_xlabel("Signal efficiency $\\epsilon_S$")
        ax.set_ylabel("SIC $\\epsilon_S/\\sqrt{\\epsilon_B}$")
        legend_outside(ax)
    return ax.figure


def no_signal_control(
    ax: Axes | None,
    background_efficiencies: ArrayLike,
    signal_efficiencies_by_method: Mapping[str, np.ndarray],
    *,
    n_test_signal: int | None = None,
    n_test_background: int | None = None,
    title: str | None = None,
) -> Figure:
    """What the classifier does with zero injected signal: eps_s / eps_b at each working point.

    With no signal in the training data (signal region vs sidebands of pure background) the
    classifier has nothing to learn, so on the test set it should act like a random one:
    eps_s / eps_b = 1, and the final significance gains nothing over the initial one. The
    plot shows the mean and standard deviation over pseudo-experiments per method, the line
    at 1 and, given the test set sizes, the +-1 sigma band a random classifier shows from
    test sampling alone: sigma(eps_s) = sqrt(eps_b (1 - eps_b) (1/n_test_signal +
    1/n_test_background)). A spread beyond that band is the classifier's accidental
    signal/background separation (from training noise or features correlated with mjj).

    Args:
        ax: Axes to draw on, or None for a new Figure.
        background_efficiencies: the K working points eps_b in (0, 1].
        signal_efficiencies_by_method: method -> eps_s at zero injection, shape (K, n_runs).
        n_test_signal: number of test signal events (for the expectation band).
        n_test_background: number of test background events (for the expectation band).
        title: optional line above the axes (`sample_label`).

    Returns:
        The Figure.
    """
    eps_b = np.asarray(background_efficiencies, dtype=np.float64)
    if eps_b.ndim != 1 or eps_b.size == 0 or np.any(~(eps_b > 0) | ~(eps_b <= 1)):
        raise ValueError(f"background_efficiencies must be 1-d values in (0, 1], got {eps_b}")
    if not signal_efficiencies_by_method:
        raise ValueError("signal_efficiencies_by_method is empty")
    if (n_test_signal is None) != (n_test_background is None):
        raise ValueError("give both n_test_signal and n_test_background, or neither")
    order = np.argsort(eps_b)
    eps_b = eps_b[order]
    with style():
        ax = _axes(ax)
        if n_test_signal is not None:
            if n_test_signal <= 0 or n_test_background <= 0:
                raise ValueError("n_test_signal and n_test_background must be positive")
            sigma = np.sqrt(eps_b * (1 - eps_b) * (1.0 / n_test_signal + 1.0 / n_test_background))
            ax.fill_between(
                eps_b,
                np.maximum(1 - sigma / eps_b, 0.0),
                np.minimum(1 + sigma / eps_b, 1.0 / eps_b),
                color="grey",
                alpha=0.3,
                label="random classifier, $\\pm1\\sigma$ (test sampling)",
            )
        ax.axhline(1.0, linestyle=":", color="black", label="random classifier")
        for method, runs in signal_efficiencies_by_method.items():
            runs = np.asarray(runs, dtype=np.float64)
            if runs.ndim != 2 or runs.shape[0] != eps_b.size or runs.shape[1] == 0:
                raise ValueError(
                    f"signal efficiencies of {method!r} must have shape (K={eps_b.size}, n_runs),"
                    f" got {runs.shape}"
                )
            if np.any((runs < 0) | (runs > 1)):
                raise ValueError(f"signal efficiencies of {method!r} must lie in [0, 1]")
            mean, std = _runs_mean_std(runs[order] / eps_b[:, None])
            # eps_s in [0, 1], so the ratio lies in [0, 1 / eps_b]: the bars stop there
            lower = np.minimum(std, mean)
            upper = np.minimum(std, 1.0 / eps_b - mean)
            ax.errorbar(
                eps_b,
                mean,
                yerr=np.stack([lower, upper]),
                marker="o",
                capsize=3,
                label=f"{method}: mean, $\\pm1$ s.d. over {runs.shape[1]} pseudo-experiments",
            )
        ax.set_xscale("log")
        _readable_log_axes(ax)
        ax.set_xlabel("Background efficiency $\\epsilon_B$")
        ax.set_ylabel("$\\epsilon_S/\\epsilon_B$ at zero injected signal")
        _set_label(ax, title)
        legend_outside(ax)
    return ax.figure


def sculpting_figure(results: Mapping[str, Any], label: str) -> Figure:
    """Background efficiency against mjj after the no-signal classifiers' cuts.

    Mean and standard deviation over members, one panel per target efficiency, the signal
    region shaded.

    Args:
        results: method name -> its `jaxws.methods.sculpting.Sculpting` numbers (all with
            the same target efficiencies and mjj bins).
        label: the figure's title line, e.g. from `sample_label`.

    Returns:
        The Figure.
    """
    first = next(iter(results.values()))
    fig = Figure(figsize=(5.0 * len(first.efficiencies), 4.0))
    axes = fig.subplots(1, len(first.efficiencies), squeeze=False)[0]
    centres = 0.5 * (first.mjj_bins[1:] + first.mjj_bins[:-1])
    for k, (ax, eps) in enumerate(zip(axes, first.efficiencies, strict=True)):
        ax.axvspan(4700, 5500, color="0.92", label="signal region")
        ax.axhline(eps, color="k", linestyle=":", label=f"target {eps:g}")
        for method, result in results.items():
            values = result.efficiency_by_mjj[:, k, :]
            mean = np.nanmean(values, axis=0)
            spread = np.nanstd(values, axis=0)
            ax.errorbar(centres, mean, yerr=spread, marker="o", ms=3, capsize=2, label=method)
        ax.set_xlabel(r"$m_{jj}$ [GeV]")
        ax.set_ylabel("background efficiency after the cut")
        ax.set_ylim(0, max(3 * eps, np.nanmax(first.efficiency_by_mjj[:, k]) * 1.2))
        ax.set_title(f"no-signal classifiers, eps_B(SR) = {eps:g}", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(label, fontsize=10)
    fig.tight_layout()
    return fig
