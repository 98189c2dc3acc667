"""Figures build, render, and contain the data they claim to show (Agg backend)."""

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from jaxws.plotting.cwola import (
    SLOPE_ONE_GID,
    no_signal_control,
    roc_figure,
    sic_figure,
    significance_curve,
)
from jaxws.stats.roc import roc_curve


def renders(fig: Figure) -> bool:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=30)
    return buffer.getvalue().startswith(b"\x89PNG")


def line_labelled(ax, label):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


@pytest.fixture(scope="module")
def runs():
    rng = np.random.default_rng(0)
    initial = np.array([3.0, 0.5, 1.0, 2.0, 5.0])  # unsorted on purpose
    cwola = initial[:, None] * rng.uniform(0.5, 3.0, size=(5, 10))
    transfer = initial[:, None] * rng.uniform(2.0, 6.0, size=(5, 10))
    return initial, {"CWoLa": cwola, "transfer": transfer}


def test_significance_curve_shows_mean_band_and_slope_one(runs):
    initial, by_method = runs
    fig = significance_curve(None, initial, by_method, linestyles={"CWoLa": "--"}, discovery_z=5)
    (ax,) = fig.axes
    order = np.argsort(initial)
    for method, values in by_method.items():
        line = line_labelled(ax, method)
        np.testing.assert_allclose(line.get_xdata(), initial[order])
        np.testing.assert_allclose(line.get_ydata(), values[order].mean(axis=1))
    assert line_labelled(ax, "CWoLa").get_linestyle() == "--"
    # One band per method spanning mean -+ sample standard deviation.
    assert len(bands(ax)) == 2
    cwola = by_method["CWoLa"][order]
    vertices = bands(ax)[0].get_paths()[0].vertices
    mean, std = cwola.mean(axis=1), cwola.std(axis=1, ddof=1)
    np.testing.assert_allclose(vertices[:, 1].min(), (mean - std).min())
    np.testing.assert_allclose(vertices[:, 1].max(), (mean + std).max())
    (slope_one,) = [line for line in ax.get_lines() if line.get_gid() == SLOPE_ONE_GID]
    np.testing.assert_array_equal(slope_one.get_xdata(), slope_one.get_ydata())
    assert slope_one.get_xdata()[-1] == initial.max()
    assert slope_one.get_linestyle() == ":"
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "log"
    assert renders(fig)


def test_significance_curve_on_given_axes_linear(runs):
    initial, by_method = runs
    ax = Figure().subplots(1, 2)[1]
    fig = significance_curve(ax, initial, by_method, scale="linear")
    assert fig is ax.figure
    assert ax.get_xscale() == "linear"
    (slope_one,) = [line for line in ax.get_lines() if line.get_gid() == SLOPE_ONE_GID]
    assert slope_one.get_xdata()[0] == 0.0


def test_significance_curve_refuses_bad_shapes(runs):
    initial, by_method = runs
    with pytest.raises(ValueError, match="CWoLa"):
        significance_curve(None, initial, {"CWoLa": by_method["CWoLa"][:3]})
    with pytest.raises(ValueError, match="scale"):
        significance_curve(None, initial, by_method, scale="symlog")


@pytest.fixture(scope="module")
def curve():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    return roc_curve(rng.normal(size=500) + 1.5 * labels, labels)


def test_roc_figure(curve):
    fig = roc_figure(None, {"CNN": curve})
    ax = fig.axes[0]
    line = line_labelled(ax, "CNN")
    keep = curve.background_efficiency > 0
    np.testing.assert_allclose(line.get_xdata(), curve.signal_efficiency[keep])
    np.testing.assert_allclose(line.get_ydata(), 1 / curve.background_efficiency[keep])
    assert ax.get_yscale() == "log"
    assert renders(fig)
    fig = roc_figure(None, {"CNN": curve}, rejection=False)
    random = line_labelled(fig.axes[0], "random")
    np.testing.assert_array_equal(random.get_xdata(), random.get_ydata())


def test_sic_figure_with_references(curve):
    fig = sic_figure(
        None, {"CNN": curve}, references={"supervised": 3.0}, reference_colors={"supervised": "CNN"}
    )
    ax = fig.axes[0]
    line = line_labelled(ax, "CNN")
    keep = curve.background_efficiency > 0
    np.testing.assert_allclose(
        line.get_ydata(),
        curve.signal_efficiency[keep] / np.sqrt(curve.background_efficiency[keep]),
    )
    np.testing.assert_array_equal(line_labelled(ax, "supervised").get_ydata(), [3.0, 3.0])
    # the published line is named on the plot itself, and the legend covers no curve
    assert "supervised: 3" in [t.get_text() for t in ax.texts]
    # drawn in the colour of the curve it is the reference for
    assert line_labelled(ax, "supervised").get_color() == line.get_color()
    renderer = drawn(fig)
    assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    assert renders(fig)


