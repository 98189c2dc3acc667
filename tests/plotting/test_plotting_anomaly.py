"""Figures of the anomaly-aware search (jaxws.plotting.anomaly), drawn from synthetic toys."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from jaxws.plotting import anomaly as figures
from jaxws.stats import anomaly as anomaly_stats


def drawn(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


@pytest.fixture(scope="module")
def summaries():
    """median_p_value summaries at 3 rates; the largest rate sits at the toy floor."""
    rng = np.random.default_rng(0)
    null = rng.normal(size=199)
    signal = np.stack([rng.normal(shift, 1.0, 50) for shift in (0.0, 1.5, 50.0)])
    return anomaly_stats.median_p_value(null, signal)


def triangles(ax):
    return [line for line in ax.get_lines() if line.get_marker() == "v"]


def test_sensitivity_figure_marks_bounds_and_keeps_the_legend_outside(summaries):
    rates = np.array([0.0, 4.0, 16.0])
    curve = {"signal_rates": rates, "gof": summaries, "q0": summaries}
    cases = {name: curve for name in ("r0", "r", "matched_heavy", "mismatch")}
    labelled = figures.sensitivity_curves(cases, 10.0, 50.0, 100.0, 30.0)
    assert next(iter(labelled)).startswith("model-independent t")  # the seed's statistic first
    fig = figures.sensitivity_figure(labelled, summaries["floor"], "TPC toy, signal WIMP")
    (ax,) = fig.axes
    renderer = drawn(fig)
    assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    assert summaries["at_cap"].tolist() == [False, False, True]
    for line in triangles(ax):  # one bound per curve, at the capped rate only
        np.testing.assert_array_equal(line.get_xdata(), [16.0])
    assert len(triangles(ax)) == len(labelled)
    for tick in ax.yaxis.get_major_ticks():  # plain numbers on the log axis
        if tick.label1.get_text():
            float(tick.label1.get_text())


def test_r_scan_figure_draws_r_zero_at_the_left_edge_and_names_bounds(summaries):
    def cell(i):  # two benchmarks with the same medians
        cells = {k: np.array([[summaries[k][i]] * 2]) for k in anomaly_stats.p_values.SUMMARY_KEYS}
        return {**cells, "floor": summaries["floor"]}

    per_r = [
        {
            "r_values": np.array([r]),
            "signal_rates": np.array([4.0, 4.0]),
            "overflow": False,
            "gof": cell(i),
            "q0": cell(i),
        }
        for i, r in enumerate((0.0, 1.0, 10.0))
    ]
    fig = figures.r_scan_figure(anomaly_stats.join_scans(per_r), (30.0, 50.0), "gof")
    (ax,) = fig.axes
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0.1, 1.0, 10.0])
    renderer = drawn(fig)
    legend = ax.get_legend()
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    # R = 10 reaches the toy floor: the legend gives a bound, not a best R.
    assert "m = 30 GeV (p < 0.005 for R = 10)" in [t.get_text() for t in legend.get_texts()]


def test_null_and_score_figures_draw():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=40)
    calibration = {0.0: {"gof": anomaly_stats.uniformity_summary(p), "p_gof": p}}
    for fig in (
        figures.null_figure(calibration),
        figures.score_figure(rng.normal(size=500), {"NR": rng.normal(2.0, 1.0, 200)}, 10.0),
        figures.latent_figure(
            rng.normal(size=(100, 2)),
            rng.uniform(1, 100, 100),
            {"NR": rng.normal(size=(50, 2))},
            {"energy": [0.8, -0.1], "radius": [0.1, 0.9]},
        ),
    ):
        ax = fig.axes[0]
        renderer = drawn(fig)
        assert (
            not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
        )


def test_r_scan_y_range_follows_the_data_not_the_toy_floor():
    """Medians between 0.3 and 0.6 with a floor of 1/2001: the axis spans the data, under a
    decade, and names the floor in the legend instead of drawing it four decades below."""
    median = np.array([[0.3, 0.6], [0.4, 0.5], [0.35, 0.45]])
    summary = {
        "median_p": median,
        "p_low": median * 0.9,
        "p_high": np.minimum(median * 1.1, 1.0),
        "at_cap": np.zeros_like(median, bool),
        "floor": 1 / 2001,
    }
    scan = {"r_values": np.array([0.0, 1.0, 10.0]), "gof": summary, "q0": summary}
    fig = figures.r_scan_figure(scan, (30.0, 100.0), "gof")
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log"
    assert low <= 0.27
    assert 0.66 <= high <= 1.0
    assert np.log10(high / low) < 1
    assert "below the axis" in ax.get_legend().get_title().get_text()
    assert not [line for line in ax.get_lines() if line.get_linestyle() == ":"]
