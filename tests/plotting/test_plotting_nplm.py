"""NPLM figures: Z from toys that is only a bound is drawn as one."""

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