def test_no_signal_control(curve):
    eps_b = np.array([0.1, 0.01, 0.5])
    rng = np.random.default_rng(2)
    eps_s = eps_b[:, None] * rng.uniform(0.8, 1.2, size=(3, 10))
    fig = no_signal_control(
        None, eps_b, {"CWoLa": eps_s}, n_test_signal=20_000, n_test_background=20_000
    )
    ax = fig.axes[0]
    order = np.argsort(eps_b)
    ratio = (eps_s / eps_b[:, None])[order]
    (errorbar,) = ax.containers
    data_line = errorbar.lines[0]
    np.testing.assert_allclose(data_line.get_xdata(), eps_b[order])
    np.testing.assert_allclose(data_line.get_ydata(), ratio.mean(axis=1))
    assert line_labelled(ax, "random classifier").get_ydata()[0] == 1.0
    # Expectation band, widest at the smallest eps_b: 1 + sqrt(eps_b (1 - eps_b) (2 / 20k)) / eps_b.
    band_top = bands(ax)[0].get_paths()[0].vertices[:, 1].max()
    np.testing.assert_allclose(band_top, 1 + np.sqrt(0.01 * 0.99 * 1e-4) / 0.01)
    assert ax.get_xscale() == "log"
    assert renders(fig)
    with pytest.raises(ValueError, match="both"):
        no_signal_control(None, eps_b, {"CWoLa": eps_s}, n_test_signal=100)
    with pytest.raises(ValueError, match="CWoLa"):
        no_signal_control(None, eps_b, {"CWoLa": eps_s.T})


def drawn(fig: Figure):
    """Draw with Agg and return the renderer (the figures are made without pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def visible_labels(ax, axis, renderer):
    """Tick labels with text inside the view limits, as (text, window extent)."""
    low, high = sorted(ax.get_xlim() if axis is ax.xaxis else ax.get_ylim())
    labels = []
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        if tick.label1.get_visible() and tick.label1.get_text() and low <= tick.get_loc() <= high:
            labels.append((tick.label1.get_text(), tick.label1.get_window_extent(renderer)))
    return labels


@pytest.mark.parametrize(("low", "high"), [(0.3, 0.9), (0.5, 3.0), (0.2, 40.0), (0.01, 500.0)])
def test_log_axes_have_readable_non_overlapping_labels_at_any_range(low, high):
    rng = np.random.default_rng(3)
    initial = np.geomspace(low, high, 5)
    fig = significance_curve(
        None, initial, {"CWoLa": initial[:, None] * rng.uniform(0.9, 1.1, (5, 4))}
    )
    (ax,) = fig.axes
    renderer = drawn(fig)
    for axis in (ax.xaxis, ax.yaxis):
        labels = visible_labels(ax, axis, renderer)
        assert len(labels) >= 2, [text for text, _ in labels]
        for i, (_, box) in enumerate(labels):
            for text, other in labels[i + 1 :]:
                assert not box.overlaps(other), text
        for text, _ in labels:  # plain numbers, readable from the back of the room
            float(text)


def test_legends_sit_outside_the_axes_and_name_the_pseudo_experiments(runs, curve):
    initial, by_method = runs
    figures = [
        significance_curve(None, initial, by_method),
        roc_figure(None, {"CNN": curve}),
        sic_figure(None, {"CNN": curve}),
        no_signal_control(None, [0.01, 0.1], {"CWoLa": np.full((2, 3), 0.05)}),
    ]
    for fig in figures:
        ax = fig.axes[0]
        renderer = drawn(fig)
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer))
    legend = figures[0].axes[0].get_legend()
    assert "over 10 pseudo-exp." in legend.get_title().get_text()


def test_significance_legend_has_one_entry_per_method_markers_and_injection_axis(runs):
    initial, by_method = runs
    injections = np.array([60, 10, 20, 40, 100])
    fig = significance_curve(None, initial, by_method, discovery_z=5, injections=injections)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == len(set(texts)), texts  # no entry twice
    assert texts == ["CWoLa", "transfer", "slope 1 (no gain)", "5$\\sigma$"]
    assert "s.d." in ax.get_legend().get_title().get_text()
    for method in by_method:  # a marker at every injection
        line = line_labelled(ax, method)
        assert line.get_marker() == "o"
        assert len(line.get_xdata()) == len(initial)
    (top,) = [child for child in ax.child_axes]
    labels = [t.get_text() for t in top.get_xticklabels()]
    assert labels == [str(n) for n in injections]
    np.testing.assert_allclose(top.get_xticks(), initial)
    assert "Injected signal" in top.get_xlabel()
    assert renders(fig)


def test_efficiency_ratio_error_bars_respect_physical_bounds():
    eps_b = np.array([0.01, 0.1, 0.5])
    # a wide spread with efficiencies at both bounds: mean - s.d. < 0 and mean + s.d. > 1/eps_b
    eps_s = np.array([[0.0, 0.0, 0.0, 0.2], [0.0, 0.0, 0.9, 1.0], [0.0, 1.0, 1.0, 1.0]])
    mean = (eps_s / eps_b[:, None]).mean(axis=1)
    std = (eps_s / eps_b[:, None]).std(axis=1, ddof=1)
    assert np.any(mean - std < 0)
    assert np.any(mean + std > 1 / eps_b)
    fig = no_signal_control(None, eps_b, {"CWoLa": eps_s}, n_test_signal=50, n_test_background=50)
    ax = fig.axes[0]
    (errorbar,) = ax.containers
    bars = errorbar.lines[2][0].get_segments()
    for (x, y_low), (_, y_high) in bars:
        assert y_low >= 0.0
        assert y_high <= 1.0 / x + 1e-12
    band = bands(ax)[0].get_paths()[0].vertices
    assert band[:, 1].min() >= 0.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        no_signal_control(None, eps_b, {"CWoLa": eps_s + 0.5})


def test_sample_label_names_sample_events_and_pseudo_experiments(runs):
    from jaxws.plotting import sample_label

    label = sample_label("simulator", "id_lambda10", 12, 1000, 5)
    assert label == (
        "simulator, signal id_lambda10, 12x12 images, 1,000 SR background events, "
        "5 pseudo-experiments per point"
    )
    initial, by_method = runs
    fig = significance_curve(None, initial, by_method, title=label)
    assert fig.axes[0].get_title(loc="left") == label
