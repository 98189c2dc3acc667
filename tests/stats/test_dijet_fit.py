"""The dijet fit against SciPy, the SR test against its closed form, uniformity under H0."""

import numpy as np
import pytest
from margins import FIT, record, record_p
from scipy import integrate, optimize, stats

from jaxws.stats.dijet_fit import (
    Binning,
    dijet_function,
    f_test,
    fit_spectrum,
    signal_region_test,
)

EDGES = 3500.0 * 2.0 ** (np.arange(36) / 35)  # 35 bins of 2 % in mjj, 3.5 to 7 TeV
BINNING = Binning(EDGES)
SIGNAL_REGION = np.zeros(35, bool)
SIGNAL_REGION[15:19] = True  # 4 bins around 4.9 TeV


def expected_counts(total, p1=8.0, p2=3.2, p3=0.0):
    theta = np.array([0.0, p1, p2, p3])
    mu = BINNING.expected(theta)
    return mu * total / mu.sum()


def scipy_expected(theta, mask=None):
    """Bin integrals by adaptive quadrature (independent of the fit's Gauss-Legendre nodes).

    One `quad_vec` call integrates every bin at once (the bins mapped onto [0, 1]), to a
    relative 1e-12 of the largest bin.
    """
    x = EDGES / 13000.0
    lo, hi = x[:-1], x[1:]
    if mask is not None:
        lo, hi = lo[mask], hi[mask]
    width = hi - lo
    values, _ = integrate.quad_vec(
        lambda t: width * dijet_function(lo + t * width, theta),
        0.0,
        1.0,
        epsabs=0.0,
        epsrel=1e-12,
        norm="max",
    )
    return values


def test_bin_integrals_match_adaptive_quadrature():
    theta = np.array([np.log(3e6), 7.0, 4.0, 0.3])
    np.testing.assert_allclose(BINNING.expected(theta), scipy_expected(theta), rtol=1e-9)


@pytest.mark.parametrize("n_params", [3, 4])
def test_fit_matches_scipy_minimum_and_covariance(n_params):
    counts = np.random.default_rng(1).poisson(expected_counts(2e4)).astype(float)
    mask = ~SIGNAL_REGION
    fit = fit_spectrum(counts, BINNING, n_params=n_params, mask=mask)
    assert fit.converged

    def nll(theta):
        mu = scipy_expected(np.r_[theta, np.zeros(4 - n_params)], mask)
        return np.sum(mu - counts[mask] * np.log(mu))

    # SciPy's simplex from 3 sigma away, in coordinates whitened by the fit's covariance (a
    # preconditioning only: the minimum found is that of SciPy's own NLL).
    sigma = np.sqrt(np.diag(fit.covariance))
    whiten = np.linalg.cholesky(fit.covariance)
    start = fit.theta + whiten @ np.full(n_params, 3.0 / np.sqrt(n_params))
    result = optimize.minimize(
        lambda u: nll(start + whiten @ u),
        np.zeros(n_params),
        method="Nelder-Mead",
        options={"xatol": 1e-5, "fatol": 1e-10, "maxiter": 20000, "maxfev": 20000},
    )
    scipy_theta = start + whiten @ result.x
    assert result.success
    np.testing.assert_allclose(scipy_theta, fit.theta, atol=1e-3 * sigma.min(), rtol=0)
    assert abs(result.fun - fit.nll) < 1e-6
    # Covariance: SciPy's NLL has, in the whitened coordinates, a unit Hessian (central finite
    # differences with a step of 0.1 sigma: NLL changes of 5e-3 against quadrature noise 1e-7).
    h = 0.1
    eye = np.eye(n_params)

    def at(u):
        return nll(fit.theta + whiten @ u)

    hessian = np.array(
        [
            [
                (at(h * (ea + eb)) - at(h * (ea - eb)) - at(h * (eb - ea)) + at(-h * (ea + eb)))
                / (4 * h * h)
                for eb in eye
            ]
            for ea in eye
        ]
    )
    np.testing.assert_allclose(hessian, eye, atol=2e-3)


