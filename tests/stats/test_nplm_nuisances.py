"""NPLM with systematic nuisances (arXiv:2111.13633): closed forms, vmapped toys, the null.

Conventions: :mod:`jaxws.stats.nplm.nuisances` (nuisances in units of sigma, t = tau - Delta).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from margins import FIT, SAMPLING, TRAINED, median_se, quantile_se, record, record_p
from scipy import integrate, optimize, special
from scipy import stats as scipy_stats

from jaxws.config import ConfigError, from_section
from jaxws.methods import nplm as nplm_method
from jaxws.methods.nplm.nuisances import nuisance_toy_maker, nuisance_toy_statistics
from jaxws.simulate import nplm_nuisance_toys as nuisance_toys
from jaxws.stats import nplm
from jaxws.stats.nplm import nuisances
from jaxws.stats.nplm.adam import fit_adam
from jaxws.track import Tracker

SPEC = nplm.NetworkSpec()


def _events(seed: int, n_data: int, n_reference: int, scale: float = 1.0):
    """Exponential data (scaled) and reference as the weighted one-member form of NPLM."""
    rng = np.random.default_rng(seed)
    data = scale * rng.exponential(size=n_data)
    reference = rng.exponential(size=n_reference)
    observable = np.concatenate([data, reference])
    data_weight = np.concatenate([np.ones(n_data), np.zeros(n_reference)])
    return observable, data_weight


def _numpy_loss(nu, observable, data_weight, reference_weight, sigma, auxiliary):
    """The loss of the module docstring in float64 NumPy, f = 0."""
    u = sigma[1] * nu[1]
    delta = sigma[0] * nu[0] - u - observable * np.expm1(-u)
    extended = np.sum(reference_weight * np.expm1(delta) - data_weight * delta)
    return extended + 0.5 * np.sum((nu - auxiliary) ** 2 - auxiliary**2)


def test_log_ratio_reweights_reference_to_the_shifted_density():
    # Quadrature (the tail beyond x = 200 is below e^-150): exp(-x) exp(delta(x; nu))
    # integrates to exp(sigma_N nu_N) and its mean is the scale exp(sigma_S nu_S) (the
    # density of s E with E ~ exp(-x), times the rate).
    sigma = np.array([0.2, 0.1])
    for nu in ([1.5, -2.0], [-1.0, 2.5]):
        nu = np.array(nu)

        def weighted(x: float, power: int, nu: np.ndarray = nu) -> float:
            ratio = nuisances.log_ratio(jnp.asarray(nu), jnp.asarray([x]), jnp.asarray(sigma))
            return x**power * np.exp(float(ratio[0]) - x)

        rate, _ = integrate.quad(weighted, 0, 200, args=(0,))
        mean, _ = integrate.quad(weighted, 0, 200, args=(1,))
        assert rate == pytest.approx(np.exp(sigma[0] * nu[0]), rel=1e-5)
        assert mean / rate == pytest.approx(np.exp(sigma[1] * nu[1]), rel=1e-5)


@pytest.mark.statistical
def test_toys_at_true_nuisances_follow_the_shifted_exponential():
    # 2000 toys at nu* = (1, 2), sigma = (0.2, 0.1): the count is Poisson with mean
    # 50 e^0.2 (z-test of the mean count at 4 sigma), the events are exponential of scale e^0.2
    # (KS on the first toy's events pooled over 200 toys), and A ~ Normal(nu*, 1) (KS).
    truth, sigma = jnp.asarray([1.0, 2.0]), jnp.asarray([0.2, 0.1])
    n_max = 200
    keys = jax.random.split(jax.random.key(3), 2000)
    samples = jax.vmap(
        lambda k: nuisance_toys.sample_data_with_nuisances(k, 50.0, truth, sigma, n_max)
    )(keys)
    counts = np.asarray(samples.mask.sum(1))
    mean = 50.0 * np.exp(0.2)
    se = np.sqrt(mean / len(counts))
    record("|mean count - 50 e^0.2| < 4 SE", abs(counts.mean() - mean), 4 * se, se, SAMPLING, False)
    assert abs(counts.mean() - mean) < 4 * se
    assert not np.any(np.asarray(samples.overflow))
    events = np.asarray(samples.events[:200, :, 0])[np.asarray(samples.mask[:200]) > 0]
    p_value = scipy_stats.kstest(events, scipy_stats.expon(scale=np.exp(0.2)).cdf).pvalue
    record_p("KS events vs shifted exponential", p_value, 0.01, SAMPLING)
    assert p_value > 0.01
    auxiliary = np.asarray(jax.vmap(lambda k: nuisance_toys.sample_auxiliary(k, truth))(keys))
    for i in range(2):
        p_value = scipy_stats.kstest(auxiliary[:, i] - float(truth[i]), "norm").pvalue
        record_p("KS auxiliary A - nu* vs normal (2)", p_value, 0.01, SAMPLING)
        assert p_value > 0.01


@pytest.mark.numerical
@pytest.mark.parametrize(("n_data", "auxiliary"), [(130, 0.7), (85, -1.2), (100, 2.5)])
def test_normalisation_delta_against_lambert_w_and_scipy(n_data, auxiliary):
    # Normalisation only: L(nu) = R (e^{s nu} - 1) - D s nu + (nu - A)^2 / 2 - A^2 / 2. Its
    # minimum solves R s e^{s nu} = D s + A - nu: nu = c - W(R s^2 e^{s c}) / s, c = A + D s.
    n_expected, sigma_n = 100.0, 0.15
    observable, data_weight = _events(1, n_data, 2000)
    reference_weight = (1 - data_weight) * n_expected / 2000
    setup = nuisances.NuisanceSetup(jnp.asarray([sigma_n, 0.0]), jnp.asarray([auxiliary, 0.9]))
    delta, nu_hat, converged = jax.jit(nuisances.fit_nuisances_only)(
        jnp.asarray(observable, jnp.float32),
        jnp.asarray(data_weight, jnp.float32),
        jnp.asarray(reference_weight, jnp.float32),
        setup,
    )
    c = auxiliary + n_data * sigma_n
    nu_closed = c - special.lambertw(n_expected * sigma_n**2 * np.exp(sigma_n * c)).real / sigma_n

    def loss(nu: float) -> float:
        return (
            n_expected * np.expm1(sigma_n * nu)
            - n_data * sigma_n * nu
            + 0.5 * ((nu - auxiliary) ** 2 - auxiliary**2)
        )

    scipy_min = optimize.minimize_scalar(loss, bracket=(-5, 5), tol=1e-12)
    assert scipy_min.x == pytest.approx(nu_closed, abs=1e-6)
    assert float(nu_hat[0]) == pytest.approx(nu_closed, abs=2e-4)
    assert float(nu_hat[1]) == 0.0  # the scale is off (sigma 0): its auxiliary value is ignored
    assert float(delta) == pytest.approx(-2 * loss(nu_closed), abs=2e-3)
    assert bool(converged)


@pytest.mark.numerical
def test_scale_and_normalisation_delta_against_scipy():
    # Both nuisances on data drawn at a larger scale: Delta and nu-hat against BFGS in float64.
    sigma, auxiliary = np.array([0.1, 0.05]), np.array([0.4, 1.1])
    observable, data_weight = _events(2, 220, 4000, scale=1.08)
    reference_weight = (1 - data_weight) * 200.0 / 4000
    delta, nu_hat, converged = jax.jit(nuisances.fit_nuisances_only)(
        jnp.asarray(observable, jnp.float32),
        jnp.asarray(data_weight, jnp.float32),
        jnp.asarray(reference_weight, jnp.float32),
        nuisances.NuisanceSetup(jnp.asarray(sigma), jnp.asarray(auxiliary)),
    )
    args = (observable, data_weight, reference_weight, sigma, auxiliary)
    reference = optimize.minimize(_numpy_loss, np.zeros(2), args=args, method="BFGS")
    gradient = optimize.approx_fprime(reference.x, _numpy_loss, 1e-7, *args)
    assert np.max(np.abs(gradient)) < 1e-4, gradient
    np.testing.assert_allclose(np.asarray(nu_hat), reference.x, atol=2e-3)
    assert float(delta) == pytest.approx(-2 * reference.fun, abs=5e-3)
    assert bool(converged)
    # Given no Newton step (nu stays at 0), the fit says it has not converged.
    _, _, capped = jax.jit(nuisances.fit_nuisances_only, static_argnums=4)(
        jnp.asarray(observable, jnp.float32),
        jnp.asarray(data_weight, jnp.float32),
        jnp.asarray(reference_weight, jnp.float32),
        nuisances.NuisanceSetup(jnp.asarray(sigma), jnp.asarray(auxiliary)),
        0,
    )
    assert not bool(capped)
    assert reference.x[1] > 1.0  # the scale is pulled up by data at 1.08: a real shape fit


def _toy_inputs(n_toys: int, sigma=(0.2, 0.1), truth=(1.0, -1.0), seed: int = 0):
    data = nplm_method.ExponentialToyConfig(n_reference=300, n_expected=40.0)
    settings = nplm_method.NPLMConfig(progress=False)
    make = nuisance_toy_maker(data, settings, sigma, truth)
    return make(jax.random.split(jax.random.key(seed), n_toys))


def test_vmapped_toys_equal_single_fits():
    x, observable, data_weight, reference_weight, setup, _ = _toy_inputs(3)
    keys = jax.random.split(jax.random.key(1), 3)
    hparams = nplm.NPLMHparams(jnp.float32(0.05), jnp.float32(9.0))
    train = nplm.NPLMTraining(60, (30, 60))
    fits = nuisances.fit_nuisance_toys(
        keys, x, observable, data_weight, reference_weight, setup, hparams, SPEC, train, 2
    )
    single = jax.jit(nuisances.fit_with_nuisances, static_argnums=(7, 8))
    for i in range(3):
        one = single(
            keys[i],
            x[i],
            observable[i],
            data_weight[i],
            reference_weight[i],
            nuisances.NuisanceSetup(setup.sigma[i], setup.auxiliary[i]),
            hparams,
            SPEC,
            train,
        )
        for name in ("t", "tau", "delta", "t_history", "nu_tau", "nu_delta"):
            np.testing.assert_allclose(
                getattr(fits, name)[i], np.asarray(getattr(one, name)), rtol=1e-4, atol=1e-4
            )
        assert fits.t[i] == pytest.approx(fits.tau[i] - fits.delta[i], abs=1e-4)


def test_nuisances_off_give_plain_nplm():
    # sigma = 0: nu stays 0 whatever A, Delta = 0 and tau is plain NPLM's t (Adam is
    # per-coordinate, so the frozen nu leaves the network's steps unchanged).
    x, observable, data_weight, reference_weight, setup, _ = _toy_inputs(1, sigma=(0.0, 0.0))
    hparams = nplm.NPLMHparams(jnp.float32(0.05), jnp.float32(9.0))
    train = nplm.NPLMTraining(80)
    key = jax.random.key(4)
    off = nuisances.NuisanceSetup(setup.sigma[0], setup.auxiliary[0])
    assert float(jnp.max(jnp.abs(off.auxiliary))) > 0  # A is drawn, and ignored
    fit = nuisances.fit_with_nuisances(
        key, x[0], observable[0], data_weight[0], reference_weight[0], off, hparams, SPEC, train
    )
    plain = fit_adam(key, x[0], data_weight[0], reference_weight[0], hparams, SPEC, train)
    assert float(fit.delta) == 0.0
    np.testing.assert_array_equal(np.asarray(fit.nu_tau), 0.0)
    assert float(fit.t) == pytest.approx(float(plain.t), rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# The null at a shifted true normalisation (statistical, fixed seed)
# ---------------------------------------------------------------------------------------------

# N_R = 1000, N(R) = 50, 1-4-1 clipped at 9, Adam at 0.1 for 3000 epochs (t's median rises by
# 0.3 between epochs 2000 and 3000 here), 100 toys with the true normalisation at +2 sigma,
# sigma_N = 0.2 (the data hold 50 e^0.4 = 75 events on average), auxiliary A ~ Normal(2, 1).
SHIFTED_TOYS, SHIFTED_TRUTH, SIGMA_N = 100, 2.0, 0.2


@pytest.fixture(scope="module")
def shifted_normalisation():
    data = nplm_method.ExponentialToyConfig(n_reference=1000, n_expected=50.0)
    settings = nplm_method.NPLMConfig(
        learning_rate=0.1, epochs=3000, checkpoints=(), chunk_size=SHIFTED_TOYS, progress=False
    )
    result = nuisance_toy_statistics(
        jax.random.key(7),
        data,
        settings,
        SHIFTED_TOYS,
        (SIGMA_N, 0.0),
        (SHIFTED_TRUTH, 0.0),
        without_nuisances=True,
    )
    return result, nplm.n_parameters(SPEC)


@pytest.mark.statistical
def test_shifted_normalisation_biases_plain_nplm(shifted_normalisation):
    # Without the nuisance the +2 sigma normalisation is new physics to NPLM: far more than
    # 5% of the toys pass chi2(13)'s 95% point (one-sided binomial, p < 1e-10) and the median
    # t moves up by more than 5 against the test with the nuisance on the same toys.
    result, dof = shifted_normalisation
    without = nplm.tail_comparison(result["t_without_nuisances"], dof)
    p_value = without["excess_pvalue_q95"]
    record_p("power: plain NPLM excess beyond q95", p_value, 1e-10, TRAINED, power=True)
    assert p_value < 1e-10, without
    shift = np.median(result["t_without_nuisances"]) - np.median(result["t"])
    se = np.hypot(median_se(result["t_without_nuisances"]), median_se(result["t"]))
    record("median t shift without nuisance > 5", shift, 5.0, se, TRAINED)
    assert shift > 5.0


@pytest.mark.statistical
def test_null_with_the_nuisance_follows_chi2_whatever_the_true_normalisation(
    shifted_normalisation,
):
    # With the nuisance, t = tau - Delta at +2 sigma keeps chi2(13)'s tail: the count beyond
    # its 95% point is not in excess (one-sided binomial at 1%: critical count 12 of 100; power
    # 0.84 against a tail with 15% beyond, 0.99 against 20%, ~1 against the plain test's bias
    # above), nor off two-sided, and the empirical 95% quantile is not above chi2's by more
    # than 15%. The median is not above chi2(13)'s by more than 1.5 (plain NPLM's moves up by
    # more than 8 here); below it the bound is loose (3) because at this size and training
    # length the bulk sits below chi2(13) with or without nuisances (200 toys each in
    # docs/nplm.md: median 10.1 for plain NPLM at nu = 0, 10.2 with the nuisance at +2 sigma,
    # KS rejecting chi2(13) for both), so KS against chi2(13) is not asserted.
    result, dof = shifted_normalisation
    t = result["t"]
    comparison = nplm.compare_with_chi2(t, dof)
    record_p("excess beyond chi2 q95", comparison["excess_pvalue_q95"], 0.01, TRAINED)
    record_p("binomial count beyond chi2 q95", comparison["binomial_pvalue_q95"], 0.01, TRAINED)
    assert comparison["excess_pvalue_q95"] > 0.01, comparison
    assert comparison["binomial_pvalue_q95"] > 0.01, comparison
    chi2 = scipy_stats.chi2(dof)
    se = quantile_se(0.95, len(t), chi2.pdf(comparison["q95_chi2"]))
    bound = 1.15 * comparison["q95_chi2"]
    record("q95 < 1.15 chi2 q95", comparison["q95_empirical"], bound, se, TRAINED, above=False)
    assert comparison["q95_empirical"] < bound, comparison
    median_chi2, se = chi2.median(), median_se(t)
    record("median t < chi2 median + 1.5", np.median(t), median_chi2 + 1.5, se, TRAINED, False)
    record("median t > chi2 median - 3", np.median(t), median_chi2 - 3.0, se, TRAINED)
    assert median_chi2 - 3.0 < np.median(t) < median_chi2 + 1.5
    # tau >= Delta up to Adam's last steps, and the nuisance fit finds the shift: nu-hat
    # combines A (sd 1) with the data count (sd about 0.6): its mean over 100 toys has a
    # standard error near 0.05.
    assert np.min(t) > -0.05
    nu_hat = result["nu_delta"][:, 0]
    se = np.std(nu_hat, ddof=1) / np.sqrt(len(nu_hat))
    record(
        "|mean nu-hat - truth| < 0.25", abs(np.mean(nu_hat) - SHIFTED_TRUTH), 0.25, se, FIT, False
    )
    assert abs(np.mean(nu_hat) - SHIFTED_TRUTH) < 0.25


# ---------------------------------------------------------------------------------------------
# Config and the experiment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"normalisation_sigma": -0.1}, "method.normalisation_sigma must be >= 0"),
        ({"scale_sigma": float("nan")}, "method.scale_sigma must be >= 0"),
        ({"true_nuisances": [1.0]}, "method.true_nuisances must be two finite numbers"),
        ({"true_nuisances": [2.0, 0.0]}, "needs a nonzero method.normalisation_sigma"),
        ({"normalisation_sigma": 0.1, "optimizer": "newton"}, "method.optimizer=adam"),
        ({"normalisation_sigma": 0.1, "test": "symmetrized", "clip": None}, "method.test=nplm"),
    ],
)
def test_bad_nuisance_config_is_refused_in_one_line(bad, message):
    with pytest.raises(ConfigError, match=message) as caught:
        from_section(nplm_method.NPLMConfig, bad, "method")
    assert "\n" not in str(caught.value)


def _compose(*overrides):
    config_dir = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=nplm", *overrides])


def test_run_with_nuisances_end_to_end(tmp_path):
    cfg = _compose(
        "method.epochs=60",
        "method.learning_rate=0.1",
        "method.checkpoints=[20]",
        "method.n_toys=6",
        "method.chunk_size=4",
        "method.normalisation_sigma=0.2",
        "method.scale_sigma=0.05",
        "method.true_nuisances=[2.0,-1.0]",
        "data.n_reference=300",
        "data.n_expected=40",
    )
    metrics = nplm_method.run(cfg, jax.random.key(0), tmp_path, Tracker(tmp_path))
    saved = json.loads(next(tmp_path.rglob("nuisance_toys*.json")).read_text())
    assert len(saved["t"]) == 6
    assert len(saved["t_without_nuisances"]) == 6
    np.testing.assert_allclose(
        np.asarray(saved["t"]), np.asarray(saved["tau"]) - np.asarray(saved["delta"]), atol=1e-4
    )
    assert metrics["null/n_toys"] == 6
    assert metrics["without_nuisances/n_toys"] == 6
    assert metrics["nuisances/normalisation/sigma"] == 0.2
    assert metrics["nuisances/scale/true"] == -1.0
    assert any(tmp_path.rglob("null_t_histogram*.png"))
    # Nuisances are for simulated toys with a fresh reference: a fixed one is refused.
    with pytest.raises(ConfigError, match=r"data\.fixed_reference false"):
        nplm_method.run(
            _compose("method.normalisation_sigma=0.2", "data.fixed_reference=true"),
            jax.random.key(0),
            tmp_path / "refused",
            Tracker(tmp_path / "refused"),
        )
