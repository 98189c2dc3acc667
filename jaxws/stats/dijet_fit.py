"""Binned Poisson fit of a dijet mass spectrum and the local significance of a signal region.

The background model of bump hunts in dijet mass (CDF, CMS and ATLAS dijet searches; CWoLa
hunting, Collins, Howe and Nachman, PRL 121 (2018) 241803 and PRD 99 (2019) 014038, Sec. III):

    f(x) = p0 (1 - x)^p1 / x^(p2 + p3 ln x),    x = mjj / sqrt(s)

with p3 = 0 for the three-parameter form. Conventions used everywhere in this module:

* Expected counts per bin: mu_i = integral of f over the bin in x (4-point Gauss-Legendre per
  bin; exact to < 1e-9 relative for bins of a few per cent in mjj), so p0 is in events per
  unit x. The parameters are theta = (ln p0, p1, p2, p3) (ln p0 keeps p0 positive).
* Likelihood: the binned Poisson one, NLL(theta) = sum_i [mu_i - n_i ln mu_i] over the bins
  fitted (the count-only constant ln n_i! dropped). Counts may be non-integer (weights).
* Minimiser: Fisher scoring on standardised features with a backtracking line search,
  started from a weighted linear least-squares fit of ln n. `converged` is True only when
  the estimated distance to the minimum EDM = g^T H^-1 g / 2 < `tolerance` (Minuit's
  criterion, NLL units), the Hessian is positive definite, every number is finite and the
  fitted bins hold at least one event.
* Covariance: the inverse of the observed Hessian of NLL at the minimum.
* Goodness of fit: the Poisson deviance D = 2 sum_i [mu_i - n_i + n_i ln(n_i / mu_i)]
  against chi2(n_bins - n_params) (a likelihood-ratio chi2; asymptotic, poor below ~5 counts a
  bin).
* Signal-region test (`signal_region_test`): the SR bins are merged into one count n_SR.
  H0: background only, theta fitted to the sidebands *and* the SR (so the SR may pull the fit:
  the fit's uncertainty enters by profiling). H1: the SR count gets a free signal s (any
  sign), so theta is fitted to the sidebands alone and the SR is matched exactly.
  q0 = 2 [NLL_H0 - NLL_H1] >= 0, the local significance is the signed root
  Z = sign(n_SR - b_SR) sqrt(q0) with b_SR the sideband fit's SR prediction, and the local
  p-value is the one-sided p = 1 - Phi(Z) (a test for an excess: a deficit gives Z < 0,
  p > 0.5). By Wilks' theorem Z ~ N(0, 1) and p ~ U(0, 1) under H0 for large counts.
* Function choice (`f_test`): the 4-parameter form replaces the 3-parameter one when the
  F statistic of their deviances, F = (D3 - D4) / (D4 / (n_bins - 4)), has p < `alpha`
  (default 0.05) against F(1, n_bins - 4).

All functions take a leading batch of spectra (`counts` of shape (..., n_bins)); everything
is NumPy float64 (a 4 x 4 problem per spectrum: thousands of fits a second on a CPU).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special, stats

SQRT_S = 13000.0
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(4)
_LINE_SEARCH = 0.5 ** np.arange(0, 30)


def dijet_features(x: np.ndarray, n_params: int) -> np.ndarray:
    """(..., n_params) features phi(x) with ln f = phi(x) . theta (theta = ln p0, p1, p2, p3)."""
    log_x = np.log(x)
    columns = [np.ones_like(x), np.log1p(-x), -log_x, -(log_x**2)]
    return np.stack(columns[:n_params], axis=-1)


def dijet_function(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """f(x) = p0 (1 - x)^p1 / x^(p2 + p3 ln x) for theta = (ln p0, p1, p2[, p3])."""
    theta = np.asarray(theta, np.float64)
    return np.exp(np.sum(dijet_features(np.asarray(x, np.float64), theta.shape[-1]) * theta, -1))


@dataclasses.dataclass(frozen=True)
class Binning:
    """Bins in mjj (GeV) and their quadrature nodes in x = mjj / sqrt(s)."""

    edges: np.ndarray
    sqrt_s: float = SQRT_S

    def __post_init__(self):
        edges = np.asarray(self.edges, np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("Binning: edges must be a strictly increasing 1-d array")
        if edges[0] <= 0 or edges[-1] >= self.sqrt_s:
            raise ValueError(f"Binning: edges must lie in (0, sqrt_s = {self.sqrt_s}) GeV")
        object.__setattr__(self, "edges", edges)

    @property
    def centres(self) -> np.ndarray:
        """Bin centres in mjj (GeV)."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_bins, 4) quadrature nodes in x and weights (including the bin width in x)."""
        low, high = self.edges[:-1, None] / self.sqrt_s, self.edges[1:, None] / self.sqrt_s
        half = 0.5 * (high - low)
        return low + half * (_NODES + 1.0), half * _WEIGHTS

    def expected(self, theta: np.ndarray) -> np.ndarray:
        """Expected counts per bin, (..., n_bins), for parameters theta (..., n_params)."""
        x, w = self.nodes()
        theta = np.asarray(theta, np.float64)
        return np.sum(w * dijet_function(x, theta[..., None, None, :]), -1)


