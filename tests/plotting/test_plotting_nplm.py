"""NPLM figures: Z from toys that is only a bound is drawn as one."""

import itertools

import numpy as np

from jaxws.plotting.nplm import sensitivity_figure


def test_sensitivity_marks_toy_z_bounds():
    figure = sensitivity_figure(
        [0.05, 0.1, 0.2], [0.8, 1.7, 2.58], [0.5, 1.5, 4.9], "toy", [False, False, True]
    )
    (ax,) = figure.axes
    bounds = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert len(bounds) == 1
    np.testing.assert_array_equal(bounds[0].get_xdata(), [0.2])
    np.testing.assert_array_equal(bounds[0].get_ydata(), [2.58])
    assert "lower bound" in bounds[0].get_label()
    unmarked = sensitivity_figure([0.05, 0.1], [0.8, 1.7], [0.5, 1.5])
    assert not [line for line in unmarked.axes[0].get_lines() if line.get_marker() == "^"]


def test_sensitivity_band_and_dashed_bound_and_signal_axis():
    from matplotlib.collections import PolyCollection

    figure = sensitivity_figure(
        [0.05, 0.1, 0.2],
        [0.8, 1.7, 2.58],
        [0.5, 1.5, 4.9],
        "toy",
        [False, False, True],
        ([0.2, 1.0, 3.9], [1.0, 2.2, 5.8]),
        n_expected=100,
    )
    (ax,) = figure.axes
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    vertices = band.get_paths()[0].vertices
    np.testing.assert_allclose([vertices[:, 1].min(), vertices[:, 1].max()], [0.2, 5.8])
    (measured,) = [line for line in ax.get_lines() if line.get_label() == "toy null: median"]
    np.testing.assert_array_equal(measured.get_xdata(), [0.05, 0.1])  # the bound is not joined
    assert measured.get_linestyle() == "-"
    (dashed,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_array_equal(dashed.get_xdata(), [0.1, 0.2])
    (top,) = ax.child_axes
    assert "signal events" in top.get_xlabel()


def test_null_histogram_log_y_poisson_errors_and_legend_outside():
    from scipy import stats

    from jaxws.plotting.nplm import null_histogram_figure

    t = stats.chi2(13).rvs(200, random_state=np.random.default_rng(0))
    title = "exponential toy, $N_R$ = 2,000, $N(R)$ = 100, 200 null toys; Adam, clip 9.0"
    figure = null_histogram_figure(t, 13, 12.5, "nplm null toys", title)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log"
    (errorbar,) = ax.containers
    counts, edges = np.histogram(t, bins=30, range=(0, max(t.max(), stats.chi2(13).ppf(0.999))))
    y = errorbar.lines[0].get_ydata()
    width = np.diff(edges)[0]
    np.testing.assert_allclose(y, counts[counts > 0] / (200 * width))
    bars = errorbar.lines[2][1]  # (x errors, y errors)
    segments = bars.get_segments()
    np.testing.assert_allclose(
        [seg[1][1] - seg[0][1] for seg in segments], 2 * np.sqrt(counts[counts > 0]) / (200 * width)
    )
    # the lowest bin with one toy lies inside the y range
    assert ax.get_ylim()[0] < 1 / (200 * width)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == len(set(texts))
    assert "N_R" not in ax.get_title(loc="left").replace("$N_R$", "")


def test_sensitivity_figure_saved_with_title_and_top_axis_keeps_its_size():
    """A long title over the top axis stays just above it: the saved figure (tight bounding
    box, as the tracker saves it) is not inflated by empty space (matplotlib's own wrapping
    made it 16.7 x 15.7 inches from an 8 x 6 figure), and no mathtext is split by a line
    break."""
    import io

    from matplotlib.image import imread

    title = (
        "exponential toy, $N_R$ = 2,000, $N(R)$ = 100, 200 null toys; Adam, 8,000 epochs, "
        "rate 0.1, clip 9.0, signal gaussian at 4, 20 pseudo-experiments per point, $a + b$"
    )
    figure = sensitivity_figure(
        [0.05, 0.1, 0.2],
        [0.8, 1.7, 2.58],
        [0.5, 1.5, 4.9],
        title,
        [False, False, True],
        ([0.2, 1.0, 3.9], [1.0, 2.2, 5.8]),
        n_expected=100,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=50, bbox_inches="tight")
    buffer.seek(0)
    height, width = imread(buffer).shape[:2]
    assert height / 50 < 1.5 * 6, (width / 50, height / 50)
    assert width / 50 < 8 + 6, (width / 50, height / 50)  # + the legend outside, at the right
    for line in figure.axes[0].get_title(loc="left").splitlines():
        assert line.count("$") % 2 == 0, line


def test_history_figure_epoch_labels_do_not_overlap():
    """The epochs axis of t against epochs (checkpoints 30-8000, as in experiment=nplm_cpu):
    its tick labels, as drawn, do not run into each other (at 1, 2, 5 x 10^k they did)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from jaxws.plotting.nplm import history_figure

    checkpoints = (30, 100, 300, 1000, 3000, 8000)
    t_history = np.linspace(1, 12, 6)[None, :] + np.arange(8)[:, None]
    figure = history_figure(checkpoints, t_history, 13, 8, "toy")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = figure.axes
    boxes = [
        label.get_window_extent(renderer)
        for label in ax.xaxis.get_ticklabels()
        if label.get_visible() and label.get_text()
    ]
    assert len(boxes) >= 3
    boxes.sort(key=lambda box: box.x0)
    for left, right in itertools.pairwise(boxes):
        assert left.x1 < right.x0, (left, right)
