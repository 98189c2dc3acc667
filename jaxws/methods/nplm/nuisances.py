"""NPLM toys with systematic nuisances: the exponential toy at true nuisances, t = tau - Delta.

Follows arXiv:2111.13633 (see :mod:`jaxws.stats.nplm.nuisances` for the statistic and its
conventions). A toy's data are drawn at true nuisances nu* with fluctuated auxiliary
measurements (:mod:`jaxws.simulate.nplm_nuisance_toys`); its reference at nu = 0. The network
sees the same (standardised) inputs as plain NPLM; the scale nuisance acts on the physical x.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.toy_statistics import standardise_by_reference
from jaxws.simulate import nplm_nuisance_toys as nuisance_toys
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm
from jaxws.stats.nplm import nuisances


def nuisance_toy_maker(
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    sigma: tuple[float, float],
    true_nuisances: tuple[float, float],
) -> Any:
    """Jitted, vmapped keys -> inputs of NPLM toys drawn at true nuisances.

    Args:
        data: toy configuration (N_R, N(R), fixed reference or not).
        settings: method settings (``standardise``).
        sigma: (sigma_N, sigma_S).
        true_nuisances: nu* in units of sigma.

    Returns:
        A function of keys (E,) giving x (E, n, 1), observable (E, n), data and reference
        weights (E, n), the :class:`NuisanceSetup` (leaves (E, 2)) and overflow flags (E,).
    """
    sigma_array = jnp.asarray(sigma, jnp.float32)
    truth = jnp.asarray(true_nuisances, jnp.float32)
    n_max = toys.capacity(data.n_expected * float(np.exp(sigma[0] * max(true_nuisances[0], 0))))
    reference_mask = jnp.ones(data.n_reference)

    @jax.jit
    @jax.vmap
    def make(toy_key: jax.Array) -> tuple:
        k_data, k_reference, k_auxiliary = jax.random.split(toy_key, 3)
        sample = nuisance_toys.sample_data_with_nuisances(
            k_data, data.n_expected, truth, sigma_array, n_max
        )
        reference = toys.sample_reference(k_reference, data.n_reference)
        x, data_weight, reference_weight = nplm.nplm_inputs(
            sample.events, sample.mask, reference, reference_mask, data.n_expected
        )
        observable = x[:, 0]
        if settings.standardise:
            x = standardise_by_reference(x, reference_weight)
        setup = nuisances.NuisanceSetup(
            sigma_array, nuisance_toys.sample_auxiliary(k_auxiliary, truth)
        )
        return x, observable, data_weight, reference_weight, setup, sample.overflow

    return make


def nuisance_toy_statistics(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    n_toys: int,
    sigma: tuple[float, float],
    true_nuisances: tuple[float, float] = (0.0, 0.0),
    without_nuisances: bool = False,
) -> dict[str, np.ndarray]:
    """The t = tau - Delta of NPLM toys at true nuisances (and plain NPLM's t if asked).

    Args:
        key: typed key, consumed.
        data: toy configuration (``fixed_reference`` is not supported here).
        settings: method settings (network, Adam, clip, chunk size).
        n_toys: number of toys.
        sigma: (sigma_N, sigma_S).
        true_nuisances: nu* in units of sigma.
        without_nuisances: also fit plain NPLM (nu fixed at 0) on the same toys.

    Returns:
        ``t``, ``t_history``, ``tau``, ``delta``, ``nu_tau``, ``nu_delta``,
        ``delta_converged``, ``auxiliary`` (numpy), and ``t_without_nuisances`` when asked.
    """
    if data.fixed_reference:
        raise ValueError("NPLM with nuisances draws a fresh reference per toy")
    toy_key, fit_key = jax.random.split(key)
    make = nuisance_toy_maker(data, settings, sigma, true_nuisances)
    x, observable, data_weight, reference_weight, setup, overflow = make(
        jax.random.split(toy_key, n_toys)
    )
    toys.check_no_overflow(overflow, "NPLM toys with nuisances")
    fit_keys = jax.random.split(fit_key, n_toys)
    fit = nuisances.fit_nuisance_toys(
        fit_keys,
        x,
        observable,
        data_weight,
        reference_weight,
        setup,
        settings.hparams(),
        settings.network(int(x.shape[-1])),
        settings.training(),
        chunk_size=settings.chunk_size,
    )
    result = {
        "t": fit.t,
        "t_history": fit.t_history,
        "tau": fit.tau,
        "delta": fit.delta,
        "nu_tau": fit.nu_tau,
        "nu_delta": fit.nu_delta,
        "delta_converged": np.asarray(fit.delta_converged, bool),
        "auxiliary": np.asarray(setup.auxiliary),
    }
    if without_nuisances:
        result["t_without_nuisances"] = settings.fit(fit_keys, x, data_weight, reference_weight).t
    return result
