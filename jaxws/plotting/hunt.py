"""Figures of the bump hunt: selected spectra with the sideband fit and pulls; local p-values.

The layout the dijet searches show (CWoLa hunting, PRD 99 (2019) 014038, Figs. 5-6; ATLAS,
PRL 125 (2020) 131801, Fig. 2): per selection efficiency, the selected mjj spectrum of one
window with the dijet fit to its sidebands and the pulls (n - b) / sqrt(b); and the local
p-value against the window's SR centre, one line per efficiency. Built without pyplot; the
tracker saves the figure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from jaxws.plotting.style import legend_outside, style


def hunt_figure(
    edges: np.ndarray,
    windows: list[tuple[int, int, int, int]],
    centres: np.ndarray,
    efficiencies: tuple[float, ...],
    counts: np.ndarray,
    fitted: np.ndarray,
    p_values: np.ndarray,
    shown_window: int,
    converged: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """The hunt's figure.

    Args:
        edges: all bin edges (GeV).
        windows: per window (first bin, SR first, SR end, end) (`HuntLayout.window`).
        centres: (n_windows,) SR centres (GeV).
        efficiencies: the selections.
        counts: (n_windows, n_eff, window_bins) selected counts.
        fitted: (n_windows, n_eff, window_bins) sideband-fit expectations.
        p_values: (n_windows, n_eff) local p-values.
        shown_window: the window whose spectra are drawn (e.g. the most significant).
        converged: (n_windows, n_eff) whether the fits converged (a failed fit is not drawn
            and its p-value is left out).
        title: a line naming the sample.

    Returns:
        The figure: one column per efficiency (spectrum over pulls), then the p-values.
    """
    n_eff = len(efficiencies)
    converged = np.ones(p_values.shape, bool) if converged is None else np.asarray(converged)
    with style():
        fig = Figure(figsize=(6.0 * (n_eff + 1), 8.0))
        grid = fig.add_gridspec(2, n_eff + 1, height_ratios=(3, 1), hspace=0.05, wspace=0.35)
        first, sr_first, sr_end, end = windows[shown_window]
        window_edges = edges[first : end + 1]
        mid = 0.5 * (window_edges[1:] + window_edges[:-1])
        in_sr = np.zeros(end - first, bool)
        in_sr[sr_first - first : sr_end - first] = True
        for e, eps in enumerate(efficiencies):
            top = fig.add_subplot(grid[0, e])
            bottom = fig.add_subplot(grid[1, e], sharex=top)
            n, b = counts[shown_window, e], fitted[shown_window, e]
            top.errorbar(
                mid[~in_sr], n[~in_sr], np.sqrt(n[~in_sr]), fmt="o", ms=3, color="k", label="SB"
            )
            top.errorbar(
                mid[in_sr], n[in_sr], np.sqrt(n[in_sr]), fmt="o", ms=3, color="C3", label="SR"
            )
            ok = bool(converged[shown_window, e])
            if ok:
                top.stairs(b, window_edges, color="C0", label="fit (SB)")
            else:
                top.text(0.5, 0.9, "fit failed", transform=top.transAxes, ha="center")
            top.set_yscale("log")
            top.set_ylim(0.5, max(2.0, 3.0 * n.max()))
            top.set_title(f"efficiency {eps:g}", fontsize=16)
            top.tick_params(labelbottom=False)
            if e == 0:
                top.set_ylabel("events / bin")
                top.legend(fontsize=12, loc="upper right")
            pulls = (n - b) / np.sqrt(np.maximum(b, 1e-9)) if ok else np.zeros_like(n)
            bottom.bar(mid, pulls, width=np.diff(window_edges), color=np.where(in_sr, "C1", "0.5"))
            bottom.xaxis.set_major_locator(MaxNLocator(3))
            bottom.axhline(0, color="k", lw=0.8)
            bottom.set_xlabel("$m_{jj}$ [GeV]")
            if e == 0:
                bottom.set_ylabel("(n - b) / sqrt(b)")
        ax = fig.add_subplot(grid[:, n_eff])
        for e, eps in enumerate(efficiencies):
            shown = np.where(converged[:, e], p_values[:, e], np.nan)
            ax.plot(centres, shown, "o-", ms=4, label=f"eff. {eps:g}")
        ax.set_yscale("log")
        for z in (1, 2, 3, 4, 5):  # one-sided Z = 1 ... 5
            ax.axhline(stats.norm.sf(z), color="0.8", lw=0.7, ls="--")
        ax.set_xlabel("SR centre $m_{jj}$ [GeV]")
        ax.set_ylabel("local p-value")
        ax.axvline(centres[shown_window], color="0.7", ls=":")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        legend_outside(ax, fontsize=12)
        if title:
            fig.suptitle(title, fontsize=14)
        return fig
