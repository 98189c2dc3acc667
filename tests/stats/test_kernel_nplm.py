"""Kernel NPLM (Letizia et al. 2022): the fit against SciPy, its null against chi2, end to end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from margins import FIT, record_p
from scipy import optimize

from jaxws.methods import nplm as nplm_method
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm
from jaxws.stats.nplm import kernel as kernel_nplm


def _toys(key, n_toys, n_reference=2000, n_expected=100.0):
    n_max = toys.capacity(n_expected)

    def make(k):
        k_data, k_ref = jax.random.split(k)
        sample = toys.sample_data(k_data, n_expected, 0.0, toys.SignalShape(), n_max)
        reference = toys.sample_reference(k_ref, n_reference)
        x, d, r = nplm.nplm_inputs(
            sample.events, sample.mask, reference, jnp.ones(n_reference), n_expected
        )
        return nplm_method.standardise_by_reference(x, r), d, r

    return jax.vmap(make)(jax.random.split(key, n_toys))


def test_kernel_width_is_the_quantile_of_pairwise_distances():
    events = np.array([[0.0], [1.0], [3.0]])  # distances 1, 2, 3
    assert kernel_nplm.kernel_width(events, 0.5) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="width 0"):
        kernel_nplm.kernel_width(np.zeros((5, 2)))


@pytest.mark.numerical
def test_kernel_fit_reaches_the_scipy_minimum():
    # The penalised loss in the whitened coordinates beta (alpha = T^-1 beta, T^T T = K_MM +
    # jitter M I) is strongly convex and well conditioned, so SciPy's BFGS reaches its minimum
    # to ~1e-13; the Newton fit must reach the same value to 1e-9 (absolute, on a penalised
    # loss of about -1.1) whatever the CPU's code generation (K_MM itself has condition ~1e17).
    jax.config.update("jax_enable_x64", True)
    try:
        x, d, r = (np.asarray(a[0], np.float64) for a in _toys(jax.random.key(0), 1, 300, 40.0))
        spec = kernel_nplm.KernelSpec(n_centres=12, iterations=50, tolerance=1e-13)
        sigma, penalty, ridge = 0.8, 0.5, 12 * spec.jitter
        fit = kernel_nplm.fit_kernel_nplm(jax.random.key(1), x, d, r, sigma, penalty, spec)
        k_nm = np.asarray(kernel_nplm.gaussian_kernel(x, fit.centres, sigma))
        k_mm = np.asarray(kernel_nplm.gaussian_kernel(fit.centres, fit.centres, sigma))
        eigenvalues, eigenvectors = np.linalg.eigh(k_mm)
        features = k_nm @ (eigenvectors / np.sqrt(np.maximum(eigenvalues, 0.0) + ridge))

        def whitened(beta):
            f = features @ beta
            return np.sum(r * np.expm1(f) - d * f) + 0.5 * penalty * beta @ beta

        def whitened_gradient(beta):
            return features.T @ (r * np.exp(features @ beta) - d) + penalty * beta

        reference = optimize.minimize(
            whitened, np.zeros(12), jac=whitened_gradient, method="BFGS", tol=1e-14
        )
        assert np.max(np.abs(reference.jac)) < 1e-8, reference
        alpha = np.asarray(fit.alpha)
        f = k_nm @ alpha
        penalised = (
            np.sum(r * np.expm1(f) - d * f)
            + 0.5 * penalty * alpha @ (k_mm + ridge * np.eye(12)) @ alpha
        )
        assert abs(penalised - reference.fun) < 1e-9, (penalised, reference.fun)
        gradient = k_nm.T @ (r * np.exp(f) - d) + penalty * (k_mm + ridge * np.eye(12)) @ alpha
        assert np.max(np.abs(gradient)) < 1e-4, gradient  # O(10) at alpha = 0
        assert bool(fit.converged)
        assert 1 <= int(fit.iterations) < spec.iterations
        assert float(fit.decrement) <= 1e-13 * max(1.0, abs(penalised))
        np.testing.assert_allclose(fit.t, -2 * np.sum(r * np.expm1(f) - d * f), rtol=1e-10)
        # Capped at one Newton step, the fit says it did not converge.
        capped = kernel_nplm.fit_kernel_nplm(
            jax.random.key(1), x, d, r, sigma, penalty, kernel_nplm.KernelSpec(12, 1, 1e-13)
        )
        assert not bool(capped.converged)
        assert int(capped.iterations) == 1
        assert float(capped.decrement) > 1e-13
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.mark.statistical
@pytest.mark.numerical
def test_kernel_null_follows_chi2_at_fitted_dof_in_bulk_and_tail():
    # 200 null toys, N_R = 2000, N(R) = 100, M = 50, lambda = 1, sigma the 0.9 quantile.
    x, d, r = _toys(jax.random.key(2), 200)
    sigma = kernel_nplm.kernel_width(np.asarray(x[0])[np.asarray(r[0]) > 0])
    keys = jax.random.split(jax.random.key(3), 200)
    spec = kernel_nplm.KernelSpec(50, 30)
    fits = kernel_nplm.fit_kernel_ensemble(keys, x, d, r, sigma, 1.0, spec)
    t = fits.t
    # Every toy converged (float32) well inside the cap, and its t is that of one toy alone.
    assert fits.converged.all(), fits.decrement
    assert fits.iterations.max() < 30, fits.iterations
    single = kernel_nplm.fit_kernel_nplm(keys[7], x[7], d[7], r[7], sigma, 1.0, spec)
    np.testing.assert_allclose(t[7], single.t, rtol=1e-4)
    dof = nplm.fit_chi2_dof(t[t > 0])
    comparison = nplm.compare_with_chi2(t, dof)
    # KS against chi2(fitted dof) (optimistic since fitted) and the tail counts beyond its 95%
    # and 99% points (binomial, 200 toys: expected 10 and 2).
    record_p("KS vs chi2(fitted dof)", comparison["ks_pvalue"], 0.01, FIT)
    record_p("binomial count beyond q95", comparison["binomial_pvalue_q95"], 0.01, FIT)
    record_p("binomial count beyond q99", comparison["binomial_pvalue_q99"], 0.01, FIT)
    assert comparison["ks_pvalue"] > 0.01, comparison
    assert comparison["binomial_pvalue_q95"] > 0.01, comparison
    assert comparison["binomial_pvalue_q99"] > 0.01, comparison
    assert comparison["n_nonpositive"] == 0


def test_kernel_model_end_to_end(tmp_path):
    from hydra import compose, initialize_config_dir

    from jaxws.track import Tracker

    config_dir = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=nplm",
                "method.model=kernel",
                "method.n_toys=20",
                "method.chunk_size=20",
                "method.signal_fractions=[0.2]",
                "method.n_signal_toys=4",
                "method.progress=false",
                "data.n_reference=1000",
                "data.n_expected=50",
            ],
        )
    metrics = nplm_method.run(cfg, jax.random.key(0), tmp_path, Tracker(tmp_path))
    assert metrics["kernel_width"] > 0
    assert metrics["null/n_not_converged"] == 0
    assert metrics["sensitivity/0.2/n_not_converged"] == 0
    assert metrics["observed/converged"]
    assert metrics["n_parameters"] == 50
    assert 0 < metrics["null/dof"] < 50
    assert np.isfinite(metrics["observed/t"])
    assert np.isfinite(metrics["sensitivity/0.2/z_chi2"])


def test_toys_whose_fits_did_not_converge_are_counted_warned_and_left_out(capsys):
    from jaxws.config import ConfigError
    from jaxws.methods.nplm.toy_statistics import ToyStatistics, converged_only

    toys_ = ToyStatistics(
        np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [3.0]]), np.array([True, False, True])
    )
    t, history, n_bad = converged_only(toys_, "null toys")
    np.testing.assert_array_equal(t, [1.0, 3.0])
    np.testing.assert_array_equal(history[:, 0], [1.0, 3.0])
    assert n_bad == 1
    assert "null toys: 1 of 3 toys' fits did not converge" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"method\.kernel_iterations"):
        converged_only(toys_._replace(converged=np.zeros(3, bool)), "null toys")
