"""The NPLM experiment: null toys against chi2, sensitivity, and the observation's p and Z.

Follows D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155) for NPLM and Bressler, Savoray &
Zurgil (arXiv:2401.09530) for the symmetrized test. :func:`run` reads as its steps: check the
inputs, train the null toys, compare them with chi2 (dof = trainable parameters of f for NPLM,
that minus one for the symmetrized test, a fitted dof for kernel NPLM), measure the median Z of
signal-injected toys (simulated data only), and give the observation's t with p and one-sided
Z from the toys, from chi2 and, for the symmetrized test, from permutations (its default).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxws.config import check, from_section
from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.curves import log_toy_curves
from jaxws.methods.nplm.nuisances import nuisance_toy_statistics
from jaxws.methods.nplm.observation import Observation, load_observation
from jaxws.methods.nplm.observed import observed_significance
from jaxws.methods.nplm.symmetrized import symmetrized_toy_statistics
from jaxws.methods.nplm.toy_statistics import (
    ToyStatistics,
    converged_only,
    nplm_toy_statistics,
    resampled_toy_statistics,
)
from jaxws.plotting import sample_label
from jaxws.plotting.nplm import history_figure, null_histogram_figure, sensitivity_figure
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm


class RunKeys(NamedTuple):
    """The keys of one run, split once from the run's key (the order fixes the numbers)."""

    null: jax.Array
    signal: jax.Array
    observed: jax.Array
    permutation: jax.Array
    reference: jax.Array


def run(cfg: Any, key: jax.Array, run_dir: str | Path, tracker: Any) -> dict:
    """Null toys, chi2 comparison (bulk and tail), t against epochs, sensitivity, observation.

    Args:
        cfg: the resolved config (sections ``data`` and ``method``).
        key: typed PRNG key, consumed.
        run_dir: the run directory (outputs go through the tracker).
        tracker: ``jaxws.track.Tracker``-like (log_metrics, save_json, save_figure).

    Returns:
        Metrics: chi2 comparison of the null, sensitivity per signal fraction, observed t with
        p and Z from toys (``z_toys_is_bound`` when no toy reaches it) and from chi2, and
        ``figure`` (the figures folder).
    """
    data = from_section(ExponentialToyConfig, cfg.get("data"), "data")
    settings = from_section(NPLMConfig, cfg.get("method"), "method")
    observation = load_observation(data, settings)  # every input checked before any toy
    keys = RunKeys(*jax.random.split(key, 5))
    if settings.has_nuisances():
        return _run_with_nuisances(keys, data, settings, observation, run_dir, tracker)
    prepared, settings = _prepare_inputs(keys.reference, data, settings, observation)
    start = time.perf_counter()
    null = null_statistics(
        keys, data, settings, prepared, checkpoint_dir=tracker.path("checkpoints/nplm_null")
    )
    fixed_length = settings.test == "symmetrized"  # t defined after method.epochs
    t_null, t_history, n_not_converged = converged_only(null, "null toys", fixed_length)
    log_toy_curves(
        tracker,
        f"{settings.test}_null",
        settings.recorded_checkpoints(),
        t_history,
        time.perf_counter() - start,
    )
    dof, metrics = _compare_with_chi2(t_null, t_history, data, settings, observation, tracker)
    metrics["null/n_not_converged"] = n_not_converged
    if observation is None:  # sensitivity needs a signal model: simulated data only
        metrics.update(_sensitivity(keys, data, settings, t_null, dof, tracker))
    metrics.update(
        observed_significance(
            keys.observed,
            keys.permutation,
            keys.reference,
            data,
            settings,
            t_null,
            dof,
            prepared,
            observation,
            tracker,
        )
    )
    tracker.log_metrics(metrics)
    metrics["figure"] = str(Path(run_dir) / "figures")
    return metrics


