"""Eqs. 2 and 8 against closed forms, limits and numerical profile likelihoods (SciPy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

from jaxws.stats.significance import (
    DEFAULT_BACKGROUND_EFFICIENCIES,
    asimov_significance,
    asimov_significance_with_uncertainty,
    final_significance,
    initial_significance,
    signal_for_significance,
    significance_at_working_points,
)

pytestmark = pytest.mark.numerical  # every test here compares numbers (docs/testing.md)


def literal_eq2(s, b):
    return np.sqrt(2 * ((s + b) * np.log(s / b + 1) - s))


def literal_eq8(s, b, sigma):
    n = s + b
    v = sigma**2
    return np.sqrt(
        2
        * (n * np.log(n * (b + v) / (b**2 + n * v)) - b**2 / v * np.log(1 + v * s / (b * (b + v))))
    )


def poisson_nll(mean, count):
    """-ln Pois(count; mean) up to the count-only constant (valid for non-integer counts)."""
    return mean - special.xlogy(count, mean)


def profile_q0_on_off(s, b, sigma):
    """q0 of the on/off model L = Pois(n; mu + beta) Pois(m; tau beta) on Asimov data, by
    numerical minimisation (free fit over (mu, beta) and background-only fit over beta)."""
    tau = b / sigma**2
    n, m = s + b, tau * b
    nll = lambda mu, beta: poisson_nll(mu + beta, n) + poisson_nll(tau * beta, m)
    free = optimize.minimize(
        lambda p: nll(p[0], p[1]),
        x0=[0.5 * s + 1.0, 1.3 * b],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000},
    )
    null = optimize.minimize_scalar(
        lambda beta: nll(0.0, beta),
        bounds=(1e-9, 10 * n),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return 2 * (null.fun - free.fun)


def profile_q0_gaussian(s, b, sigma):
    """q0 with a Gaussian constraint on the background instead of the auxiliary Poisson."""
    n = s + b
    nll = lambda beta: poisson_nll(beta, n) + 0.5 * ((beta - b) / sigma) ** 2
    null = optimize.minimize_scalar(
        nll, bounds=(1e-9, 10 * n), method="bounded", options={"xatol": 1e-12}
    )
    return 2 * (null.fun - poisson_nll(n, n))


S_GRID = np.array([0.3, 3.0, 30.0, 300.0, 3e4])
B_GRID = np.array([1.0, 25.0, 1e3, 2e4, 1e6])


def literal_domain():
    """Grid points where the literal formulas still have ~10 digits (N_s / N_b >= 0.03); below,
    their cancellation (relative error ~ 1e-16 (N_b / N_s)^2) makes them the worse reference."""
    s, b = np.meshgrid(S_GRID, B_GRID)
    keep = s / b >= 0.03
    return s[keep], b[keep]


def test_eq2_matches_literal_formula_and_closed_value():
    s, b = literal_domain()
    np.testing.assert_allclose(asimov_significance(s, b), literal_eq2(s, b), rtol=1e-10)
    # N_s = N_b: Z^2 = 2 b (2 ln 2 - 1).
    np.testing.assert_allclose(
        asimov_significance(400.0, 400.0), np.sqrt(800 * (2 * np.log(2) - 1)), rtol=1e-14
    )


def test_eq8_matches_literal_formula():
    s, b = literal_domain()
    for relative in (0.01, 0.1):
        np.testing.assert_allclose(
            asimov_significance_with_uncertainty(s, b, relative * b),
            literal_eq8(s, b, relative * b),
            rtol=1e-8,
        )


@pytest.mark.parametrize(("s", "b"), [(1, 1), (5, 20), (30, 100), (100, 10_000), (2_000, 30)])
def test_eq2_is_asimov_poisson_likelihood_ratio(s, b):
    n = s + b
    q0 = 2 * (stats.poisson.logpmf(n, s + b) - stats.poisson.logpmf(n, b))
    # logpmf sums terms of size ~n, so the reference itself is good to ~1e-16 n / q0.
    np.testing.assert_allclose(asimov_significance(s, b), np.sqrt(q0), rtol=1e-9)


@pytest.mark.parametrize(
    ("s", "b", "sigma"), [(10, 100, 1), (10, 100, 10), (50, 1000, 100), (5, 20, 2), (300, 50, 20)]
)
def test_eq8_is_profile_likelihood_of_on_off_model(s, b, sigma):
    z = asimov_significance_with_uncertainty(s, b, sigma)
    np.testing.assert_allclose(z, np.sqrt(profile_q0_on_off(s, b, sigma)), rtol=1e-6)


@pytest.mark.parametrize(("s", "b", "sigma"), [(10, 100, 1), (50, 1000, 10), (200, 1e4, 30)])
def test_eq8_close_to_gaussian_constraint_when_uncertainty_small(s, b, sigma):
    # The two models differ at O(sigma^2 / b); here sigma^2 / b <= 0.1.
    z = asimov_significance_with_uncertainty(s, b, sigma)
    np.testing.assert_allclose(z, np.sqrt(profile_q0_gaussian(s, b, sigma)), rtol=1e-3)


def test_zero_signal_gives_zero():
    assert asimov_significance(0.0, 50.0) == 0.0
    assert asimov_significance_with_uncertainty(0.0, 50.0, 5.0) == 0.0


def test_eq8_tends_to_eq2_as_uncertainty_vanishes():
    s, b = np.meshgrid(S_GRID, B_GRID)
    np.testing.assert_array_equal(
        asimov_significance_with_uncertainty(s, b, 0.0), asimov_significance(s, b)
    )
    # The approach is not uniform in N_s: the relative change is ~ sigma^2 N_s / N_b^2.
    np.testing.assert_allclose(
        asimov_significance_with_uncertainty(s, b, 1e-8 * b), asimov_significance(s, b), rtol=1e-10
    )


def test_small_signal_limit_without_cancellation():
    # Z = N_s / sqrt(N_b + sigma^2) (1 + O(N_s / N_b)); s/b = 1e-9 is far below where the
    # literal formulas lose all digits.
    b = np.array([10.0, 1e4, 1e7])
    s = 1e-9 * b
    np.testing.assert_allclose(asimov_significance(s, b), s / np.sqrt(b), rtol=1e-8)
    sigma = 0.3 * b
    np.testing.assert_allclose(
        asimov_significance_with_uncertainty(s, b, sigma), s / np.sqrt(b + sigma**2), rtol=1e-8
    )
    np.testing.assert_allclose(asimov_significance(1e-12, 1e4), 1e-14, rtol=1e-10)


def test_monotonic_in_signal_background_and_uncertainty():
    s = np.geomspace(1e-3, 1e5, 400)
    for sigma in (0.0, 3.0, 300.0):
        assert np.all(np.diff(asimov_significance_with_uncertainty(s, 1e3, sigma)) > 0)
    b = np.geomspace(1.0, 1e7, 400)
    assert np.all(np.diff(asimov_significance(50.0, b)) < 0)
    sigma = np.geomspace(1e-2, 1e4, 400)
    assert np.all(np.diff(asimov_significance_with_uncertainty(50.0, 1e3, sigma)) < 0)


def test_relative_uncertainty_is_fraction_of_background():
    np.testing.assert_allclose(
        asimov_significance_with_uncertainty(40.0, 800.0, relative_uncertainty=0.05),
        asimov_significance_with_uncertainty(40.0, 800.0, 40.0),
        rtol=1e-15,
    )


@pytest.mark.parametrize("relative", [None, 0.01, 0.2])
def test_signal_for_significance_round_trip(relative):
    z = np.array([[0.1], [1.0], [5.0], [20.0]])
    b = np.array([10.0, 1e4, 1e6])
    n_s = signal_for_significance(z, b, relative_uncertainty=relative)
    assert n_s.shape == (4, 3)
    z_back = asimov_significance_with_uncertainty(n_s, b, relative_uncertainty=relative or 0.0)
    np.testing.assert_allclose(z_back, np.broadcast_to(z, z_back.shape), rtol=1e-10)
    assert signal_for_significance(0.0, 100.0) == 0.0
    # Large background: 5 sigma needs N_s ~ 5 sqrt(N_b) (+ O(Z^2) from the log).
    np.testing.assert_allclose(signal_for_significance(5.0, 1e8), 5e4, rtol=1e-3)


def test_initial_and_final_significance():
    n_s, n_b = 300.0, 20_000.0
    assert initial_significance(n_s, n_b) == asimov_significance(n_s, n_b)
    assert final_significance(n_s, n_b, 1.0, 1.0) == initial_significance(n_s, n_b)
    np.testing.assert_allclose(
        final_significance(n_s, n_b, 0.4, 0.01), asimov_significance(120.0, 200.0), rtol=1e-15
    )
    # The relative systematic applies to the background after the cut.
    np.testing.assert_allclose(
        final_significance(n_s, n_b, 0.4, 0.01, relative_uncertainty=0.01),
        asimov_significance_with_uncertainty(120.0, 200.0, 2.0),
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        initial_significance(n_s, n_b, relative_uncertainty=0.01),
        asimov_significance_with_uncertainty(n_s, n_b, 200.0),
        rtol=1e-15,
    )


def test_working_points_report_each_and_the_maximum():
    rng = np.random.default_rng(3)
    eps_b = np.asarray(DEFAULT_BACKGROUND_EFFICIENCIES)
    eps_s = np.clip(np.sqrt(eps_b) * rng.uniform(0.5, 1.5, size=(4, 6, eps_b.size)), 0, 1)
    n_s = np.array([10.0, 30.0, 100.0, 300.0])[:, None]
    result = significance_at_working_points(n_s, 20_000.0, eps_s, eps_b)
    expected = asimov_significance(n_s[..., None] * eps_s, 20_000.0 * eps_b)
    np.testing.assert_allclose(result.significance, expected, rtol=1e-15)
    np.testing.assert_array_equal(result.best_significance, expected.max(axis=-1))
    np.testing.assert_array_equal(result.best_index, expected.argmax(axis=-1))
    assert result.signal_efficiencies.shape == (4, 6, eps_b.size)
    with pytest.raises(ValueError, match="last axis"):
        significance_at_working_points(n_s, 20_000.0, eps_s[..., :3], eps_b)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="n_b"):
        asimov_significance(1.0, 0.0)
    with pytest.raises(ValueError, match="n_s"):
        asimov_significance(-1.0, 10.0)
    with pytest.raises(ValueError, match="sigma_b"):
        asimov_significance_with_uncertainty(1.0, 10.0, -1.0)
    with pytest.raises(ValueError, match="exactly one"):
        asimov_significance_with_uncertainty(1.0, 10.0, 1.0, relative_uncertainty=0.1)
    with pytest.raises(ValueError, match="eps_b"):
        final_significance(1.0, 10.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="eps_s"):
        final_significance(1.0, 10.0, 1.5, 0.5)
    with pytest.raises(ValueError, match="target_z"):
        signal_for_significance(-1.0, 10.0)


def test_jax_arrays_jit_and_gradient():
    s = jnp.asarray([0.0, 1e-4, 0.5, 30.0, 3e4], dtype=jnp.float32)
    b = jnp.float32(1e3)
    z_and_grad = jax.jit(
        jax.vmap(jax.value_and_grad(lambda s: asimov_significance_with_uncertainty(s, b, 0.1 * b)))
    )
    z, grad = z_and_grad(s)
    expected = asimov_significance_with_uncertainty(np.asarray(s, np.float64), 1e3, 100.0)
    np.testing.assert_allclose(np.asarray(z), expected, rtol=2e-5)
    # dZ/dN_s -> 1 / sqrt(N_b + sigma_b^2) at small signal; finite everywhere including 0.
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(np.asarray(grad[:2]), 1 / np.sqrt(1e3 + 1e4), rtol=1e-4)


def test_z_from_p_is_the_one_sided_gaussian_quantile():
    from jaxws.stats.significance import z_from_p

    p = np.array([0.5, 0.05, 1.349898e-3, 2.866516e-7, 1e-30, 0.9])
    np.testing.assert_allclose(z_from_p(p), stats.norm.isf(p), rtol=1e-12)
    np.testing.assert_allclose(z_from_p(2.866516e-7), 5.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(z_from_p(jnp.asarray(0.05))), 1.6448536, rtol=1e-5)
