"""What every jaxws figure shares: mplhep style, readable log axes, legends outside, sample line."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import matplotlib.style
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

STYLE = mplhep.style.CMS


def style() -> AbstractContextManager[None]:
    """Context manager applying this module's style (for figures made elsewhere too)."""
    return matplotlib.style.context(STYLE)


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    return Figure().subplots()


def _runs_mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (ddof=1; 0 for a single run) over the last axis."""
    mean = values.mean(axis=-1)
    if values.shape[-1] < 2:
        return mean, np.zeros_like(mean)
    return mean, values.std(axis=-1, ddof=1)


def _plain_number(value: float, _position: int | None = None) -> str:
    return f"{value:g}"


def readable_log_axis(axis: Axis, low: float, high: float) -> None:
    """Label a log axis with plain numbers (0.5, 1, 2, ...) at a density set by its range.

    Over more than 3 decades only powers of ten are labelled; 1.3-3 decades: 1, 2, 5 x 10^k;
    0.5-1.3 decades: 1, 2, 3, 5 x 10^k; less: every integer multiple of a power of ten. The
    unlabelled minor ticks stay at every integer multiple.

    Args:
        axis: `ax.xaxis` or `ax.yaxis` (on a log-scaled Axes).
        low: the lower axis limit (positive).
        high: the upper axis limit (positive).
    """
    decades = np.log10(high / low) if high > low > 0 else 1.0
    if decades > 3:
        subs = (1.0,)
    elif decades > 1.3:
        subs = (1.0, 2.0, 5.0)
    elif decades > 0.5:
        subs = (1.0, 2.0, 3.0, 5.0)
    else:
        subs = tuple(float(k) for k in range(1, 10))
    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(_plain_number))
    axis.set_minor_locator(LogLocator(base=10.0, subs=tuple(float(k) for k in range(1, 10))))
    axis.set_minor_formatter(NullFormatter())


def _readable_log_axes(ax: Axes) -> None:
    if ax.get_xscale() == "log":
        readable_log_axis(ax.xaxis, *sorted(ax.get_xlim()))
    if ax.get_yscale() == "log":
        readable_log_axis(ax.yaxis, *sorted(ax.get_ylim()))


def legend_outside(ax: Axes, **kwargs: Any) -> Legend:
    """A legend to the right of the axes (never over data; saved with bbox_inches='tight')."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def sample_label(
    sample: str,
    signal: str,
    resolution: int | None = None,
    n_background: int | None = None,
    n_pseudo_experiments: int | None = None,
) -> str:
    """A neutral line naming what was simulated.

    E.g. `simulator, signal id_lambda10, 12x12 images, 1,000 SR background events,
    5 pseudo-experiments per point`; the optional parts are left out when None.
    """
    parts = [sample, f"signal {signal}"]
    if resolution is not None:
        parts.append(f"{resolution}x{resolution} images")
    if n_background is not None:
        parts.append(f"{n_background:,} SR background events")
    if n_pseudo_experiments is not None:
        parts.append(f"{n_pseudo_experiments} pseudo-experiments per point")
    return ", ".join(parts)


def _set_label(ax: Axes, label: str | None) -> None:
    if label:
        ax.set_title(label, fontsize="small", loc="left", wrap=True)


def _check_scale(scale: str) -> None:
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}")