@dataclasses.dataclass(frozen=True)
class DijetFit:
    """Result of `fit_spectrum` (leading batch axes as the input counts)."""

    theta: np.ndarray  # (..., n_params): ln p0, p1, p2[, p3]
    covariance: np.ndarray  # (..., n_params, n_params): inverse observed Hessian
    nll: np.ndarray  # (...,): sum over fitted bins of mu - n ln mu
    deviance: np.ndarray  # (...,): Poisson deviance over the fitted bins
    n_bins: int  # bins fitted
    converged: np.ndarray  # (...,) bool
    iterations: np.ndarray  # (...,) int

    @property
    def n_params(self) -> int:
        """3 or 4."""
        return self.theta.shape[-1]

    @property
    def gof_pvalue(self) -> np.ndarray:
        """p-value of the deviance against chi2(n_bins - n_params) (NaN if no dof)."""
        dof = self.n_bins - self.n_params
        return stats.chi2.sf(self.deviance, dof) if dof > 0 else np.full_like(self.nll, np.nan)


def _poisson_terms(mu: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return mu - special.xlogy(counts, mu)


def _deviance(mu: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    terms = mu - counts + special.xlogy(counts, counts) - special.xlogy(counts, mu)
    return 2.0 * np.sum(np.where(mask, terms, 0.0), -1)


def _derivatives(
    theta: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    features: np.ndarray,
    counts: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """NLL, gradient, observed and expected Hessian over the masked bins."""
    per_node = w * np.exp(np.einsum("ika,...a->...ik", features, theta))  # (..., bins, nodes)
    mu = per_node.sum(-1)
    d_mu = np.einsum("...ik,ika->...ia", per_node, features)
    d2_mu = np.einsum("...ik,ika,ikb->...iab", per_node, features, features)
    ratio = np.where(mask, counts / mu, 0.0)
    one = np.where(mask, 1.0, 0.0)
    nll = np.sum(np.where(mask, _poisson_terms(mu, counts), 0.0), -1)
    gradient = np.einsum("...i,...ia->...a", one - ratio, d_mu)
    expected = np.einsum("...i,...ia,...ib->...ab", one / mu, d_mu, d_mu)
    observed = np.einsum("...i,...iab->...ab", one - ratio, d2_mu) + np.einsum(
        "...i,...ia,...ib->...ab", ratio / mu, d_mu, d_mu
    )
    return nll, gradient, observed, expected, mu


def _start(
    features_centre: np.ndarray, widths: np.ndarray, counts: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Weighted least squares of ln((n + 0.5) / width) on the features at the bin centres."""
    target = np.log((counts + 0.5) / widths)
    weight = np.where(mask, counts + 0.5, 0.0)
    a = np.einsum("...i,ia,ib->...ab", weight, features_centre, features_centre)
    b = np.einsum("...i,ia,...i->...a", weight, features_centre, target)
    return np.linalg.solve(a, b[..., None])[..., 0]


def fit_spectrum(
    counts: np.ndarray,
    binning: Binning,
    *,
    n_params: int = 4,
    mask: np.ndarray | None = None,
    tolerance: float = 1e-8,
    max_iterations: int = 200,
) -> DijetFit:
    """Maximum-likelihood fit of the dijet function to binned counts (module conventions).

    Args:
        counts: (..., n_bins) counts (non-negative; a leading batch of spectra is fitted at once).
        binning: the bins.
        n_params: 3 (p3 = 0) or 4.
        mask: (n_bins,) or (..., n_bins) bool, the bins fitted (default all), e.g. the sidebands.
        tolerance: convergence when EDM = g^T H^-1 g / 2 < tolerance (NLL units).
        max_iterations: Fisher-scoring steps at most.

    Returns:
        DijetFit; `converged` says, per spectrum, whether the criterion was met.
    """
    if n_params not in (3, 4):
        raise ValueError(f"fit_spectrum: n_params must be 3 or 4, got {n_params}")
    counts = np.asarray(counts, np.float64)
    n_bins = binning.edges.size - 1
    if counts.shape[-1:] != (n_bins,):
        raise ValueError(f"fit_spectrum: counts must end in {n_bins} bins, got {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("fit_spectrum: counts must be finite and non-negative")
    mask = np.ones(n_bins, bool) if mask is None else np.asarray(mask, bool)
    mask = np.broadcast_to(mask, counts.shape)
    n_fitted = int(mask[(0,) * (mask.ndim - 1)].sum())
    if n_fitted < n_params:
        raise ValueError(f"fit_spectrum: {n_fitted} bins fitted, fewer than {n_params} parameters")

    x, w = binning.nodes()
    raw = dijet_features(x, n_params)
    # Standardise the features over the nodes (an affine reparametrisation): Fisher scoring is
    # invariant to it in exact arithmetic, and the 4 x 4 systems become well conditioned.
    shift = np.r_[0.0, raw[..., 1:].reshape(-1, n_params - 1).mean(0)]
    scale = np.r_[1.0, raw[..., 1:].reshape(-1, n_params - 1).std(0)]
    features = (raw - shift) / scale
    to_theta = np.eye(n_params) / scale[:, None]  # theta = to_theta @ standardised theta
    to_theta[0, 1:] = -shift[1:] / scale[1:]

    centres = dijet_features(binning.centres / binning.sqrt_s, n_params)
    widths = np.diff(binning.edges) / binning.sqrt_s
    start = _start((centres - shift) / scale, widths, counts, mask)
    # The least-squares start uses features at the bin centre: shift ln p0 by the difference
    # of the integral and the centre value so the start's total matches the data.
    mu0 = np.sum(w * np.exp(np.einsum("ika,...a->...ik", features, start)), -1)
    total = np.sum(np.where(mask, counts, 0.0), -1)
    start[..., 0] += np.log(np.maximum(total, 0.5) / np.sum(np.where(mask, mu0, 0.0), -1))

    theta = start
    done = np.zeros(counts.shape[:-1], bool)
    iterations = np.zeros(counts.shape[:-1], int)
    for _ in range(max_iterations):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            nll, gradient, _, expected, _ = _derivatives(theta, x, w, features, counts, mask)
        # Empty bins can drive mu to underflow (1/mu = inf): such spectra stop, unconverged.
        finite = np.all(np.isfinite(expected), (-2, -1)) & np.all(np.isfinite(gradient), -1)
        done = done | ~finite
        expected = np.where(finite[..., None, None], expected, np.eye(n_params))
        gradient = np.where(finite[..., None], gradient, 0.0)
        # A relative ridge of 1e-13 keeps exactly singular systems solvable (no effect otherwise).
        ridge = 1e-13 * np.trace(expected, axis1=-2, axis2=-1)[..., None, None] + 1e-300
        step = np.linalg.solve(expected + ridge * np.eye(n_params), gradient[..., None])[..., 0]
        edm = 0.5 * np.einsum("...a,...a->...", gradient, step)
        done = done | (np.abs(edm) < tolerance)
        if np.all(done):
            break
        # Backtracking: the longest step of 1, 1/2, 1/4, ... that lowers the NLL.
        trial = theta[..., None, :] - _LINE_SEARCH[:, None] * step[..., None, :]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            trial_mu = np.sum(w * np.exp(np.einsum("ika,...ta->...tik", features, trial)), -1)
            trial_nll = np.sum(
                np.where(mask[..., None, :], _poisson_terms(trial_mu, counts[..., None, :]), 0.0),
                -1,
            )
        better = np.isfinite(trial_nll) & (trial_nll <= nll[..., None])
        first = np.argmax(better, -1)
        moved = np.take_along_axis(trial, first[..., None, None], -2)[..., 0, :]
        move = (~done) & np.any(better, -1)
        theta = np.where(move[..., None], moved, theta)
        iterations = iterations + (~done)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        nll, gradient, observed, _, mu = _derivatives(theta, x, w, features, counts, mask)
        finite = np.all(np.isfinite(observed), (-2, -1)) & np.all(np.isfinite(gradient), -1)
        observed = np.where(finite[..., None, None], observed, -np.eye(n_params))
        eigenvalues = np.linalg.eigvalsh(observed)
        positive = np.all(eigenvalues > 0, -1) & finite
        safe = np.where(positive[..., None, None], observed, np.eye(n_params))
        cov_std = np.linalg.inv(safe)
        edm = 0.5 * np.einsum("...a,...ab,...b->...", gradient, cov_std, gradient)
    # No events in the fitted bins: the likelihood has no finite minimum (p0 -> 0).
    converged = positive & (np.abs(edm) < tolerance) & np.isfinite(nll) & (total > 0)
    cov_std = np.where(positive[..., None, None], cov_std, np.nan)
    theta_raw = np.einsum("ab,...b->...a", to_theta, theta)
    covariance = np.einsum("ab,...bc,dc->...ad", to_theta, cov_std, to_theta)
    return DijetFit(
        theta=theta_raw,
        covariance=covariance,
        nll=nll,
        deviance=_deviance(mu, counts, mask),
        n_bins=n_fitted,
        converged=converged,
        iterations=iterations,
    )


def f_test(
    counts: np.ndarray, binning: Binning, *, mask: np.ndarray | None = None, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Choose 3 or 4 parameters per spectrum by the F-test (module conventions).

    Returns:
        (n_params (...,) int, F-test p-value (...,)).
    """
    three = fit_spectrum(counts, binning, n_params=3, mask=mask)
    four = fit_spectrum(counts, binning, n_params=4, mask=mask)
    dof = four.n_bins - 4
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (three.deviance - four.deviance) / (four.deviance / dof)
    p = stats.f.sf(np.maximum(f, 0.0), 1, dof)
    return np.where(four.converged & (p < alpha), 4, 3), p


@dataclasses.dataclass(frozen=True)
class SignalRegionTest:
    """Result of `signal_region_test` (leading batch axes as the counts)."""

    observed: np.ndarray  # n_SR, the merged SR count
    background: np.ndarray  # b_SR from the sideband-only fit
    background_uncertainty: np.ndarray  # its standard deviation from the fit's covariance
    z: np.ndarray  # signed root of q0 (one-sided: large positive = excess)
    p_value: np.ndarray  # 1 - Phi(z)
    sideband_fit: DijetFit
    null_fit: DijetFit  # background only, all bins (the SR merged into one)
    converged: np.ndarray  # both fits converged


def signal_region_test(
    counts: np.ndarray, binning: Binning, signal_region: np.ndarray, *, n_params: int = 4
) -> SignalRegionTest:
    """Local significance of the SR count against the dijet fit (profile likelihood, see module).

    Args:
        counts: (..., n_bins) counts.
        binning: the bins.
        signal_region: (n_bins,) bool, the SR bins (merged into one count); the other bins are
            the sidebands the background is fitted to.
        n_params: 3 or 4.

    Returns:
        SignalRegionTest.
    """
    counts = np.asarray(counts, np.float64)
    sr = np.asarray(signal_region, bool)
    n_bins = binning.edges.size - 1
    if sr.shape != (n_bins,) or not sr.any() or sr.all():
        raise ValueError("signal_region_test: signal_region must mark some, not all, of the bins")
    inside = np.flatnonzero(sr)
    if np.any(np.diff(inside) != 1):
        raise ValueError("signal_region_test: the signal region must be contiguous bins")
    # Merge the SR into one bin: its expected count is the integral over the SR either way.
    first, last = inside[0], inside[-1]
    merged = Binning(np.r_[binning.edges[: first + 1], binning.edges[last + 1 :]], binning.sqrt_s)
    merged_counts = np.concatenate(
        [counts[..., :first], counts[..., sr].sum(-1, keepdims=True), counts[..., last + 1 :]], -1
    )
    merged_sr = np.zeros(merged.edges.size - 1, bool)
    merged_sr[first] = True
    sideband = fit_spectrum(merged_counts, merged, n_params=n_params, mask=~merged_sr)
    null = fit_spectrum(merged_counts, merged, n_params=n_params)
    observed = merged_counts[..., first]
    x, w = merged.nodes()
    per_node = w[first] * dijet_function(x[first], sideband.theta[..., None, :])  # (..., 4)
    background = per_node.sum(-1)
    gradient = np.einsum("...k,ka->...a", per_node, dijet_features(x[first], n_params))
    variance = np.einsum("...a,...ab,...b->...", gradient, sideband.covariance, gradient)
    saturated = observed - special.xlogy(observed, observed)
    q0 = np.maximum(2.0 * (null.nll - sideband.nll - saturated), 0.0)
    z = np.sign(observed - background) * np.sqrt(q0)
    return SignalRegionTest(
        observed=observed,
        background=background,
        background_uncertainty=np.sqrt(variance),
        z=z,
        p_value=stats.norm.sf(z),
        sideband_fit=sideband,
        null_fit=null,
        converged=sideband.converged & null.converged,
    )
