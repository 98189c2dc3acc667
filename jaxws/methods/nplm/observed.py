"""The observation's t with labelled p-values and one-sided Z (toys, chi2, permutations).

Conventions of :mod:`jaxws.stats.nplm.p_values`: ``p_toys = (k + 1) / (n + 1)``, a bound when
no toy reaches the observed t; ``p_chi2 = chi2.sf(t, dof)``; ``Z = Phi^-1(1 - p)``. For the
symmetrized test (arXiv:2401.09530) the permutation null of the observed pair is the default
p-value; for NPLM the null toys are.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.curves import log_observed_curve
from jaxws.methods.nplm.observation import Observation
from jaxws.methods.nplm.symmetrized import permutation_null, symmetrized_statistic
from jaxws.methods.nplm.toy_statistics import fit_converged, standardise_by_reference
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm


def observed_significance(
    key: jax.Array,
    permutation_key: jax.Array,
    reference_key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    t_null: np.ndarray,
    dof: float,
    prepared: dict | None,
    observation: Observation | None,
    tracker: Any | None = None,
) -> dict[str, Any]:
    """The t of the observation (user arrays or one simulated toy) with labelled p-values and Z.

    NPLM: p and Z from the null toys and from chi2(dof). Symmetrized: the permutation null of
    the observed pair is the default p-value (``observed/p``), toys and chi2 beside it.

    Args:
        key: typed key of the observed toy and its fit, consumed.
        permutation_key: typed key of the permutations (symmetrized test), consumed.
        reference_key: key of the shared reference when ``data.fixed_reference``.
        data: the data section.
        settings: the method section.
        t_null: null toys' t.
        dof: degrees of freedom of the asymptotic chi2.
        prepared: the user's standardised NPLM arrays, or None.
        observation: the user's arrays, or None for a simulated observation.
        tracker: if given, the observed fit's t and training loss at the recorded epochs are
            logged under ``observed_curve`` (:func:`log_observed_curve`).

    Returns:
        ``observed/t``, ``observed/p`` with its ``observed/p_source``, p and Z from toys and
        chi2 (and permutations), ``observed/z_toys_is_bound`` (no toy reaches t),
        ``observed/converged`` (False, with a warning, when the observed fit did not meet its
        tolerance).
    """
    k_toy, fit_key = jax.random.split(key)
    result: dict[str, Any] = {}
    if settings.test == "nplm":
        x, data_weight, reference_weight = _observed_nplm_inputs(
            k_toy, reference_key, data, settings, prepared
        )
        fit = settings.fit(fit_key[None], x, data_weight, reference_weight)
        t_observed, t_history = float(fit.t[0]), fit.t_history[0]
        converged = bool(fit_converged(fit, 1)[0])
    else:
        events, in_a, valid = _observed_pair(k_toy, data, observation)
        t, history, flags = symmetrized_statistic(fit_key[None], events, in_a, valid, settings)
        t_observed, t_history, converged = float(t[0]), history[0], bool(flags[0])
        result.update(
            _permutation_significance(
                permutation_key, events, in_a, valid, settings, t_observed, dof
            )
        )
    result["observed/converged"] = converged
    if not converged:
        print(
            "jaxws: warning: the observed fit did not converge within its iterations "
            "(method.kernel_iterations or method.epochs): its t and Z are not a minimum's",
            file=sys.stderr,
        )
    if tracker is not None:
        log_observed_curve(
            tracker, "observed_curve", settings.recorded_checkpoints(), np.asarray(t_history)
        )
    toys_result = nplm.significance(t_observed, t_null, dof)
    result.update(
        {
            "observed/t": t_observed,
            "observed/p_toys": toys_result["p_toys"],
            "observed/z_toys": toys_result["z_toys"],
            "observed/z_toys_is_bound": toys_result["z_toys_is_bound"],
            "observed/p_chi2": toys_result["p_chi2"],
            "observed/z_chi2": toys_result["z_chi2"],
        }
    )
    if settings.test == "symmetrized":
        result["observed/p"] = result["observed/p_permutation"]
        result["observed/p_source"] = "permutations"
    else:
        result["observed/p"] = toys_result["p_toys"]
        result["observed/p_source"] = "toys"
    print(f"jaxws: observed {nplm.format_significance(toys_result)}")
    return result


def _observed_nplm_inputs(
    key: jax.Array,
    reference_key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    prepared: dict | None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Events and weights of the observed NPLM data: the user's arrays or one simulated toy."""
    if prepared is not None:
        observed, reference = prepared["data"], prepared["reference"]
        return nplm.nplm_inputs(
            jnp.asarray(observed, jnp.float32),
            np.ones(len(observed)),
            jnp.asarray(reference, jnp.float32),
            np.ones(len(reference)),
            data.n_expected,
            prepared["weights"],
        )
    n_max = toys.capacity(data.n_expected * (1 + data.observed_signal_fraction))
    k_data, k_reference = jax.random.split(key)
    if data.fixed_reference:
        k_reference = reference_key
    sample = toys.sample_data(
        k_data, data.n_expected, data.observed_signal_fraction, data.signal_shape(), n_max
    )
    reference = toys.sample_reference(k_reference, data.n_reference)
    x, data_weight, reference_weight = nplm.nplm_inputs(
        sample.events, sample.mask, reference, jnp.ones(data.n_reference), data.n_expected
    )
    if settings.standardise:
        x = standardise_by_reference(x, reference_weight)
    return x, data_weight, reference_weight


def _observed_pair(
    key: jax.Array, data: ExponentialToyConfig, observation: Observation | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observed pair of the symmetrized test, pooled: the user's a and b, or a toy."""
    if observation is not None:
        return toys.pad_arrays(observation.first, observation.second)
    s = data.observed_signal_fraction
    toy = toys.sample_flavour_toy(
        key,
        data.n_a,
        data.n_b,
        s,
        data.signal_shape(),
        toys.capacity(data.n_a * (1 + s)),
        toys.capacity(data.n_b),
    )
    return tuple(np.asarray(a) for a in (toy.events, toy.in_a, toy.valid))


def _permutation_significance(
    key: jax.Array,
    events: np.ndarray,
    in_a: np.ndarray,
    valid: np.ndarray,
    settings: NPLMConfig,
    t_observed: float,
    dof: float,
) -> dict[str, Any]:
    """The p and Z of the observed pair against its permutation null, and that null's fitted dof."""
    null = permutation_null(key, events, in_a, valid, settings, settings.n_permutations)
    t_permutation = null.t
    permutation = nplm.significance(t_observed, t_permutation, dof)
    positive = t_permutation[t_permutation > 0]
    return {
        "observed/p_permutation": permutation["p_toys"],
        "observed/z_permutation": permutation["z_toys"],
        "observed/z_permutation_is_bound": permutation["z_toys_is_bound"],
        "permutation/fitted_dof": nplm.fit_chi2_dof(positive) if positive.size >= 2 else math.nan,
        "permutation/n_permutations": len(t_permutation),
        "permutation/n_not_converged": null.n_not_converged,
    }
