"""Figures, one module per method family; `style` holds what every figure shares.

No file IO here: the tracker saves figures (`Tracker.save_figure`). Every function draws on a
given Axes or, with ax=None, on a new Figure built without pyplot, and returns the Figure.
"""

from jaxws.plotting.cwola import (
    no_signal_control,
    roc_figure,
    sculpting_figure,
    sic_figure,
    significance_curve,
)
from jaxws.plotting.style import legend_outside, readable_log_axis, sample_label, style

__all__ = [
    "legend_outside",
    "no_signal_control",
    "readable_log_axis",
    "roc_figure",
    "sample_label",
    "sculpting_figure",
    "sic_figure",
    "significance_curve",
    "style",
]
