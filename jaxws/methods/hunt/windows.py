"""The hunt's binning in mjj and its sliding windows (signal region plus sidebands).

Bins grow with mjj like the detector's dijet mass resolution: edges m_k = m_0 (1 + w)^k with
w the relative bin width (default 2 %, about the simulated resonance's width of 100 GeV at
5.4 TeV). A window is `signal_region_bins` contiguous bins (the SR hypothesis) with
`sideband_bins` bins on each side (the sidebands, SB); windows slide by `step_bins`. In each
window the classifier learns SR against SB, and the background fit uses the window's bins with
the SR left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxws.stats.dijet_fit import Binning


@dataclasses.dataclass(frozen=True)
class HuntLayout:
    """Bins and windows of a hunt.

    Attributes:
        mjj_range: (low, high) GeV of the spectrum.
        relative_bin_width: w, bin k spans m_0 (1 + w)^k to m_0 (1 + w)^(k + 1) (the number
            of bins is rounded; the last bin ends at `mjj_range[1]`, 0.5 to 1.5 bins wide).
        signal_region_bins: SR width in bins.
        sideband_bins: bins on each side of the SR.
        step_bins: windows slide by this many bins.
    """

    mjj_range: tuple[float, float] = (3500.0, 7000.0)
    relative_bin_width: float = 0.02
    signal_region_bins: int = 4
    sideband_bins: int = 4
    step_bins: int = 2

    def __post_init__(self):
        low, high = self.mjj_range
        if not 0 < low < high:
            raise ValueError(f"hunt: mjj_range must be 0 < low < high, got {self.mjj_range}")
        if not 0 < self.relative_bin_width < 1:
            raise ValueError("hunt: relative_bin_width must lie in (0, 1)")
        for name in ("signal_region_bins", "sideband_bins", "step_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"hunt: {name} must be >= 1, got {getattr(self, name)}")
        if self.n_windows < 1:
            raise ValueError("hunt: the mjj range holds no window; widen it or shrink the windows")

    @property
    def edges(self) -> np.ndarray:
        """Bin edges in GeV."""
        low, high = self.mjj_range
        n = max(1, round(np.log(high / low) / np.log1p(self.relative_bin_width)))
        edges = low * (1.0 + self.relative_bin_width) ** np.arange(n + 1)
        edges[-1] = high
        return edges

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return self.edges.size - 1

    @property
    def window_bins(self) -> int:
        """Bins in one window (SR + both sidebands)."""
        return self.signal_region_bins + 2 * self.sideband_bins

    @property
    def n_windows(self) -> int:
        """Number of windows that fit in the range."""
        return max(0, (self.n_bins - self.window_bins) // self.step_bins + 1)

    def window(self, index: int) -> tuple[int, int, int, int]:
        """(first bin, SR first bin, SR end bin, end bin) of window `index` (ends exclusive)."""
        first = index * self.step_bins
        sr_first = first + self.sideband_bins
        sr_end = sr_first + self.signal_region_bins
        return first, sr_first, sr_end, sr_end + self.sideband_bins

    def window_binning(self, index: int) -> tuple[Binning, np.ndarray]:
        """The window's bins and its SR mask (window_bins,)."""
        first, sr_first, sr_end, end = self.window(index)
        mask = np.zeros(end - first, bool)
        mask[sr_first - first : sr_end - first] = True
        return Binning(self.edges[first : end + 1]), mask

    def signal_region_centre(self, index: int) -> float:
        """Geometric centre of the window's SR in GeV."""
        _, sr_first, sr_end, _ = self.window(index)
        return float(np.sqrt(self.edges[sr_first] * self.edges[sr_end]))

    def regions(self, mjj: np.ndarray) -> np.ndarray:
        """(n_windows, N) int8 per event: 1 in the window's SR, 0 in its SB, -1 outside."""
        bins = np.searchsorted(self.edges, np.asarray(mjj), side="right") - 1
        bins = np.where((mjj >= self.edges[0]) & (mjj < self.edges[-1]), bins, -1)
        out = np.full((self.n_windows, bins.size), -1, np.int8)
        for w in range(self.n_windows):
            first, sr_first, sr_end, end = self.window(w)
            out[w, (bins >= first) & (bins < end)] = 0
            out[w, (bins >= sr_first) & (bins < sr_end)] = 1
        return out
