"""The bump hunt on k-fold scores: selections, background fits, local and global p-values.

CWoLa hunting (Collins, Howe, Nachman, PRD 99 (2019) 014038, Sec. III-IV; ATLAS, PRL 125 (2020)
131801). Conventions:

* Selection at efficiency eps in window w: the threshold is the (1 - eps) quantile of the
  scores of the window's *sideband* events, applied to all of the window's events (SR and SB);
  eps = 1 keeps every event. Under the background-only hypothesis, with a classifier that
  does not learn mjj, a fraction eps of the events of every bin passes, SR included; a signal
  passes more often, which is the excess tested. (Thresholds set from each bin's own events
  would fix every bin's count, SR included, and leave nothing to find.)
* Background fit: the dijet function (`jaxws.stats.dijet_fit`) fitted to the selected
  spectrum in the window's sideband bins; `n_params` 3, 4 or "f_test" (per window and
  efficiency). The local significance Z is the signed profile-likelihood root of
  `signal_region_test` (one-sided: p = 1 - Phi(Z), large Z = excess), asymptotic.
* `sculpting` is flagged when the sideband fit fails: not converged, or its goodness of fit
  (Poisson deviance against chi2(n_SB_bins - n_params)) has p < `gof_threshold` (0.01).
* Global p-value (look-elsewhere over windows and efficiencies): `n_toys` pseudo-data sets
  drawn from each window's background-only fit (the fit of all its bins, SR included, per
  efficiency): the unselected spectrum is Poisson, each tighter selection a binomial thinning
  of the looser one with the fitted per-bin ratio (the selections are nested, as in the data).
  Windows are drawn independently (in the data overlapping windows share events), so the
  trials factor is not underestimated from that source. Each toy goes through the same fits;
  the global p-value is the fraction of toys whose largest Z over windows and efficiencies
  reaches the observed largest Z (binomial error sqrt(p (1 - p) / n_toys)). The toys resample
  the selected spectra, not the classifier training.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from jaxws.methods.hunt.windows import HuntLayout
from jaxws.stats.dijet_fit import Binning, f_test, signal_region_test
from jaxws.stats.significance import (
    asimov_significance,
    asimov_significance_with_uncertainty,
)

DEFAULT_EFFICIENCIES = (1.0, 0.1, 0.01, 0.002)


def selected_spectra(
    layout: HuntLayout,
    mjj: np.ndarray,
    scores: np.ndarray,
    efficiencies: tuple[float, ...],
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Selected counts per window, efficiency and window bin; the thresholds used.

    Args:
        layout: bins and windows.
        mjj: (N,) GeV.
        scores: (n_windows, N) scores, higher = more signal-like (only the window's events
            are read).
        efficiencies: fractions of the sideband events kept, each in (0, 1].
        weights: (N,) event weights (default 1): counts are weighted sums.

    Returns:
        counts (n_windows, n_eff, window_bins), thresholds (n_windows, n_eff).
    """
    regions = layout.regions(mjj)
    edges = layout.edges
    weights = np.ones(len(mjj)) if weights is None else np.asarray(weights, np.float64)
    counts = np.zeros((layout.n_windows, len(efficiencies), layout.window_bins))
    thresholds = np.full((layout.n_windows, len(efficiencies)), -np.inf)
    for w in range(layout.n_windows):
        first, _, _, end = layout.window(w)
        inside = regions[w] >= 0
        sideband_scores = scores[w][regions[w] == 0]
        if not np.all(np.isfinite(scores[w][inside])):
            raise ValueError(f"hunt: window {w} has events without a finite score")
        for e, eps in enumerate(efficiencies):
            if eps < 1:
                thresholds[w, e] = np.quantile(sideband_scores, 1.0 - eps)
            keep = inside & (scores[w] >= thresholds[w, e]) if eps < 1 else inside
            counts[w, e], _ = np.histogram(
                mjj[keep], bins=edges[first : end + 1], weights=weights[keep]
            )
    return counts, thresholds


