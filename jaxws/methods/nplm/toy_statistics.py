"""t of NPLM toys: simulated (null or signal-injected) and null toys drawn from a user reference.

Follows D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155): a toy's data is Poisson(N(R))
events (plus an injected signal fraction), its reference N_R events, fresh for every toy or
shared by all (NPLM_package's toy_batch.py, ``data.fixed_reference``). Toys are built and
trained in chunks of ``method.chunk_size``, each chunk one compiled program; t conventions are
those of :mod:`jaxws.stats.nplm`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxws.config import ConfigError
from jaxws.hashing import tree_digest
from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm
from jaxws.train.resume import map_chunks


class ToyStatistics(NamedTuple):
    """t of toys: final, at the recorded checkpoints, and whether each toy's fit converged.

    ``converged`` is False for a toy whose fit (kernel NPLM or the Newton option) did not meet
    its tolerance; Adam trains a fixed number of epochs and claims no minimum (True).
    """

    t: np.ndarray
    t_history: np.ndarray
    converged: np.ndarray


def fit_converged(fit: nplm.NPLMFit, n_toys: int) -> np.ndarray:
    """(n_toys,) convergence flags of fits (all True for fits that claim no minimum)."""
    if fit.converged is None:
        return np.ones(n_toys, bool)
    return np.asarray(fit.converged, bool).reshape(n_toys)


def converged_only(
    statistics: ToyStatistics, what: str, fixed_length: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """The t and t_history of the toys whose fits converged; the others are counted and warned.

    Args:
        statistics: the toys.
        what: what they are, for the warning.
        fixed_length: the statistic is defined at a fixed training length (the symmetrized
            test: t after `method.epochs`, its null calibrated at that length, because longer
            training drifts above chi2): every toy is kept and the fits that had not reached
            their minimum there are counted and reported, not left out.

    Returns:
        ``(t, t_history, n_not_converged)``.

    Raises:
        ConfigError: no toy converged (the iterations are too few for these toys).
    """
    keep = np.asarray(statistics.converged, bool)
    n_bad = int(np.sum(~keep))
    if fixed_length:
        if n_bad:
            print(
                f"jaxws: note: {what}: {n_bad} of {len(keep)} fits had not reached their minimum "
                "at the fixed training length that defines the statistic (method.epochs); all "
                "are kept",
                file=sys.stderr,
            )
        return statistics.t, statistics.t_history, n_bad
    if n_bad and n_bad == len(keep):
        raise ConfigError(
            f"{what}: none of the {n_bad} toys' fits converged within their iterations; raise "
            "method.kernel_iterations (kernel NPLM) or method.epochs (Newton)"
        )
    if n_bad:
        print(
            f"jaxws: warning: {what}: {n_bad} of {len(keep)} toys' fits did not converge within "
            "their iterations (method.kernel_iterations or method.epochs) and are left out",
            file=sys.stderr,
        )
    return statistics.t[keep], statistics.t_history[keep], n_bad


def standardise_by_reference(x: jax.Array, weight: jax.Array) -> jax.Array:
    """``(x - mean) / std`` with the weighted statistics of the events of positive weight.

    Args:
        x: (n, d) events.
        weight: (n,) weights; the reference events (NPLM) or the pooled valid events
            (symmetrized) carry them, every other event 0.

    Returns:
        The standardised (n, d) events (vmappable).
    """
    w = weight / jnp.sum(weight)
    mean = w @ x
    std = jnp.sqrt(w @ (x - mean) ** 2)
    return (x - mean) / std


def buffer_fraction(settings: NPLMConfig, signal_fraction: float) -> float:
    """The signal fraction that sizes the data buffer of every toy of a run.

    One buffer size for the null and all signal toys, so that they share one compiled fit.

    Args:
        settings: method settings (their ``signal_fractions``).
        signal_fraction: the fraction of the toys at hand.

    Returns:
        The largest of the two.
    """
    return max(signal_fraction, *settings.signal_fractions)


def toy_progress(settings: NPLMConfig, total: int, what: str) -> tqdm:
    """A progress bar over ``total`` toys on stderr (disabled by ``method.progress=false``).

    Args:
        settings: method settings.
        total: number of toys.
        what: the bar's label.

    Returns:
        The tqdm bar (a context manager).
    """
    return tqdm(total=total, desc=what, unit="toy", disable=not settings.progress, leave=False)


def run_toy_chunks(
    settings: NPLMConfig,
    n_toys: int,
    label: str,
    statistic: Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]],
    checkpoint_dir: str | Path | None,
    fingerprint: str,
) -> ToyStatistics:
    """`statistic(start, stop)` for chunks of `settings.chunk_size` toys, resumable.

    Every finished chunk of ``(t, t_history, converged)`` is saved in `checkpoint_dir` (if
    given) under a tag of `fingerprint` (`jaxws.train.resume.map_chunks`), so a killed run's
    rerun loads the toys it already has and ends with the same numbers.

    Args:
        settings: method settings (chunk size, progress, checkpoints).
        n_toys: number of toys.
        label: progress-bar label.
        statistic: the ``(t, t_history, converged)`` of toys ``start`` to ``stop``
            (exclusive).
        checkpoint_dir: where chunks are saved and found again; None computes everything.
        fingerprint: a digest of everything the toys depend on.

    Returns:
        `ToyStatistics` of shapes (n_toys,), (n_toys, n_checkpoints) and (n_toys,).
    """
    n_history = len(settings.recorded_checkpoints())

    def template(index: np.ndarray) -> tuple:
        return (
            jax.ShapeDtypeStruct((len(index),), np.float32),
            jax.ShapeDtypeStruct((len(index), n_history), np.float32),
            jax.ShapeDtypeStruct((len(index),), np.float32),
        )

    with toy_progress(settings, n_toys, label) as bar:

        def compute(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            t, history, converged = statistic(int(index[0]), int(index[-1]) + 1)
            bar.update(len(index))
            return (
                np.asarray(t, np.float32),
                np.asarray(history, np.float32),
                np.asarray(converged, np.float32),
            )

        t, history, converged = map_chunks(
            compute,
            n_toys,
            settings.chunk_size,
            directory=checkpoint_dir,
            fingerprint=fingerprint,
            template=template,
        )
    return ToyStatistics(t, history, np.asarray(converged) > 0.5)


def nplm_toy_maker(
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    signal_fraction: float,
    shared_reference: jax.Array,
) -> Any:
    """Jitted, vmapped keys -> (x, data weight, reference weight, overflow) of NPLM toys.

    Args:
        data: toy configuration.
        settings: method settings (``standardise``, the signal fractions).
        signal_fraction: injected signal fraction of these toys.
        shared_reference: key of the one reference sample when ``data.fixed_reference``.

    Returns:
        A function of keys (E,) giving x (E, n, 1), the data and reference weights (E, n) and
        the overflow flags (E,) of E toys.
    """
    shape = data.signal_shape()
    n_max = toys.capacity(data.n_expected * (1.0 + buffer_fraction(settings, signal_fraction)))
    reference_mask = jnp.ones(data.n_reference)

    @jax.jit
    @jax.vmap
    def make(toy_key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        k_data, k_reference = jax.random.split(toy_key)
        if data.fixed_reference:
            k_reference = shared_reference
        sample = toys.sample_data(k_data, data.n_expected, signal_fraction, shape, n_max)
        reference = toys.sample_reference(k_reference, data.n_reference)
        x, data_weight, reference_weight = nplm.nplm_inputs(
            sample.events, sample.mask, reference, reference_mask, data.n_expected
        )
        if settings.standardise:
            x = standardise_by_reference(x, reference_weight)
        return x, data_weight, reference_weight, sample.overflow

    return make


def nplm_toy_statistics(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    n_toys: int,
    signal_fraction: float = 0.0,
    reference_key: jax.Array | None = None,
    checkpoint_dir: str | Path | None = None,
) -> ToyStatistics:
    """The t values of simulated NPLM toys: data Poisson(N(R)(1+s)), reference N_R events.

    Args:
        key: typed key, consumed.
        data: toy configuration; ``fixed_reference`` shares one reference among the toys.
        settings: method settings.
        n_toys: number of toys.
        signal_fraction: injected signal fraction s (0: null toys).
        reference_key: key of the shared reference when ``data.fixed_reference`` (the null,
            signal and observed toys of a run use the same one); None draws it from ``key``.
        checkpoint_dir: save finished chunks of toys there and resume from them.

    Returns:
        `ToyStatistics`: t (n_toys,), t_history (n_toys, n_checkpoints), converged.
    """
    toy_key, fit_key, shared_key = jax.random.split(key, 3)
    shared_reference = reference_key if reference_key is not None else shared_key
    make = nplm_toy_maker(data, settings, signal_fraction, shared_reference)
    toy_keys = jax.random.split(toy_key, n_toys)
    fit_keys = jax.random.split(fit_key, n_toys)
    if settings.clip is None:
        # Same refusal as for user data: unclipped NPLM diverges where data leave the reference.
        x, data_weight, reference_weight, _ = make(toy_keys[:1])
        events = np.asarray(x[0])
        is_data, is_reference = np.asarray(data_weight[0]) > 0, np.asarray(reference_weight[0]) > 0
        nplm.check_nplm_inputs(events[is_data], events[is_reference], None)
    label = "NPLM null toys" if signal_fraction == 0 else f"NPLM toys, signal {signal_fraction:g}"

    def statistic(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, data_weight, reference_weight, overflow = make(toy_keys[start:stop])
        toys.check_no_overflow(overflow, "NPLM toys")
        fit = settings.fit(fit_keys[start:stop], x, data_weight, reference_weight)
        return fit.t, fit.t_history, fit_converged(fit, stop - start)

    fingerprint = tree_digest(
        key, repr(data), repr(settings), n_toys, signal_fraction, reference_key
    )
    return run_toy_chunks(settings, n_toys, label, statistic, checkpoint_dir, fingerprint)


def resampled_null_weights(
    key: jax.Array, event_weights: jax.Array, n_expected: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One null toy drawn from a (weighted) reference sample, as per-event weights (vmappable).

    Poisson(N(R)) reference events become the toy's data: events are accepted with
    probability ``w_i / max w`` (so the accepted events follow the weighted reference
    distribution, unweighted, as real data) and the first Poisson(N(R)) accepted ones in a
    random order are taken. The remaining events are the toy's reference, reweighted to sum to
    N(R). Every toy shares the event array; only the weights change.

    Args:
        key: typed key, consumed.
        event_weights: (N_R,) reference event weights.
        n_expected: N(R).

    Returns:
        ``(data_weight, reference_weight, overflow)``; overflow is True when fewer events
        were accepted than the Poisson count asked for.
    """
    k_count, k_accept, k_order = jax.random.split(key, 3)
    w = jnp.asarray(event_weights, jnp.float32)
    accepted = jax.random.uniform(k_accept, w.shape) * jnp.max(w) < w
    count = jax.random.poisson(k_count, n_expected)
    priority = jnp.where(accepted, jax.random.uniform(k_order, w.shape), 2.0)
    chosen = (jnp.argsort(jnp.argsort(priority)) < count) & accepted
    data_weight = chosen.astype(jnp.float32)
    reference = jnp.where(chosen, 0.0, w)
    reference_weight = reference * (n_expected / jnp.sum(reference))
    return data_weight, reference_weight, count > jnp.sum(accepted)


