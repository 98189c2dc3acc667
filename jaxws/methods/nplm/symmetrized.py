"""t of the symmetrized test on flavour toys, and the permutation null of an observed pair.

Follows Bressler, Savoray & Zurgil (arXiv:2401.09530): ``t_{A+B}(A) + t_{A+B}(B)`` on the pooled
sample (:mod:`jaxws.stats.nplm.two_sample`); flavour toys inject signal into A only; the
permutation null relabels the observed pooled events with the observed N_A and N_B, and is the
method's default p-value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.hashing import tree_digest
from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.toy_statistics import (
    ToyStatistics,
    buffer_fraction,
    converged_only,
    run_toy_chunks,
    standardise_by_reference,
    toy_progress,
)
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm


def symmetrized_statistic(
    keys: jax.Array, events: Any, in_a: Any, valid: Any, settings: NPLMConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The symmetrized t of members, after standardising each pooled sample if asked.

    Args:
        keys: typed keys (E,), one per member.
        events: pooled events (E, n, d) or shared (n, d).
        in_a: (E, n) or shared (n,) indicator of A.
        valid: (E, n) or shared (n,) indicator of real events.
        settings: method settings.

    Returns:
        ``(t, t_history, converged)`` of shapes (E,), (E, n_checkpoints) and (E,).
    """
    events = jnp.asarray(events, jnp.float32)
    if settings.standardise:
        valid_array = jnp.asarray(valid, jnp.float32)
        if events.ndim == 3:
            events = jax.vmap(standardise_by_reference)(
                events, jnp.broadcast_to(valid_array, events.shape[:2])
            )
        else:
            events = standardise_by_reference(events, valid_array)
    return nplm.symmetrized_test(
        keys,
        events,
        in_a,
        valid,
        settings.hparams(),
        settings.network(int(events.shape[-1])),
        settings.training(),
        chunk_size=settings.chunk_size,
    )


def symmetrized_toy_statistics(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    n_toys: int,
    signal_fraction: float = 0.0,
    checkpoint_dir: str | Path | None = None,
) -> ToyStatistics:
    """``t_{A+B}(A) + t_{A+B}(B)`` of flavour toys (signal injected into A only).

    Args:
        key: typed key, consumed.
        data: toy configuration (n_a, n_b).
        settings: method settings.
        n_toys: number of toys.
        signal_fraction: injected signal fraction of A.
        checkpoint_dir: save finished chunks of toys there and resume from them.

    Returns:
        `ToyStatistics` (t, t_history, converged).
    """
    shape = data.signal_shape()
    n_max_a = toys.capacity(data.n_a * (1.0 + buffer_fraction(settings, signal_fraction)))
    n_max_b = toys.capacity(data.n_b)
    make = jax.jit(
        jax.vmap(
            lambda k: toys.sample_flavour_toy(
                k, data.n_a, data.n_b, signal_fraction, shape, n_max_a, n_max_b
            )
        )
    )
    toy_key, fit_key = jax.random.split(key)
    toy_keys = jax.random.split(toy_key, n_toys)
    fit_keys = jax.random.split(fit_key, n_toys)

    def statistic(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        toy = make(toy_keys[start:stop])
        toys.check_no_overflow(toy.overflow, "flavour toys")
        return symmetrized_statistic(
            fit_keys[start:stop], toy.events, toy.in_a, toy.valid, settings
        )

    fingerprint = tree_digest(key, repr(data), repr(settings), n_toys, signal_fraction)
    return run_toy_chunks(
        settings, n_toys, "symmetrized toys", statistic, checkpoint_dir, fingerprint
    )


class PermutationNull(NamedTuple):
    """The permutation null of an observed pair.

    Attributes:
        t: (n_permutations,) symmetrized t of the relabelled pairs, every one kept.
        n_not_converged: how many of their fits had not reached their minimum at the fixed
            training length that defines the statistic (reported in the run's results).
    """

    t: np.ndarray
    n_not_converged: int


def permutation_null(
    key: jax.Array,
    events: np.ndarray,
    in_a: np.ndarray,
    valid: np.ndarray,
    settings: NPLMConfig,
    n_permutations: int,
) -> PermutationNull:
    """Symmetrized t of random relabellings of one observed pair (same N_A, N_B).

    Args:
        key: typed key, consumed.
        events: pooled events (n, d).
        in_a: (n,) indicator of the observed A.
        valid: (n,) indicator of real events.
        settings: method settings.
        n_permutations: number of permutations.

    Returns:
        `PermutationNull`: (n_permutations,) t values (the events are shared, only the labels
        change) and the number of fits that had not reached their minimum. The symmetrized
        statistic is defined at a fixed training length: those permutations are kept, counted
        and noted on the console, never left out silently.
    """
    k_labels, fit_key = jax.random.split(key)
    n_a = jnp.sum(jnp.asarray(in_a) * jnp.asarray(valid))
    labels = jax.vmap(lambda k: nplm.permutation_labels(k, jnp.asarray(valid), n_a))(
        jax.random.split(k_labels, n_permutations)
    )
    fit_keys = jax.random.split(fit_key, n_permutations)
    t, converged = [], []
    with toy_progress(settings, n_permutations, "permutations") as bar:
        for start in range(0, n_permutations, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_permutations)
            chunk_t, _, chunk_converged = symmetrized_statistic(
                fit_keys[start:stop], events, labels[start:stop], valid, settings
            )
            t.append(chunk_t)
            converged.append(chunk_converged)
            bar.update(stop - start)
    t = np.concatenate(t)
    statistics = ToyStatistics(t, t[:, None], np.concatenate(converged))
    t, _, n_not_converged = converged_only(statistics, "permutations", fixed_length=True)
    return PermutationNull(t, n_not_converged)
