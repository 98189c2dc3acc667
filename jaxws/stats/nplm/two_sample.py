"""The symmetrized NPLM test of two observed samples, and its permutation null.

Follows Bressler, Savoray & Zurgil (arXiv:2401.09530). Two samples A and B with observed
counts N_A, N_B; the reference of each fit is the pooled sample A u B and

    t_{A+B}(A) = -2 min_f [ sum_{x in A u B} N_A/(N_A+N_B) (exp(f(x)) - 1) - sum_{x in A} f(x) ]

(and the same for B with its own network g); the statistic is ``t_{A+B}(A) + t_{A+B}(B)``,
larger is more signal-like. Every tested event is also a reference event, so the loss is
bounded below and needs no weight clipping. Because the weights use observed counts, the
normalisation is not a free direction: the null is asymptotically chi2 with ``n_params - 1``
degrees of freedom (12 for 1-4-1). The permutation null (:func:`permutation_labels`, the same
pooled events relabelled with the observed N_A) needs no asymptotic assumption.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.models.nplm_net import NetworkSpec
from jaxws.stats.nplm.fit import fit_toys
from jaxws.stats.nplm.training import NPLMHparams, NPLMTraining


def symmetrized_weights(
    in_a: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Weights of the two fits of the symmetrized test on the pooled sample A u B.

    Args:
        in_a: (n,) 1 where the pooled event belongs to A.
        valid: (n,) 1 for real pooled events (0 for padding).

    Returns:
        ``(data_weight_a, reference_weight_a, data_weight_b, reference_weight_b)``: the fit
        for A has d = 1[A], r = N_A / (N_A + N_B) on every pooled event; B likewise.
    """
    valid = jnp.asarray(valid, jnp.float32)
    in_a = jnp.asarray(in_a, jnp.float32) * valid
    in_b = valid - in_a
    n_a, n_b = jnp.sum(in_a), jnp.sum(in_b)
    n_total = n_a + n_b
    return in_a, valid * (n_a / n_total), in_b, valid * (n_b / n_total)


def permutation_labels(key: jax.Array, valid: jax.Array, n_a: jax.Array | int) -> jax.Array:
    """A random relabelling of the pooled sample: n_a valid events become "A" (vmappable).

    Args:
        key: typed key, consumed.
        valid: (n,) 1 for real pooled events.
        n_a: number of events labelled A (the observed N_A).

    Returns:
        (n,) float 0/1 indicator of the new A sample.
    """
    u = jax.random.uniform(key, valid.shape)
    u = jnp.where(valid > 0, u, 2.0)  # padding sorts last and is never drawn
    rank = jnp.argsort(jnp.argsort(u))
    return (rank < n_a).astype(jnp.float32)


def symmetrized_test(
    keys: jax.Array,
    x: jax.Array,
    in_a: jax.Array,
    valid: jax.Array,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
    chunk_size: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetrized statistic ``t_{A+B}(A) + t_{A+B}(B)`` for E members (two fits each).

    Args:
        keys: typed keys (E,); member i uses ``split(keys[i])`` for its two networks.
        x: pooled events (E, n, d) or shared (n, d).
        in_a: (E, n) or shared (n,) indicator of A.
        valid: (E, n) or shared (n,) indicator of real events.
        hparams: per-member learning rate and clip (clip ``inf``: the test needs none).
        spec: the architecture.
        train: the schedule.
        chunk_size: members per vmapped chunk (each member is two fits).

    Returns:
        ``(t, t_history, converged)``: shapes (E,), (E, n_checkpoints) and (E,); each t is
        the A fit plus the B fit; converged when both fits met their tolerance (always True
        for Adam, which trains a fixed number of epochs and claims no minimum).
    """
    n_members = keys.shape[0]
    da, ra, db, rb = jax.vmap(symmetrized_weights)(
        *(jnp.broadcast_to(jnp.asarray(a), (n_members, *jnp.shape(a)[-1:])) for a in (in_a, valid))
    )
    fit_keys = jax.vmap(jax.random.split)(keys)  # (E, 2): one network for A, one for B
    x = jnp.asarray(x, jnp.float32)
    x_both = jnp.concatenate([x, x]) if x.ndim == 3 else x
    both_hparams = NPLMHparams(
        *(jnp.tile(jnp.broadcast_to(jnp.asarray(h, jnp.float32), (n_members,)), 2) for h in hparams)
    )
    fits = fit_toys(
        jnp.concatenate([fit_keys[:, 0], fit_keys[:, 1]]),
        x_both,
        jnp.concatenate([da, db]),
        jnp.concatenate([ra, rb]),
        both_hparams,
        spec,
        train,
        chunk_size=2 * chunk_size,
    )
    t = fits.t[:n_members] + fits.t[n_members:]
    history = fits.t_history[:n_members] + fits.t_history[n_members:]
    if fits.converged is None:
        return t, history, np.ones(n_members, bool)
    converged = np.asarray(fits.converged, bool)
    return t, history, converged[:n_members] & converged[n_members:]