def _prepare_inputs(
    reference_key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    observation: Observation | None,
) -> tuple[dict | None, NPLMConfig]:
    """The user's NPLM arrays standardised, and the settings with a kernel width if needed."""
    if observation is not None and settings.test == "nplm":
        prepared = _prepare_nplm_observation(observation, settings)
        return prepared, settings.with_kernel_width(prepared["reference"])
    if settings.model == "kernel":
        reference = np.asarray(toys.sample_reference(reference_key, min(data.n_reference, 2000)))
        if settings.standardise:
            reference = (reference - reference.mean(0)) / reference.std(0)
        return None, settings.with_kernel_width(reference)
    return None, settings


def _prepare_nplm_observation(
    observation: Observation, settings: NPLMConfig
) -> dict[str, np.ndarray]:
    """User data and reference, standardised by the weighted reference statistics."""
    observed, reference, weights = observation
    if settings.standardise:
        mean, std = nplm.reference_statistics(reference, weights)
        observed, reference = (observed - mean) / std, (reference - mean) / std
    return {"data": observed, "reference": reference, "weights": weights}


def null_statistics(
    keys: RunKeys,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    prepared: dict | None,
    checkpoint_dir: str | Path | None = None,
) -> ToyStatistics:
    """The t values of the run's null toys: user reference, flavour toys or simulated toys.

    Args:
        keys: the run's keys (``null``; ``reference`` for a fixed simulated reference).
        data: the data section.
        settings: the method section.
        prepared: the user's standardised NPLM arrays, or None.
        checkpoint_dir: save finished chunks of toys there and resume from them.

    Returns:
        `ToyStatistics` (t, t_history, converged) of all toys.
    """
    if prepared is not None:
        return resampled_toy_statistics(
            keys.null,
            prepared["reference"],
            prepared["weights"],
            data.n_expected,
            settings,
            settings.n_toys,
            checkpoint_dir=checkpoint_dir,
        )
    if settings.test == "symmetrized":
        return symmetrized_toy_statistics(
            keys.null, data, settings, settings.n_toys, checkpoint_dir=checkpoint_dir
        )
    return nplm_toy_statistics(
        keys.null,
        data,
        settings,
        settings.n_toys,
        reference_key=keys.reference,
        checkpoint_dir=checkpoint_dir,
    )


def _sample_line(data: ExponentialToyConfig, settings: NPLMConfig) -> str:
    """A neutral line naming the sample of the figures."""
    if settings.model == "kernel":
        fit = f"kernel NPLM, {settings.kernel_centres} centres"
    elif settings.optimizer == "newton":
        fit = f"Newton, {settings.epochs:,} iterations, clip {settings.clip}"
    else:
        fit = (
            f"Adam, {settings.epochs:,} epochs, rate {settings.learning_rate:g}, "
            f"clip {settings.clip}"
        )
    if data.observed_file:
        return (
            f"{data.observed_file}, $N(R)$ = {data.n_expected:g}, "
            f"{settings.n_toys} null toys; {fit}"
        )
    if settings.test == "symmetrized":
        sizes = f"$N_A$ = {data.n_a:g}, $N_B$ = {data.n_b:g}"
    else:
        sizes = f"$N_R$ = {data.n_reference:,}, $N(R)$ = {data.n_expected:g}"
    return f"exponential toy, {sizes}, {settings.n_toys} null toys; {fit}"


