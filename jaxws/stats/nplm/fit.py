"""Fit the NPLM test function for one member, or for many toys as compiled chunks.

``fit_test_function`` is one pure fit (Adam, the papers' choice, or Newton, an option);
``fit_toys`` trains E members (null toys, signal toys, permutations, clip values) in chunks,
each chunk one compiled program in which the members are vmapped (or mapped one after the
other), so member i equals ``fit_test_function(keys[i], ...)`` with member i's inputs.
Conventions of the loss and of t: :mod:`jaxws.stats.nplm`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.models.nplm_net import NetworkSpec
from jaxws.stats.nplm.adam import fit_adam
from jaxws.stats.nplm.newton import fit_newton
from jaxws.stats.nplm.training import NPLMFit, NPLMHparams, NPLMTraining


def fit_test_function(
    key: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
) -> NPLMFit:
    """Minimise the weighted NPLM loss for one member with ``train.optimizer``.

    Args:
        key: typed PRNG key for the initialisation, consumed.
        x: events, shape (n, n_inputs).
        data_weight: d_i, shape (n,).
        reference_weight: r_i, shape (n,).
        hparams: learning rate and clip value of this member.
        spec: the architecture (static).
        train: the schedule (static).

    Returns:
        The fit; ``t = -2 L`` at the final parameters.
    """
    fit = fit_newton if train.optimizer == "newton" else fit_adam
    return fit(key, x, data_weight, reference_weight, hparams, spec, train)


def fit_toys(
    keys: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
    chunk_size: int = 16,
    schedule: str = "auto",
) -> NPLMFit:
    """Train E members in chunks, each chunk one compiled program (vmap or lax.map).

    ``x``, ``data_weight`` and ``reference_weight`` either carry a leading member axis or are
    shared by all members (a permutation null shares the events and varies the weights).
    Member i equals ``fit_test_function(keys[i], ...)`` with member i's inputs. The last chunk
    is padded by repeating members so that every chunk has the same shape (one compilation).

    Args:
        keys: typed keys, shape (E,).
        x: (E, n, n_inputs) or shared (n, n_inputs).
        data_weight: (E, n) or shared (n,).
        reference_weight: (E, n) or shared (n,).
        hparams: leaves of shape (E,) or scalars (shared).
        spec: the architecture.
        train: the schedule.
        chunk_size: members trained by one compiled call; memory grows with chunk_size * n.
        schedule: "vmap" (members of a chunk vectorised), "sequential" (``lax.map``: one
            after the other, inside the same program) or "auto" (see :func:`resolve_schedule`).

    Returns:
        The fits with a leading member axis E (numpy arrays).
    """
    n_members = keys.shape[0]
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    x = jnp.asarray(x, jnp.float32)
    data_weight = jnp.asarray(data_weight, jnp.float32)
    reference_weight = jnp.asarray(reference_weight, jnp.float32)
    hparams = NPLMHparams(
        *(jnp.broadcast_to(jnp.asarray(h, jnp.float32), (n_members,)) for h in hparams)
    )
    per_member = (
        x.ndim == 3,
        data_weight.ndim == 2,
        reference_weight.ndim == 2,
    )
    in_axes = (0, *(0 if m else None for m in per_member), 0)
    schedule = resolve_schedule(schedule, int(x.shape[-2]))
    fit_chunk = _compiled_chunk_fit(spec, train, in_axes, schedule)

    chunk = min(chunk_size, n_members)
    results = []
    for start in range(0, n_members, chunk):
        index = np.arange(start, start + chunk)
        index = np.minimum(index, n_members - 1)  # pad the last chunk by repetition

        def take(a: jax.Array, member: bool, index: np.ndarray = index) -> jax.Array:
            return a[index] if member else a

        out = fit_chunk(
            keys[index],
            take(x, per_member[0]),
            take(data_weight, per_member[1]),
            take(reference_weight, per_member[2]),
            NPLMHparams(*(h[index] for h in hparams)),
        )
        n_real = min(chunk, n_members - start)
        results.append(jax.tree.map(lambda a, n=n_real: np.asarray(a)[:n], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *results)


_CHUNK_CACHE: dict = {}
SCHEDULES = ("auto", "vmap", "sequential")
# "auto": vmap the members of a chunk, except on a CPU when one member holds at least this many
# events, where they run one after the other. bench/nplm_toys.py on the idle 2-core CPU
# (2026-11-30 22:35 UTC, load 0.7-1.1), ms per toy-epoch: N_R = 200k, chunks of 4: vmapped 2.69,
# sequential 2.09, one toy 1.82; N_R = 20k, chunks of 16: vmapped 0.19, sequential 0.30; N_R =
# 2k: vmapped 0.03, sequential 0.04. A vmapped chunk's activations (events x hidden x members)
# then outgrow the cores' caches. On one H200 vmapping wins at N_R = 200k (256 toys: 0.0045
# against 0.03 sequential).
CPU_SEQUENTIAL_EVENTS = 100_000


def resolve_schedule(schedule: str, n_events: int) -> str:
    """The concrete schedule of a chunk: "vmap" or "sequential" ("auto" decides by size).

    Args:
        schedule: "auto", "vmap" or "sequential". "auto" is "sequential" on a CPU backend when
            a member has at least `CPU_SEQUENTIAL_EVENTS` events, "vmap" otherwise.
        n_events: events per member (data plus reference, padding included).

    Returns:
        "vmap" or "sequential".
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule != "auto":
        return schedule
    large = n_events >= CPU_SEQUENTIAL_EVENTS
    return "sequential" if jax.default_backend() == "cpu" and large else "vmap"


def _compiled_chunk_fit(
    spec: NetworkSpec, train: NPLMTraining, in_axes: tuple, schedule: str = "vmap"
) -> Any:
    cache_key = (spec, train, in_axes, schedule)
    if cache_key not in _CHUNK_CACHE:
        fit = lambda k, x, d, r, h: fit_test_function(k, x, d, r, h, spec, train)
        if schedule == "vmap":
            _CHUNK_CACHE[cache_key] = jax.jit(jax.vmap(fit, in_axes=in_axes))
        else:

            def sequential(*args: jax.Array) -> NPLMFit:
                mapped = tuple(a for a, axis in zip(args, in_axes, strict=True) if axis == 0)

                def one(members: tuple) -> NPLMFit:
                    it = iter(members)
                    full = [
                        next(it) if axis == 0 else a for a, axis in zip(args, in_axes, strict=True)
                    ]
                    return fit(*full)

                return jax.lax.map(one, mapped)

            _CHUNK_CACHE[cache_key] = jax.jit(sequential)
    return _CHUNK_CACHE[cache_key]