def _n_params(counts: np.ndarray, binning: Binning, sr: np.ndarray, choice: int | str):
    if choice == "f_test":
        chosen, _ = f_test(counts, binning, mask=~sr)
        return chosen
    return np.full(counts.shape[:-1], int(choice))


def window_tests(
    layout: HuntLayout, counts: np.ndarray, n_params: int | str = 3
) -> dict[str, np.ndarray]:
    """Sideband fits and SR tests for counts (..., n_windows, n_eff, window_bins).

    Returns:
        dict of arrays (..., n_windows, n_eff): z, p_value, observed, background,
        background_uncertainty, gof_pvalue, converged, n_params; and, per window bin
        (..., n_windows, n_eff, window_bins), null_expected (the background-only fit of all
        the window's bins) and sideband_expected (the fit of its sidebands).
    """
    out: dict[str, list] = {k: [] for k in _FIELDS}
    for w in range(layout.n_windows):
        binning, sr = layout.window_binning(w)
        spectra = counts[..., w, :, :]
        chosen = _n_params(spectra, binning, sr, n_params)
        columns = {k: np.zeros(spectra.shape[:-1]) for k in _FIELDS if not k.endswith("expected")}
        null_expected = np.zeros(spectra.shape)
        sideband_expected = np.zeros(spectra.shape)
        for k in (3, 4):
            pick = chosen == k
            if not pick.any():
                continue
            test = signal_region_test(spectra[pick], binning, sr, n_params=k)
            fit = test.sideband_fit
            values = {
                "z": test.z,
                "p_value": test.p_value,
                "observed": test.observed,
                "background": test.background,
                "background_uncertainty": test.background_uncertainty,
                "gof_pvalue": fit.gof_pvalue,
                "converged": test.converged,
                "n_params": np.full(test.z.shape, k),
            }
            for name, value in values.items():
                columns[name][pick] = value
            null_expected[pick] = binning.expected(test.null_fit.theta)
            sideband_expected[pick] = binning.expected(fit.theta)
        for name, value in columns.items():
            out[name].append(value)
        out["null_expected"].append(null_expected)
        out["sideband_expected"].append(sideband_expected)
    axis = counts.ndim - 3
    result = {k: np.stack(v, axis=axis) for k, v in out.items()}
    result["converged"] = result["converged"].astype(bool)
    result["n_params"] = result["n_params"].astype(int)
    return result


_FIELDS = (
    "z",
    "p_value",
    "observed",
    "background",
    "background_uncertainty",
    "gof_pvalue",
    "converged",
    "n_params",
    "null_expected",
    "sideband_expected",
)


def draw_toys(
    null_expected: np.ndarray, efficiencies: tuple[float, ...], n_toys: int, seed: int
) -> np.ndarray:
    """(n_toys, n_windows, n_eff, window_bins) nested pseudo-data from background-only fits."""
    order = np.argsort(efficiencies)[::-1]
    rng = np.random.default_rng(seed)
    toys = np.zeros((n_toys, *null_expected.shape))
    previous_count = previous_mean = None
    for e in order:
        mean = null_expected[:, e, :]
        if previous_count is None:
            count = rng.poisson(mean, (n_toys, *mean.shape))
        else:
            ratio = np.clip(mean / np.maximum(previous_mean, 1e-300), 0.0, 1.0)
            count = rng.binomial(previous_count, ratio)
        toys[:, :, e, :] = count
        previous_count, previous_mean = count, mean
    return toys


@dataclasses.dataclass(frozen=True)
class HuntResult:
    """The search's outcome: per-window tests, the global p-value and the toys' maxima."""

    efficiencies: tuple[float, ...]
    centres: np.ndarray  # (n_windows,) SR centre in GeV
    tests: dict[str, np.ndarray]  # (n_windows, n_eff) arrays, see `window_tests`
    counts: np.ndarray  # (n_windows, n_eff, window_bins)
    sculpting: np.ndarray  # (n_windows, n_eff) bool
    max_z: float  # the largest local Z over windows and efficiencies with a usable fit
    global_p_value: float
    global_p_error: float
    n_toys: int
    toy_max_z: np.ndarray  # (n_toys,)


