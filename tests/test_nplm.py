"""NPLM and symmetrized NPLM: closed forms, vmapped ensembles, null distributions, bad input.

Statistical tests use fixed seeds. CI sizes (the paper's N_R = 200k, N(R) = 2k and 300k Adam
epochs do not fit a 180 s budget on 2 cores): NPLM N_R = NPLM_REFERENCE, N(R) = NPLM_EXPECTED,
trained with the damped Newton optimizer for NEWTON_ITERATIONS iterations (the convergence test
below checks that more iterations do not move t). See docs/nplm.md for the numbers.
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
from omegaconf import OmegaConf
from scipy import stats as scipy_stats

from jaxws.config import ConfigError
from jaxws.methods import nplm as nplm_method
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm

NPLM_REFERENCE = 5000
NPLM_EXPECTED = 500.0
NEWTON_ITERATIONS = 160
SPEC = nplm.NetworkSpec()
NEWTON = nplm.TrainSpec(NEWTON_ITERATIONS, (NEWTON_ITERATIONS // 2, NEWTON_ITERATIONS), optimizer="newton")
CLIPPED = nplm.Hparams(jnp.float32(0.05), jnp.float32(9.0))
UNCLIPPED = nplm.Hparams(jnp.float32(0.05), jnp.float32(jnp.inf))


def _settings(**overrides) -> nplm_method.NPLMSettings:
    base = dict(optimizer="newton", epochs=NEWTON_ITERATIONS, checkpoints=(NEWTON_ITERATIONS // 2,), chunk_size=50)
    base.update(overrides)
    return nplm_method.NPLMSettings(**base)


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


def test_loss_against_numpy_and_constant_f_optimum():
    rng = np.random.default_rng(0)
    f = rng.normal(size=50)
    d = (rng.uniform(size=50) < 0.3).astype(float)
    r = (1 - d) * 0.2
    expected = np.sum(r * (np.exp(f) - 1) - d * f)
    np.testing.assert_allclose(np.sum(nplm.nplm_loss_terms(f, d, r)), expected, rtol=1e-6)
    # For constant f = c the minimum is at exp(c) = N_D / N(R): t = 2 (N_D log(N_D/N(R)) - N_D + N(R))
    n_data, n_expected = d.sum(), r.sum()
    c = np.log(n_data / n_expected)
    t = -2 * np.sum(nplm.nplm_loss_terms(np.full(50, c), d, r))
    np.testing.assert_allclose(
        t, 2 * (n_data * np.log(n_data / n_expected) - n_data + n_expected), rtol=1e-6
    )


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

            grad, hessian = nplm._one_hidden_layer_derivatives(unravel(flat), x, d, r, spec)
            np.testing.assert_allclose(grad, jax.grad(loss)(flat), rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(hessian, jax.hessian(loss)(flat), rtol=1e-10, atol=1e-9)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_clipping_touches_kernels_only():
    params = jax.tree.map(lambda a: a + 20.0, nplm.init_test_function(jax.random.key(0), SPEC))
    clipped = nplm.clip_kernels(params, 9.0)
    for layer in ("hidden_0", "output"):
        assert float(jnp.max(jnp.abs(clipped["params"][layer]["kernel"]))) <= 9.0
        np.testing.assert_array_equal(clipped["params"][layer]["bias"], params["params"][layer]["bias"])


def _small_nplm_inputs(key, n_toys, n_reference=400, n_expected=60.0, fraction=0.0):
    n_max = toys.capacity(n_expected * (1 + fraction))

    def make(k):
        k_data, k_ref = jax.random.split(k)
        sample = toys.sample_data(k_data, n_expected, fraction, toys.SignalShape(), n_max)
        reference = toys.sample_reference(k_ref, n_reference)
        return nplm.nplm_inputs(sample.events, sample.mask, reference, jnp.ones(n_reference), n_expected)

    return jax.vmap(make)(jax.random.split(key, n_toys))


@pytest.mark.parametrize("optimizer", ["adam", "newton"])
def test_ensemble_member_equals_single_fit(optimizer):
    x, dw, rw = _small_nplm_inputs(jax.random.key(5), 5)
    keys = jax.random.split(jax.random.key(6), 5)
    train = nplm.TrainSpec(30, (10, 30), optimizer=optimizer)
    hp = nplm.Hparams(jnp.array([0.01, 0.02, 0.03, 0.04, 0.05]), jnp.full(5, 9.0))
    ensemble = nplm.fit_ensemble(keys, x, dw, rw, hp, SPEC, train, chunk_size=2)
    for i in (0, 4):  # member 4 sits in the padded last chunk
        single = nplm.fit_test_function(
            keys[i], x[i], dw[i], rw[i], nplm.Hparams(hp.learning_rate[i], hp.clip[i]), SPEC, train
        )
        np.testing.assert_allclose(ensemble.t_history[i], single.t_history, rtol=2e-4, atol=2e-4)
    assert ensemble.t.shape == (5,) and ensemble.t_history.shape == (5, 2)


def test_same_seed_same_numbers():
    x, dw, rw = _small_nplm_inputs(jax.random.key(7), 3)
    keys = jax.random.split(jax.random.key(8), 3)
    train = nplm.TrainSpec(20, optimizer="newton")
    first = nplm.fit_ensemble(keys, x, dw, rw, CLIPPED, SPEC, train)
    second = nplm.fit_ensemble(keys, x, dw, rw, CLIPPED, SPEC, train)
    np.testing.assert_array_equal(first.t, second.t)


def test_p_values_and_z_conventions():
    null = np.arange(1.0, 100.0)  # 99 toys
    assert nplm.empirical_p_value(1000.0, null) == pytest.approx(1 / 100)
    assert nplm.empirical_p_value(0.0, null) == 1.0
    assert nplm.empirical_p_value(50.0, null) == pytest.approx(51 / 100)
    assert nplm.z_from_p(0.5) == pytest.approx(0.0)
    assert nplm.z_from_p(scipy_stats.norm.sf(3.0)) == pytest.approx(3.0)
    assert nplm.chi2_p_value(13.0, 13) == pytest.approx(scipy_stats.chi2.sf(13.0, 13))
    t = scipy_stats.chi2(7.0).rvs(size=4000, random_state=1)
    assert nplm.fit_chi2_dof(t) == pytest.approx(7.0, rel=0.03)