def test_fit_recovers_truth_and_flags_non_convergence():
    mu = expected_counts(1e5, p3=0.4)
    fit = fit_spectrum(mu, BINNING, n_params=4)  # Asimov data: the minimum is the truth
    truth = np.log(mu.sum() / BINNING.expected(np.array([0.0, 8.0, 3.2, 0.4])).sum())
    np.testing.assert_allclose(fit.theta, [truth, 8.0, 3.2, 0.4], atol=1e-6)
    assert fit.converged
    assert fit.deviance < 1e-9
    stopped = fit_spectrum(mu, BINNING, n_params=4, max_iterations=0)
    assert not stopped.converged
    # Empty and nearly empty spectra (tight selections): flagged, never an exception.
    sparse = np.zeros((3, 35))
    sparse[1, [0, 5, 30]] = 1.0
    sparse[2, :3] = 2.0
    assert not fit_spectrum(sparse[:1], BINNING, n_params=4).converged.any()
    test = signal_region_test(sparse, BINNING, SIGNAL_REGION, n_params=4)
    assert not test.converged[0]
    assert np.all(np.isfinite(test.z[test.converged]))
    with pytest.raises(ValueError, match="non-negative"):
        fit_spectrum(-mu, BINNING)
    with pytest.raises(ValueError, match="contiguous"):
        signal_region_test(mu, BINNING, np.arange(35) % 2 == 0)


@pytest.mark.statistical
def test_f_test_picks_the_fourth_parameter_only_when_needed():
    rng = np.random.default_rng(2)
    needs_p3 = rng.poisson(expected_counts(1e6, p3=3.0), (20, 35))  # power ~1 (50/50 seen)
    three_enough = rng.poisson(expected_counts(1e6, p3=0.0), (20, 35))
    chosen_p3, _ = f_test(needs_p3, BINNING)
    chosen_3, _ = f_test(three_enough, BINNING)
    assert np.all(chosen_p3 == 4)
    # Under the 3-parameter truth the F-test p-value is ~U(0, 1): 4 is chosen ~5 % of the time.
    n_four, se = np.sum(chosen_3 == 4), np.sqrt(20 * 0.05 * 0.95)
    record("4 parameters chosen under 3 (of 20) <= 4", n_four, 4, se, FIT, above=False)
    assert n_four <= 4  # binomial(20, 0.05): P(>= 5) = 0.003


@pytest.mark.parametrize("small_signal", [0.5, 1.0])
def test_signal_region_z_includes_the_fit_uncertainty(small_signal):
    """Asimov data: for s << b, q0 -> s^2 / (b + sigma_b^2) (Gaussian profiling)."""
    mu = expected_counts(1e5)
    b = mu[SIGNAL_REGION].sum()
    s = small_signal * np.sqrt(b)
    data = mu + SIGNAL_REGION * mu * s / b
    for n_params in (3, 4):
        test = signal_region_test(data, BINNING, SIGNAL_REGION, n_params=n_params)
        assert test.converged
        np.testing.assert_allclose(test.background, b, rtol=1e-8)
        closed_form = s / np.sqrt(b + test.background_uncertainty**2)
        assert test.background_uncertainty > 0.3 * np.sqrt(b)  # the fit's error matters here
        np.testing.assert_allclose(test.z, closed_form, rtol=5e-3)


@pytest.mark.statistical
@pytest.mark.parametrize("n_params", [3, 4])
def test_local_p_values_uniform_under_background_only(n_params):
    """500 background-only pseudo-experiments (1e4 events, ~460 in the SR): p ~ U(0, 1).

    Tail counts: expected 25 +- 4.9 beyond 0.05 and 5 +- 2.2 beyond 0.01 (binomial standard
    errors); asserted within 3 standard errors. KS at the fixed seed: p > 0.01.
    """
    counts = np.random.default_rng(3).poisson(expected_counts(1e4), (500, 35))
    test = signal_region_test(counts, BINNING, SIGNAL_REGION, n_params=n_params)
    assert test.converged.all()
    p = test.p_value
    se_05, se_01 = np.sqrt(500 * 0.05 * 0.95), np.sqrt(500 * 0.01 * 0.99)
    record("|count p < 0.05 - 25| < 3 SE", abs(np.sum(p < 0.05) - 25), 3 * se_05, se_05, FIT, False)
    record("|count p < 0.01 - 5| < 3 SE", abs(np.sum(p < 0.01) - 5), 3 * se_01, se_01, FIT, False)
    assert abs(np.sum(p < 0.05) - 25) < 3 * se_05
    assert abs(np.sum(p < 0.01) - 5) < 3 * se_01
    p_value = stats.kstest(p, "uniform").pvalue
    record_p("KS local p-values vs uniform", p_value, 0.01, FIT)
    assert p_value > 0.01
    # The goodness of fit is calibrated in its tail (its deviance is only asymptotically chi2:
    # the last bins hold ~7 events, so no KS test here).
    n_gof = np.sum(test.sideband_fit.gof_pvalue < 0.01)
    record("count gof p < 0.01 < 5 + 3 SE", n_gof, 5 + 3 * se_01, se_01, FIT, above=False)
    assert n_gof < 5 + 3 * se_01