def resampled_toy_statistics(
    key: jax.Array,
    reference: np.ndarray,
    reference_weights: np.ndarray,
    n_expected: float,
    settings: NPLMConfig,
    n_toys: int,
    checkpoint_dir: str | Path | None = None,
) -> ToyStatistics:
    """The t values of NPLM null toys drawn from a user reference (:func:`resampled_null_weights`).

    Args:
        key: typed key, consumed.
        reference: (N_R, d) reference events, already standardised if asked.
        reference_weights: (N_R,) event weights.
        n_expected: N(R).
        settings: method settings.
        n_toys: number of toys.
        checkpoint_dir: save finished chunks of toys there and resume from them.

    Returns:
        `ToyStatistics`.
    """
    toy_key, fit_key = jax.random.split(key)
    make = jax.jit(
        jax.vmap(lambda k: resampled_null_weights(k, jnp.asarray(reference_weights), n_expected))
    )
    toy_keys = jax.random.split(toy_key, n_toys)
    fit_keys = jax.random.split(fit_key, n_toys)
    x = jnp.asarray(reference, jnp.float32)

    def statistic(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data_weight, reference_weight, overflow = make(toy_keys[start:stop])
        toys.check_no_overflow(overflow, "NPLM toys drawn from the reference")
        fit = settings.fit(fit_keys[start:stop], x, data_weight, reference_weight)
        return fit.t, fit.t_history, fit_converged(fit, stop - start)

    fingerprint = tree_digest(key, reference, reference_weights, n_expected, repr(settings), n_toys)
    label = "NPLM null toys (from the reference)"
    return run_toy_chunks(settings, n_toys, label, statistic, checkpoint_dir, fingerprint)
