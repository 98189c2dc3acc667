"""NPLM and symmetrized NPLM: closed forms, vmapped ensembles, null distributions, bad input.

Statistical tests use fixed seeds. The NPLM null is tested with the default statistic (Adam,
every weight clipped, glorot initialisation, standardised inputs) at a CI size: N_R =
CI_REFERENCE, N(R) = CI_EXPECTED, Adam at rate CI_RATE for CI_EPOCHS epochs (t has reached its
plateau there: docs/nplm.md). The symmetrized tests use the Newton option. See docs/nplm.md.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from margins import SAMPLING, TRAINED, chi2_dof_se, median_se, quantile_se, record, record_p
from omegaconf import OmegaConf
from scipy import stats as scipy_stats

from jaxws.config import ConfigError
from jaxws.methods import nplm as nplm_method
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm
from jaxws.stats.nplm import newton
from jaxws.stats.significance import z_from_p

NPLM_REFERENCE = 5000
NPLM_EXPECTED = 500.0
NEWTON_ITERATIONS = 160
SPEC = nplm.NetworkSpec()
NEWTON = nplm.NPLMTraining(
    NEWTON_ITERATIONS, (NEWTON_ITERATIONS // 2, NEWTON_ITERATIONS), optimizer="newton"
)
CLIPPED = nplm.NPLMHparams(jnp.float32(0.05), jnp.float32(9.0))
UNCLIPPED = nplm.NPLMHparams(jnp.float32(0.05), jnp.float32(jnp.inf))


def _settings(**overrides) -> nplm_method.NPLMConfig:
    base = dict(
        progress=False,
        optimizer="newton",
        epochs=NEWTON_ITERATIONS,
        checkpoints=(NEWTON_ITERATIONS // 2,),
        chunk_size=50,
    )
    base.update(overrides)
    return nplm_method.NPLMConfig(**base)


def _data(**overrides) -> nplm_method.ExponentialToyConfig:
    base = dict(n_reference=NPLM_REFERENCE, n_expected=NPLM_EXPECTED)
    base.update(overrides)
    return nplm_method.ExponentialToyConfig(**base)


# ---------------------------------------------------------------------------------------------
# Closed forms and the vmapped path
# ---------------------------------------------------------------------------------------------


def test_parameter_count_of_paper_network():
    assert nplm.n_parameters(nplm.NetworkSpec()) == 13
    params = nplm.init_test_function(jax.random.key(0), nplm.NetworkSpec())
    assert ravel_pytree(params)[0].size == 13
    assert nplm.n_parameters(nplm.NetworkSpec(2, (5, 3))) == 2 * 5 + 5 + 5 * 3 + 3 + 3 + 1


def test_apply_matches_flax_module():
    spec = nplm.NetworkSpec(2, (4, 3), "tanh")
    params = nplm.init_test_function(jax.random.key(1), spec)
    x = jax.random.normal(jax.random.key(2), (7, 2))
    module = nplm.TestFunction(spec.hidden, spec.activation)
    np.testing.assert_allclose(
        nplm.apply_test_function(params, x, spec), module.apply(params, x), rtol=1e-5, atol=1e-6
    )


@pytest.mark.numerical
def test_loss_against_numpy_and_constant_f_optimum():
    rng = np.random.default_rng(0)
    f = rng.normal(size=50)
    d = (rng.uniform(size=50) < 0.3).astype(float)
    r = (1 - d) * 0.2
    expected = np.sum(r * (np.exp(f) - 1) - d * f)
    np.testing.assert_allclose(np.sum(nplm.nplm_loss_terms(f, d, r)), expected, rtol=1e-6)
    # Constant f = c: minimum at exp(c) = N_D / N(R), t = 2 (N_D log(N_D / N(R)) - N_D + N(R))
    n_data, n_expected = d.sum(), r.sum()
    c = np.log(n_data / n_expected)
    t = -2 * np.sum(nplm.nplm_loss_terms(np.full(50, c), d, r))
    np.testing.assert_allclose(
        t, 2 * (n_data * np.log(n_data / n_expected) - n_data + n_expected), rtol=1e-6
    )


@pytest.mark.numerical
def test_closed_form_hessian_matches_autodiff():
    jax.config.update("jax_enable_x64", True)
    try:
        for spec in (nplm.NetworkSpec(), nplm.NetworkSpec(2, (3,), "tanh")):
            params = nplm.init_test_function(jax.random.key(3), spec)
            params = jax.tree.map(lambda a: 3.0 * a.astype(jnp.float64), params)
            flat, unravel = ravel_pytree(params)
            x = jax.random.normal(jax.random.key(4), (40, spec.n_inputs), dtype=jnp.float64)
            d = (jnp.arange(40) < 15).astype(jnp.float64)
            r = (1 - d) * 0.6

            def loss(p, x=x, d=d, r=r, spec=spec, unravel=unravel):
                f = nplm.apply_test_function(unravel(p), x, spec)
                return jnp.sum(nplm.nplm_loss_terms(f, d, r))

            grad, hessian = newton.one_hidden_layer_derivatives(unravel(flat), x, d, r, spec)
            autodiff = jax.jit(lambda p, loss=loss: (jax.grad(loss)(p), jax.hessian(loss)(p)))
            reference_grad, reference_hessian = autodiff(flat)
            np.testing.assert_allclose(grad, reference_grad, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(hessian, reference_hessian, rtol=1e-10, atol=1e-9)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_clipping_touches_kernels_only():
    params = jax.tree.map(lambda a: a + 20.0, nplm.init_test_function(jax.random.key(0), SPEC))
    clipped = nplm.clip_kernels(params, 9.0)
    for layer in ("hidden_0", "output"):
        assert float(jnp.max(jnp.abs(clipped["params"][layer]["kernel"]))) <= 9.0
        np.testing.assert_array_equal(
            clipped["params"][layer]["bias"], params["params"][layer]["bias"]
        )


def _small_nplm_inputs(key, n_toys, n_reference=400, n_expected=60.0, fraction=0.0):
    n_max = toys.capacity(n_expected * (1 + fraction))

    def make(k):
        k_data, k_ref = jax.random.split(k)
        sample = toys.sample_data(k_data, n_expected, fraction, toys.SignalShape(), n_max)
        reference = toys.sample_reference(k_ref, n_reference)
        return nplm.nplm_inputs(
            sample.events, sample.mask, reference, jnp.ones(n_reference), n_expected
        )

    return jax.vmap(make)(jax.random.split(key, n_toys))


@pytest.mark.parametrize("optimizer", ["adam", "newton"])
def test_ensemble_member_equals_single_fit(optimizer):
    x, dw, rw = _small_nplm_inputs(jax.random.key(5), 5)
    keys = jax.random.split(jax.random.key(6), 5)
    train = nplm.NPLMTraining(30, (10, 30), optimizer=optimizer)
    hp = nplm.NPLMHparams(jnp.array([0.01, 0.02, 0.03, 0.04, 0.05]), jnp.full(5, 9.0))
    ensemble = nplm.fit_toys(keys, x, dw, rw, hp, SPEC, train, chunk_size=2)
    for i in (0, 4):  # member 4 sits in the padded last chunk
        single = nplm.fit_test_function(
            keys[i],
            x[i],
            dw[i],
            rw[i],
            nplm.NPLMHparams(hp.learning_rate[i], hp.clip[i]),
            SPEC,
            train,
        )
        np.testing.assert_allclose(ensemble.t_history[i], single.t_history, rtol=2e-4, atol=2e-4)
    assert ensemble.t.shape == (5,)
    assert ensemble.t_history.shape == (5, 2)


def test_same_seed_same_numbers():
    x, dw, rw = _small_nplm_inputs(jax.random.key(7), 3)
    keys = jax.random.split(jax.random.key(8), 3)
    train = nplm.NPLMTraining(20, optimizer="newton")
    first = nplm.fit_toys(keys, x, dw, rw, CLIPPED, SPEC, train)
    second = nplm.fit_toys(keys, x, dw, rw, CLIPPED, SPEC, train)
    np.testing.assert_array_equal(first.t, second.t)


@pytest.mark.numerical
def test_newton_ends_at_a_stationary_point_of_the_clipped_loss():
    """Newton's t never decreases and its end is first-order stationary on the clip box.

    Issue 12 asks for a test that Newton reaches long Adam training's t. It does not in general:
    from the same initial weights the two fits end in different local minima of the clipped
    1-4-1 loss (experiments/nplm_newton_vs_adam.py: on 4 null toys at N_R = 2000, N(R) = 200,
    Adam minus Newton = +0.52, -2.33, -1.29, 0.00, and Adam restarted from Newton's end keeps
    Newton's t; docs/nplm.md). So only what holds is tested: every accepted step lowers the
    loss, and after 200 iterations the gradient over the weights not held at the bound is below
    1% of its value at the start (observed at most 0.14% on these toys).
    """
    x, dw, rw = _small_nplm_inputs(jax.random.key(10), 4, n_reference=2000, n_expected=200.0)
    keys = jax.random.split(jax.random.key(110), 4)
    train = nplm.NPLMTraining(200, (25, 50, 100, 200), optimizer="newton")
    fits = nplm.fit_toys(keys, x, dw, rw, CLIPPED, SPEC, train)
    assert np.all(np.diff(fits.t_history, axis=1) >= 0)
    clip = float(CLIPPED.clip)
    for i in range(4):
        final, unravel = ravel_pytree(jax.tree.map(lambda a, i=i: jnp.asarray(a[i]), fits.params))
        initial = ravel_pytree(nplm.clip_weights(nplm.init_test_function(keys[i], SPEC), clip))[0]

        def loss(p, i=i, unravel=unravel):
            f = nplm.apply_test_function(unravel(p), x[i], SPEC)
            return jnp.sum(nplm.nplm_loss_terms(f, dw[i], rw[i]))

        gradient = jax.grad(loss)(final)
        # Held: at the bound with the descent direction pointing out of the box (KKT).
        held = (jnp.abs(final) >= clip * (1 - 1e-6)) & (final * gradient < 0)
        free = float(jnp.linalg.norm(jnp.where(held, 0.0, gradient)))
        assert free < 0.01 * float(jnp.linalg.norm(jax.grad(loss)(initial))), i
    assert fits.converged.shape == (4,)
    # One Newton step from the initial weights is far from a minimum: every toy is flagged.
    one = nplm.fit_toys(keys, x, dw, rw, CLIPPED, SPEC, nplm.NPLMTraining(1, optimizer="newton"))
    assert not one.converged.any()


@pytest.mark.statistical
def test_p_values_and_z_conventions():
    null = np.arange(1.0, 100.0)  # 99 toys
    assert nplm.empirical_p_value(1000.0, null) == pytest.approx(1 / 100)
    assert nplm.empirical_p_value(0.0, null) == 1.0
    assert nplm.empirical_p_value(50.0, null) == pytest.approx(51 / 100)
    assert z_from_p(0.5) == pytest.approx(0.0)
    assert z_from_p(scipy_stats.norm.sf(3.0)) == pytest.approx(3.0)
    assert nplm.chi2_p_value(13.0, 13) == pytest.approx(scipy_stats.chi2.sf(13.0, 13))
    t = scipy_stats.chi2(7.0).rvs(size=4000, random_state=1)
    fitted = nplm.fit_chi2_dof(t)
    se = chi2_dof_se(7.0, t.size)
    record("|fitted dof of chi2(7) draws - 7| < 3%", abs(fitted - 7.0), 0.21, se, SAMPLING, False)
    assert fitted == pytest.approx(7.0, rel=0.03)


# ---------------------------------------------------------------------------------------------
# Null distributions (statistical, fixed seeds)
# ---------------------------------------------------------------------------------------------

SYMMETRIZED_ITERATIONS = 80  # unclipped: longer training drifts above chi2 (the slides' warning)
# CI size of the default statistic (Adam, all weights clipped at 9, glorot, standardised).
CI_REFERENCE, CI_EXPECTED, CI_RATE, CI_EPOCHS, CI_TOYS = 2000, 100.0, 0.1, 8000, 200


def _ci_settings(**overrides) -> nplm_method.NPLMConfig:
    base = dict(
        learning_rate=CI_RATE, epochs=CI_EPOCHS, checkpoints=(), chunk_size=100, progress=False
    )
    base.update(overrides)
    return nplm_method.NPLMConfig(**base)


def _ci_data() -> nplm_method.ExponentialToyConfig:
    return nplm_method.ExponentialToyConfig(n_reference=CI_REFERENCE, n_expected=CI_EXPECTED)


@pytest.fixture(scope="module")
def nplm_null():
    (row,) = nplm_method.clip_calibration(
        jax.random.key(11), _ci_data(), _ci_settings(), (9.0,), CI_TOYS
    )
    return row


@pytest.mark.statistical
def test_default_nplm_null_tail_is_not_anti_conservative(nplm_null):
    # The default statistic at CI size, 200 toys. The tail against chi2(13): counts beyond its
    # 95% and 99% points are not in excess (one-sided binomial at 1%; at 200 toys its power
    # against the issue's null with 1.8x chi2's variance is only 0.55 beyond q95 and 0.44 beyond
    # q99, from the binomial: 1000 toys give 0.999 and 0.994, which
    # test_tail_comparison_has_power_... checks on chi2 draws), and the
    # empirical quantiles are not above chi2's. At this size the bulk is below chi2(13) (mean
    # 11.1, fitted dof 11.0: KS rejects 13; docs/nplm.md), so chi2(13) p-values are
    # conservative here; clip 30 makes the tail anti-conservative (the calibration table).
    row = nplm_null
    assert row["dof"] == 13
    record_p("excess beyond chi2(13) q95", row["excess_pvalue_q95"], 0.01, TRAINED)
    record_p("excess beyond chi2(13) q99", row["excess_pvalue_q99"], 0.01, TRAINED)
    assert row["excess_pvalue_q95"] > 0.01, row
    assert row["excess_pvalue_q99"] > 0.01, row
    chi2 = scipy_stats.chi2(13)
    for q, name in ((0.95, "q95"), (0.99, "q99")):
        se = quantile_se(q, CI_TOYS, chi2.pdf(row[f"{name}_chi2"]))
        value, bound = row[f"{name}_empirical"], row[f"{name}_chi2"]
        record(f"empirical {name} <= chi2(13) {name}", value, bound, se, TRAINED, above=False)
        assert value <= bound, row


@pytest.mark.statistical
def test_injected_signal_raises_median_t(nplm_null):
    settings = _ci_settings()
    t_signal = nplm_method.nplm_toy_statistics(jax.random.key(12), _ci_data(), settings, 20, 0.2).t
    # 20 bump events at x = 4 over ~2 background events within 2 widths: a strong signal.
    se = median_se(t_signal)
    record(
        "median t with signal > chi2 q99", np.median(t_signal), nplm_null["q99_chi2"], se, TRAINED
    )
    assert np.median(t_signal) > nplm_null["q99_chi2"]


@pytest.mark.statistical
@pytest.mark.parametrize("n_b", [500.0, 2500.0])
def test_symmetrized_null_is_chi2(n_b):
    # Observed counts fix the normalisation: dof = 13 - 1 = 12; N_B / N_A in {1, 5}.
    settings = _settings(
        test="symmetrized", clip=None, epochs=SYMMETRIZED_ITERATIONS, checkpoints=()
    )
    t, _, _ = nplm_method.symmetrized_toy_statistics(
        jax.random.key(13), _data(n_a=500.0, n_b=n_b), settings, 200
    )
    _assert_chi2_12(t)


def _assert_chi2_12(t):
    """KS against chi2(12) at 1% and the fitted dof within 25% of 12, margins recorded."""
    comparison = nplm.compare_with_chi2(t, 12)
    record_p("KS vs chi2(12)", comparison["ks_pvalue"], 0.01, TRAINED)
    se = chi2_dof_se(12, len(t))
    record("|fitted dof - 12| < 3", abs(comparison["fitted_dof"] - 12), 3.0, se, TRAINED, False)
    assert comparison["ks_pvalue"] > 0.01, comparison
    assert abs(comparison["fitted_dof"] - 12) < 0.25 * 12, comparison


@pytest.mark.statistical
def test_permutation_null_agrees_with_chi2_under_the_null():
    settings = _settings(
        test="symmetrized", clip=None, epochs=SYMMETRIZED_ITERATIONS, checkpoints=()
    )
    toy = toys.sample_flavour_toy(
        jax.random.key(14),
        500.0,
        500.0,
        0.0,
        toys.SignalShape(),
        toys.capacity(500),
        toys.capacity(500),
    )
    t, n_not_converged = nplm_method.permutation_null(
        jax.random.key(15),
        np.asarray(toy.events),
        np.asarray(toy.in_a),
        np.asarray(toy.valid),
        settings,
        200,
    )
    assert 0 <= n_not_converged <= 200  # counted; kept (the statistic's fixed length)
    _assert_chi2_12(t)


def test_permutations_short_of_their_minimum_are_kept_counted_and_reported(capsys):
    """Two Newton steps cannot reach the minimum: every permutation is kept (the statistic is
    defined at its training length), counted in the result and noted on the console."""
    from jaxws.methods.nplm.observed import _permutation_significance

    settings = _settings(test="symmetrized", clip=None, epochs=2, checkpoints=(), n_permutations=6)
    toy = toys.sample_flavour_toy(
        jax.random.key(16), 100.0, 100.0, 0.0, toys.SignalShape(), 160, 160
    )
    events, in_a, valid = (np.asarray(a) for a in (toy.events, toy.in_a, toy.valid))
    result = _permutation_significance(jax.random.key(17), events, in_a, valid, settings, 1.0, 12.0)
    assert "permutations: 6 of 6 fits had not reached their minimum" in capsys.readouterr().err
    assert result["permutation/n_permutations"] == 6
    assert result["permutation/n_not_converged"] == 6


def test_permutation_labels_keep_sample_sizes():
    valid = jnp.concatenate([jnp.ones(30), jnp.zeros(5), jnp.ones(20), jnp.zeros(3)])
    labels = jax.vmap(lambda k: nplm.permutation_labels(k, valid, 30))(
        jax.random.split(jax.random.key(0), 50)
    )
    assert np.all(np.asarray(labels.sum(axis=1)) == 30)
    assert np.all(np.asarray(labels)[:, np.asarray(valid) == 0] == 0)
    assert len({tuple(np.asarray(row)) for row in labels}) == 50


# ---------------------------------------------------------------------------------------------
# The unbounded unclipped loss and bad input
# ---------------------------------------------------------------------------------------------


def test_unclipped_loss_diverges_outside_reference_support_and_is_refused():
    reference = np.linspace(0.0, 3.0, 300)[:, None]
    data = np.concatenate([np.linspace(0.1, 2.9, 30), [4.0, 4.5]])[:, None]  # two events beyond
    # The divergence is real: unclipped training keeps lowering the loss on the outliers.
    x, dw, rw = nplm.nplm_inputs(
        jnp.asarray(data, jnp.float32),
        jnp.ones(32),
        jnp.asarray(reference, jnp.float32),
        jnp.ones(300),
        32.0,
    )
    train = nplm.NPLMTraining(800, (100, 200, 400, 800), optimizer="adam")
    key = jax.random.key(0)
    unclipped = nplm.fit_test_function(key, x, dw, rw, nplm.NPLMHparams(0.1, jnp.inf), SPEC, train)
    history = np.asarray(unclipped.t_history)
    finite = history[np.isfinite(history)]
    # t grows without plateau until exp(f) overflows (here by epoch 800: t is NaN).
    assert np.all(np.diff(finite) > 20.0), history
    assert finite[-1] > 200.0, history
    clipped = nplm.fit_test_function(key, x, dw, rw, nplm.NPLMHparams(0.1, 1.0), SPEC, train)
    clipped_history = np.asarray(clipped.t_history)
    assert np.all(np.isfinite(clipped_history)), clipped_history
    assert clipped_history[-1] < 100.0, clipped_history
    # ... so the code refuses to return a number for it.
    with pytest.raises(ValueError, match="unbounded NPLM loss"):
        nplm.check_nplm_inputs(data, reference, clip=None)
    with pytest.raises(ValueError, match="unbounded NPLM loss"):
        nplm.check_nplm_inputs(data, reference, clip=math.inf)
    # Inside the reference range it still warns that the unclipped loss is unbounded.
    with pytest.warns(RuntimeWarning, match="unbounded below"):
        nplm.check_nplm_inputs(data[:30], reference, clip=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nplm.check_nplm_inputs(data, reference, clip=9.0)


@pytest.mark.parametrize(
    ("data", "reference", "message"),
    [
        (np.zeros((0, 1)), np.ones((10, 1)), "data is empty"),
        (np.ones((5, 1)), np.zeros((0, 1)), "reference is empty"),
        (np.array([[1.0], [np.nan]]), np.ones((10, 1)), "data has 1 events with NaN or inf"),
        (np.ones((5, 1)), np.array([[1.0], [np.inf]]), "reference has 1 events with NaN or inf"),
        (np.ones((5, 2)), np.ones((10, 1)), "data has 2 features but reference has 1"),
        (
            np.array([[-0.5], [1.0]]),
            np.ones((10, 1)),
            "data has 1 events outside the reference support",
        ),
        (np.ones((2, 2, 2)), np.ones((10, 1)), r"data must have shape \(n_events, n_features\)"),
    ],
)
def test_bad_input_is_named(data, reference, message):
    with pytest.raises(ValueError, match=message):
        nplm.check_nplm_inputs(data, reference, clip=9.0, support=(0.0, None))


def test_bad_config_is_refused():
    from jaxws.config import from_section

    with pytest.raises(ConfigError, match="unknown key"):
        from_section(nplm_method.NPLMConfig, {"epoch": 10}, "method")
    for bad in (
        {"clip": -1.0},
        {"test": "both"},
        {"optimizer": "sgd"},
        {"n_toys": 0},
        {"hidden": [0]},
    ):
        with pytest.raises(ConfigError):
            from_section(nplm_method.NPLMConfig, bad, "method")
    with pytest.raises(ConfigError, match="n_expected"):
        from_section(nplm_method.ExponentialToyConfig, {"n_expected": 0.0}, "data")
    with pytest.raises(ValueError, match="mean - 5 width"):
        toys.SignalShape("gaussian", 1.0, 0.5)


# ---------------------------------------------------------------------------------------------
# End to end through the Hydra config and the tracker
# ---------------------------------------------------------------------------------------------


def _compose(*overrides):
    from hydra import compose, initialize_config_dir

    config_dir = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=nplm", *overrides])


@pytest.mark.parametrize("test", ["nplm", "symmetrized"])
def test_run_end_to_end(tmp_path, test):
    from jaxws.track import Tracker

    cfg = _compose(
        f"method.test={test}",
        "method.epochs=10",
        "method.checkpoints=[4]",
        "method.n_toys=6",
        "method.chunk_size=4",
        "method.signal_fractions=[0.1]",
        "method.n_signal_toys=3",
        "method.n_permutations=5",
        "data.n_reference=300",
        "data.n_expected=40",
        "data.n_a=40",
        "data.n_b=60",
    )
    if test == "symmetrized":
        cfg.method.clip = None
    tracker = Tracker(tmp_path)
    metrics = nplm_method.run(cfg, jax.random.key(0), tmp_path, tracker)
    for name in ("null_t_histogram", "t_against_epochs", "sensitivity"):
        assert any(tmp_path.rglob(f"{name}*.png")), name
    null = json.loads(next(tmp_path.rglob("null_toys*.json")).read_text())
    assert len(null["t"]) == 6
    assert null["checkpoints"] == [4, 10]
    assert np.all(np.isfinite(null["t"]))
    assert np.isfinite(metrics["observed/t"])
    # Z = Phi^-1(1 - p) is -inf when p = 1 (observed t below every null toy), so only p here.
    assert 0 < metrics["observed/p_toys"] <= 1
    assert metrics["n_parameters"] == 13
    if test == "symmetrized":
        assert 0 < metrics["observed/p_permutation"] <= 1
    assert OmegaConf.select(cfg, "method.name") == "nplm"
    # Learning curves logged from the host: t over toys and the observed fit per recorded epoch.
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    null_curve = [line for line in lines if f"{test}_null/epoch" in line]
    assert [line[f"{test}_null/epoch"] for line in null_curve] == [4, 10]
    np.testing.assert_allclose(null_curve[-1][f"{test}_null/t_median"], np.median(null["t"]))
    assert any(f"{test}_signal_0.1/t_median" in line for line in lines)
    observed = [line for line in lines if "observed_curve/t" in line]
    assert [line["observed_curve/epoch"] for line in observed] == [4, 10]
    np.testing.assert_allclose(observed[-1]["observed_curve/t"], metrics["observed/t"], rtol=1e-6)
    assert (tmp_path / f"t_curves_{test}_null.csv").exists()
