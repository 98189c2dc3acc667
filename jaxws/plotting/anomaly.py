"""Figures of the anomaly-aware search (Scaffidi and Trotta, DARWIN, arXiv:2410.00755).

The latent view of the background VAE (axes named by what they encode), the TS distributions,
the median p-value of H0 versus the expected signal count (the seed's model-independent t
first, the model-dependent q0 with a matched and a mismatched template) and versus the score
weight R (the seed's Fig. 8). p-values come from toys: each median has its 68% toy band, and a
median at the toy floor 1 / (1 + n) is only an upper bound, drawn as a down-triangle.

Same conventions as the other figures (`jaxws.plotting`): the package's style, readable log
axes, legends outside the axes, no pyplot and no file IO.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jaxws.plotting import legend_outside, readable_log_axis, style


def _figure(width: float = 8.0) -> tuple[Figure, Axes]:
    """A Figure of one Axes; wider ones leave room for a legend outside the axes."""
    with style():
        fig = Figure(figsize=(width, 7))
        ax = fig.subplots()
    return fig, ax


def _readable_log_axes(ax: Axes) -> None:
    for axis, scale, limits in (
        (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
        (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
    ):
        if scale == "log":
            readable_log_axis(axis, *sorted(limits))


def _title(ax: Axes, title: str | None) -> None:
    if title:
        ax.set_title(title, fontsize="small", loc="left", wrap=True)


def latent_figure(
    background: np.ndarray,
    energy: np.ndarray,
    signals: Mapping[str, np.ndarray],
    encoding: Mapping[str, list[float]],
) -> Figure:
    """Posterior means (first two latent axes): background coloured by recoil energy.

    Axis labels name the physics quantity each axis is most correlated with (|Spearman rho|).

    Args:
      background: (N, latent_dim) posterior means of background events.
      energy: (N,) their recoil energies (keV).
      signals: label -> (M, latent_dim) posterior means of a signal sample.
      encoding: quantity -> Spearman rho of each latent axis with it.

    Returns:
      The Figure.
    """
    with style():
        fig, ax = _figure()
        second = 1 if background.shape[1] > 1 else 0
        for name, z in signals.items():
            ax.scatter(z[:, 0], z[:, second], s=2, alpha=0.15, label=name)
        points = ax.scatter(
            background[:, 0], background[:, second], s=2, c=energy, cmap="viridis", alpha=0.5
        )
        fig.colorbar(points, ax=ax, label="ER recoil energy [keV]")

        def label(axis: int) -> str:
            name = max(encoding, key=lambda k: abs(encoding[k][axis]))
            return rf"$\mu_{{z,{axis + 1}}}$ ($\rho$ = {encoding[name][axis]:+.2f} with {name})"

        ax.set_xlabel(label(0), fontsize="small")
        ax.set_ylabel(label(second), fontsize="small")
        # Above the axes: the colour bar takes the right-hand side.
        ax.legend(
            markerscale=5, fontsize="x-small", loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=2
        )
    return fig


def score_figure(background: np.ndarray, signals: Mapping[str, np.ndarray], r: float) -> Figure:
    """Normalised TS histograms of background and each signal sample.

    Args:
      background: (N,) background scores.
      signals: label -> scores of a signal sample.
      r: the score weight R (for the axis label).

    Returns:
      The Figure.
    """
    with style():
        fig, ax = _figure(11.0)
        everything = np.concatenate([background, *signals.values()])
        bins = np.linspace(*np.percentile(everything, [0.1, 99.9]), 60)
        ax.hist(background, bins=bins, density=True, histtype="step", label="ER (bkg)")
        for name, ts in signals.items():
            ax.hist(ts, bins=bins, density=True, histtype="step", label=name)
        ax.set_xlabel(f"TS = -ELBO + R H_B (R = {r:g})")
        ax.set_ylabel("density")
        ax.set_yscale("log")
        _readable_log_axes(ax)
        legend_outside(ax, fontsize="small")
    return fig


def _p_curve(ax: Axes, x: np.ndarray, summary: Mapping, label: str, **line_style: object) -> None:
    """Median p with its 68% toy band; values at the toy floor drawn as bounds (down-triangles)."""
    median, capped = np.asarray(summary["median_p"]), np.asarray(summary["at_cap"], bool)
    (line,) = ax.plot(x, median, label=label, **line_style)
    ax.fill_between(x, summary["p_low"], summary["p_high"], color=line.get_color(), alpha=0.2)
    if np.any(capped):
        ax.plot(
            np.asarray(x)[capped],
            median[capped],
            linestyle="none",
            marker="v",
            markersize=11,
            color=line.get_color(),
        )


def _finish_p_axes(
    ax: Axes, floor: float, ylabel: str, title: str | None, values: list[np.ndarray]
) -> None:
    """Log p axis over the data's range, title, legend.

    The y range spans the plotted medians and bands (a factor 1.3 either side, at most 1). The
    toy floor 1/(1 + n) (medians on it are bounds) is a line when it lies within a decade of the
    data and otherwise only named in the legend's title, so it never stretches the axis.
    """
    data = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])
    data = data[np.isfinite(data) & (data > 0)]
    low, high = (float(data.min()), float(data.max())) if data.size else (floor, 1.0)
    legend_title = None
    if floor >= low / 10:
        ax.axhline(floor, color="grey", linestyle=":", label=f"toy floor 1/(1+n) = {floor:.1g}")
        low = min(low, floor)
    else:
        legend_title = f"toy floor 1/(1+n) = {floor:.1g}, below the axis"
    ax.set_yscale("log")
    ax.set_ylim(low / 1.3, min(high * 1.3, 1.0))
    ax.set_ylabel(ylabel, fontsize="small")
    _readable_log_axes(ax)
    _title(ax, title)
    legend_outside(ax, fontsize="x-small", title=legend_title, title_fontsize="x-small")


def sensitivity_figure(
    curves: Mapping[str, tuple[Mapping, np.ndarray, dict]], floor: float, title: str | None = None
) -> Figure:
    """Median p of H0 versus expected signal count (toys, 68% band; triangles: p < floor).

    Args:
      curves: label -> (`median_p_value` summary over rates, rates, matplotlib line style).
      floor: the toy floor 1 / (1 + n).
      title: a line naming the sample, or None.

    Returns:
      The Figure.
    """
    with style():
        fig, ax = _figure(14.0)
        values = []
        for label, (summary, rates, line_style) in curves.items():
            _p_curve(ax, rates, summary, label, **line_style)
            values += [summary["median_p"], summary["p_low"], summary["p_high"]]
        ax.set_xlabel("expected signal events s")
        _finish_p_axes(ax, floor, "median p-value of H0 (toys)", title, values)
    return fig


def sensitivity_curves(
    curves: Mapping[str, dict], r: float, mass: float, signal_mass: float, template_mass: float
) -> dict[str, tuple[Mapping, np.ndarray, dict]]:
    """The curves of `sensitivity_figure` from the method's sensitivity cases, labelled.

    Args:
      curves: case -> `median_sensitivity` result for the cases "r0", "r", "matched_heavy"
        and "mismatch".
      r: the configured R.
      mass: the benchmark mass of "r0" and "r" (GeV).
      signal_mass: the injected mass of the mismatch cases.
      template_mass: the template's mass of the "mismatch" case.

    Returns:
      label -> (summary, rates, line style), the model-independent t first.
    """
    rates = curves["r"]["signal_rates"]
    return {
        f"model-independent t, R = 0, m = {mass:g} GeV": (
            curves["r0"]["gof"],
            rates,
            {"marker": "o"},
        ),
        f"model-independent t, R = {r:g}, m = {mass:g} GeV": (
            curves["r"]["gof"],
            rates,
            {"marker": "o"},
        ),
        f"model-dependent q0, R = {r:g}, template = signal = {mass:g} GeV": (
            curves["r"]["q0"],
            rates,
            {"linestyle": "--", "marker": "s"},
        ),
        f"model-dependent q0, template {signal_mass:g} GeV on {signal_mass:g} GeV signal": (
            curves["matched_heavy"]["q0"],
            rates,
            {"linestyle": "--", "marker": "^"},
        ),
        f"model-dependent q0, template {template_mass:g} GeV on {signal_mass:g} GeV signal": (
            curves["mismatch"]["q0"],
            rates,
            {"linestyle": ":", "marker": "x"},
        ),
    }


def best_r_text(scan: dict, statistic: str, benchmark: int) -> str:
    """The best R of one benchmark in words, naming ties and bounds at the toy floor.

    Args:
      scan: `jaxws.stats.anomaly.scan_score_weight`'s result.
      statistic: "gof" or "q0".
      benchmark: index of the benchmark.

    Returns:
      e.g. "best R = 30", "best R = 30 or 100 (tied)" or "p < 0.0005 for R = 30, 100".
    """
    # From the medians themselves, so results saved before best_r_tied_* existed read the same.
    median = np.asarray(scan[statistic]["median_p"])[:, benchmark]
    best = int(np.argmin(median))
    tied = median == median[best]
    values = ", ".join(f"{r:g}" for r in np.asarray(scan["r_values"])[tied])
    if bool(np.asarray(scan[statistic]["at_cap"])[best, benchmark]):
        return f"p < {scan[statistic]['floor']:.1g} for R = {values}"
    if tied.sum() > 1:
        return f"best R = {values.replace(', ', ' or ')} (tied)"
    return f"best R = {np.asarray(scan['r_values'])[best]:g}"


def r_scan_figure(
    scan: dict, masses: tuple[float, ...], statistic: str = "gof", title: str | None = None
) -> Figure:
    """Median p of H0 versus R per benchmark, 68% band (the seed's Fig. 8).

    Args:
      scan: `jaxws.stats.anomaly.scan_score_weight`'s result.
      masses: the benchmarks' masses (GeV), in the scan's order.
      statistic: "gof" (model-independent t) or "q0" (model-dependent).
      title: a line naming the sample, or None.

    Returns:
      The Figure.
    """
    with style():
        fig, ax = _figure(13.0)
        r = np.asarray(scan["r_values"])
        x = np.where(r > 0, r, np.min(r[r > 0]) / 10 if np.any(r > 0) else 1.0)
        summary = scan[statistic]
        values = []
        for j, mass in enumerate(masses):
            column = {k: np.asarray(v)[:, j] for k, v in summary.items() if k != "floor"}
            values += [column["median_p"], column["p_low"], column["p_high"]]
            _p_curve(
                ax, x, column, f"m = {mass:g} GeV ({best_r_text(scan, statistic, j)})", marker="o"
            )
        ax.set_xscale("log")
        kind = "model-independent t" if statistic == "gof" else "model-dependent q0"
        ax.set_xlabel("R (R = 0 drawn at the left edge)")
        _finish_p_axes(ax, summary["floor"], f"median p of H0 ({kind})", title, values)
    return fig


def null_figure(calibration: Mapping[float, dict]) -> Figure:
    """Null p-values of fresh background-only data sets (should be uniform).

    Args:
      calibration: `jaxws.methods.anomaly.null_calibration`'s result.

    Returns:
      The Figure.
    """
    with style():
        fig, ax = _figure(11.0)
        bins = np.linspace(0, 1, 21)
        for r, entry in calibration.items():
            summary = entry["gof"]
            ax.hist(
                entry["p_gof"],
                bins=bins,
                histtype="step",
                label=f"R = {r:g}: KS p = {summary['ks_pvalue']:.2f}",
            )
        n = next(iter(calibration.values()))["gof"]["n"]
        ax.axhline(n / 20, color="grey", linestyle=":", label="uniform")
        ax.set_xlabel("p-value of fresh background-only data (model-independent t)")
        ax.set_ylabel("data sets")
        legend_outside(ax, fontsize="x-small")
    return fig