def _compare_with_chi2(
    t_null: np.ndarray,
    t_history: np.ndarray,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    observation: Observation | None,
    tracker: Any,
) -> tuple[float, dict[str, Any]]:
    """The null's dof, its comparison with chi2 (saved with the toys), and its figures."""
    n_features = 1 if observation is None else observation.first.shape[1]
    n_params = nplm.n_parameters(settings.network(n_features))
    # NPLM: normalisation is a free direction (N(R) expected, N_D Poisson): dof = n_params.
    # Symmetrized: weights use observed counts, so the normalisation direction is fixed.
    dof = n_params - 1 if settings.test == "symmetrized" else n_params
    if settings.model == "kernel":
        # A penalised kernel model has no integer parameter count: chi2 at the fitted dof.
        dof = nplm.fit_chi2_dof(t_null[t_null > 0])
    comparison = nplm.compare_with_chi2(t_null, dof)
    metrics: dict[str, Any] = {f"null/{k}": v for k, v in comparison.items()}
    metrics["n_parameters"] = n_params if settings.model == "neural" else settings.kernel_centres
    if settings.model == "kernel":
        metrics["kernel_width"] = settings.kernel_width
    metrics["n_features"] = n_features
    checkpoints = settings.recorded_checkpoints()
    tracker.save_json(
        "null_toys",
        {
            "t": t_null.tolist(),
            "checkpoints": list(checkpoints),
            "t_history": t_history.tolist(),
            "comparison": comparison,
        },
    )
    line = _sample_line(data, settings)
    tracker.save_figure(
        "null_t_histogram",
        null_histogram_figure(
            t_null, dof, comparison["fitted_dof"], f"{settings.test} null toys", line
        ),
    )
    tracker.save_figure(
        "t_against_epochs",
        history_figure(checkpoints, t_history, dof, settings.n_history_toys, line),
    )
    return dof, metrics


def _sensitivity(
    keys: RunKeys,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    t_null: np.ndarray,
    dof: float,
    tracker: Any,
) -> dict[str, float]:
    """Median Z of signal-injected toys per signal fraction, from the toys and from chi2."""
    sensitivity = []
    signal_keys = jax.random.split(keys.signal, len(settings.signal_fractions))
    for i, (fraction, signal_key) in enumerate(
        zip(settings.signal_fractions, signal_keys, strict=True)
    ):
        checkpoints = tracker.path(f"checkpoints/nplm_signal_{i}")
        if settings.test == "symmetrized":
            signal_toys = symmetrized_toy_statistics(
                signal_key, data, settings, settings.n_signal_toys, fraction, checkpoints
            )
        else:
            signal_toys = nplm_toy_statistics(
                signal_key,
                data,
                settings,
                settings.n_signal_toys,
                fraction,
                keys.reference,
                checkpoints,
            )
        t_signal, signal_history, n_not_converged = converged_only(
            signal_toys, f"signal toys ({fraction:g})", settings.test == "symmetrized"
        )
        log_toy_curves(
            tracker,
            f"{settings.test}_signal_{fraction:g}",
            settings.recorded_checkpoints(),
            signal_history,
        )
        result = nplm.significance(float(np.median(t_signal)), t_null, dof)
        # The chi2 curve's 68% band: Z at the signal toys' 16th and 84th percentiles of t.
        low, high = (
            nplm.significance(float(np.percentile(t_signal, q)), t_null, dof)["z_chi2"]
            for q in (16, 84)
        )
        sensitivity.append(
            {
                "signal_fraction": fraction,
                "median_t": result["t"],
                "z_empirical": result["z_toys"],
                "z_empirical_is_bound": result["z_toys_is_bound"],
                "z_chi2": result["z_chi2"],
                "z_chi2_16": low,
                "z_chi2_84": high,
                "n_not_converged": n_not_converged,
            }
        )
    tracker.save_json("sensitivity", sensitivity)
    line = sample_label(
        _sample_line(data, settings),
        f"{data.signal_kind} at {data.signal_mean:g}",
        n_pseudo_experiments=settings.n_signal_toys,
    )
    tracker.save_figure(
        "sensitivity",
        sensitivity_figure(
            [row["signal_fraction"] for row in sensitivity],
            [row["z_empirical"] for row in sensitivity],
            [row["z_chi2"] for row in sensitivity],
            line,
            [row["z_empirical_is_bound"] for row in sensitivity],
            (
                [row["z_chi2_16"] for row in sensitivity],
                [row["z_chi2_84"] for row in sensitivity],
            ),
            # expected signal events = s N(R) (NPLM), s N_A (symmetrized: signal in A)
            n_expected=None
            if data.observed_file
            else (data.n_a if settings.test == "symmetrized" else data.n_expected),
        ),
    )
    metrics: dict[str, float] = {}
    for row in sensitivity:
        name = f"sensitivity/{row['signal_fraction']:g}"
        metrics[f"{name}/z_empirical"] = row["z_empirical"]
        metrics[f"{name}/z_empirical_is_bound"] = row["z_empirical_is_bound"]
        metrics[f"{name}/z_chi2"] = row["z_chi2"]
        metrics[f"{name}/n_not_converged"] = row["n_not_converged"]
    return metrics