def search(
    layout: HuntLayout,
    counts: np.ndarray,
    efficiencies: tuple[float, ...] = DEFAULT_EFFICIENCIES,
    *,
    n_params: int | str = 3,
    n_toys: int = 1000,
    seed: int = 0,
    gof_threshold: float = 0.01,
) -> HuntResult:
    """Local tests in every window and efficiency, sculpting flags and the global p-value.

    Args:
        layout: bins and windows.
        counts: (n_windows, n_eff, window_bins) selected spectra (`selected_spectra`).
        efficiencies: the efficiencies of `counts`' second axis.
        n_params: 3, 4 or "f_test".
        n_toys: pseudo-data sets for the global p-value.
        seed: the toys' seed.
        gof_threshold: `sculpting` when the sideband fit's goodness-of-fit p is below this.

    Returns:
        HuntResult (module conventions).
    """
    tests = window_tests(layout, counts, n_params)
    sculpting = ~tests["converged"] | (tests["gof_pvalue"] < gof_threshold)
    usable = tests["converged"]
    max_z = float(np.max(np.where(usable, tests["z"], -np.inf)))
    toys = draw_toys(tests["null_expected"], efficiencies, n_toys, seed)
    toy_tests = window_tests(layout, toys, n_params)
    toy_z = np.where(toy_tests["converged"], toy_tests["z"], -np.inf)
    toy_max_z = toy_z.reshape(n_toys, -1).max(-1)
    p = float(np.mean(toy_max_z >= max_z))
    return HuntResult(
        efficiencies=tuple(efficiencies),
        centres=np.array([layout.signal_region_centre(w) for w in range(layout.n_windows)]),
        tests=tests,
        counts=counts,
        sculpting=sculpting,
        max_z=max_z,
        global_p_value=p,
        global_p_error=float(np.sqrt(max(p * (1 - p), 1.0 / n_toys) / n_toys)),
        n_toys=n_toys,
        toy_max_z=toy_max_z,
    )


def truth_significance(
    layout: HuntLayout,
    mjj: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    thresholds: np.ndarray,
    background_uncertainty: np.ndarray,
) -> dict[str, np.ndarray]:
    """The injection study's eq. 2 (and eq. 8 with the fit's sigma_b) on the same selections.

    N_s and N_b are the true signal and background counts in each window's SR after its
    selection (labels known in simulation). Returns (n_windows, n_eff) arrays: signal,
    background, z_eq2, z_eq8.
    """
    regions = layout.regions(mjj)
    n_s = np.zeros(thresholds.shape)
    n_b = np.zeros(thresholds.shape)
    for w in range(layout.n_windows):
        in_sr = regions[w] == 1
        for e in range(thresholds.shape[1]):
            keep = in_sr & (scores[w] >= thresholds[w, e])
            n_s[w, e] = np.sum(keep & (labels == 1))
            n_b[w, e] = np.sum(keep & (labels == 0))
    safe_b = np.maximum(n_b, 1e-9)
    # eq. 8 only where the fit gave an uncertainty (a failed fit has none: NaN).
    sigma = np.asarray(background_uncertainty, np.float64)
    known = np.isfinite(sigma)
    z_eq8 = asimov_significance_with_uncertainty(n_s, safe_b, sigma_b=np.where(known, sigma, 0.0))
    return {
        "signal": n_s,
        "background_true": n_b,
        "z_eq2": asimov_significance(n_s, safe_b),
        "z_eq8": np.where(known, z_eq8, np.nan),
    }


def global_z(p: float) -> float:
    """One-sided Z of a p-value, Phi^-1(1 - p)."""
    return float(stats.norm.isf(p))