def _run_with_nuisances(
    keys: RunKeys,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    observation: Observation | None,
    run_dir: str | Path,
    tracker: Any,
) -> dict:
    """Null toys at the true nuisances: t = tau - Delta against chi2, and plain NPLM on them.

    arXiv:2111.13633 (:mod:`jaxws.stats.nplm.nuisances`): the toys' data are drawn at
    ``method.true_nuisances`` with fluctuated auxiliary measurements, the reference at 0. The
    run reports the null of t = tau - Delta against chi2(dof) (keys ``null/...``), plain NPLM's
    t on the same toys (``without_nuisances/...``: biased when the truth is not 0) and the
    mean fitted nuisances. Sensitivity and the observation are not implemented with nuisances.
    """
    check(
        observation is None and not data.fixed_reference,
        "nuisances (method.normalisation_sigma, method.scale_sigma) need simulated toys with a "
        "fresh reference each: data.observed_file empty and data.fixed_reference false",
    )
    start = time.perf_counter()
    result = nuisance_toy_statistics(
        keys.null,
        data,
        settings,
        settings.n_toys,
        settings.nuisance_sigmas(),
        settings.true_nuisances,
        without_nuisances=True,
    )
    converged = result["delta_converged"]
    if not converged.all():
        print(
            f"jaxws: warning: nuisance toys: {int((~converged).sum())} of {len(converged)} "
            "Delta fits did not converge and are left out",
            file=sys.stderr,
        )
        result = {k: np.asarray(v)[converged] for k, v in result.items()}
    log_toy_curves(
        tracker,
        "nplm_nuisances_null",
        settings.recorded_checkpoints(),
        result["t_history"],
        time.perf_counter() - start,
    )
    dof, metrics = _compare_with_chi2(
        result["t"], result["t_history"], data, settings, None, tracker
    )
    metrics["null/n_not_converged"] = int((~converged).sum())
    without = nplm.compare_with_chi2(result["t_without_nuisances"], dof)
    metrics.update({f"without_nuisances/{k}": v for k, v in without.items()})
    sigmas = settings.nuisance_sigmas()
    for i, name in enumerate(("normalisation", "scale")):
        metrics[f"nuisances/{name}/sigma"] = sigmas[i]
        metrics[f"nuisances/{name}/true"] = settings.true_nuisances[i]
        metrics[f"nuisances/{name}/mean_nu_hat"] = float(np.mean(result["nu_delta"][:, i]))
        metrics[f"nuisances/{name}/mean_auxiliary"] = float(np.mean(result["auxiliary"][:, i]))
    tracker.save_json(
        "nuisance_toys",
        {k: np.asarray(v).tolist() for k, v in result.items()},
    )
    print(
        f"jaxws: nuisances: {metrics['null/n_beyond_q95']} of {settings.n_toys} toys with "
        f"t = tau - Delta beyond chi2({dof:g})'s 95% point "
        f"({metrics['null/expected_beyond_q95']:.1f} expected); plain NPLM on the same toys: "
        f"{metrics['without_nuisances/n_beyond_q95']}"
    )
    tracker.log_metrics(metrics)
    metrics["figure"] = str(Path(run_dir) / "figures")
    return metrics
