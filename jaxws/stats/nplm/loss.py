"""The weighted NPLM loss that both tests share, and the events and weights of NPLM.

Every event i of a member carries a data weight d_i and a reference weight r_i, and
``L = sum_i r_i (exp(f_i) - 1) - sum_i d_i f_i`` with ``t = -2 min_f L`` (D'Agnolo & Wulzer,
arXiv:1806.02350, eq. 9 in this weighted form). For NPLM, data events have d = 1, r = 0 and
reference events d = 0, r = ``N(R) / N_R`` (the reference weights sum to N(R), the data count
expected under the reference). Padding has d = r = 0, so ragged toys share one shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def nplm_loss_terms(
    f_values: jax.Array, data_weight: jax.Array, reference_weight: jax.Array
) -> jax.Array:
    """Per-event NPLM loss terms ``r_i (exp(f_i) - 1) - d_i f_i``; the caller sums.

    Args:
        f_values: f at each event, shape (n,).
        data_weight: d_i, 1 for data events, 0 otherwise (padding, reference).
        reference_weight: r_i, ``N(R)/N_R`` for reference events, 0 otherwise.

    Returns:
        Shape (n,) loss terms; their sum is L and ``t = -2 min L``.
    """
    return reference_weight * jnp.expm1(f_values) - data_weight * f_values


def nplm_inputs(
    data: jax.Array,
    data_mask: jax.Array,
    reference: jax.Array,
    reference_mask: jax.Array,
    n_expected: jax.Array | float,
    reference_event_weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Events and weights of NPLM for one member (vmappable; padded events have mask 0).

    Args:
        data: (n_data_max, d) data events D.
        data_mask: (n_data_max,) 1 for real data events.
        reference: (n_ref_max, d) reference events R.
        reference_mask: (n_ref_max,) 1 for real reference events.
        n_expected: N(R), the data count expected under the reference hypothesis.
        reference_event_weights: optional per-event weights w_i >= 0 of the reference
            (e.g. generator weights); None means all 1.

    Returns:
        ``(x, data_weight, reference_weight)``; reference event i gets
        ``N(R) w_i / sum_j w_j`` (``N(R) / N_R`` for unit weights), so the reference weights
        sum to N(R).
    """
    data_mask = jnp.asarray(data_mask, jnp.float32)
    reference_mask = jnp.asarray(reference_mask, jnp.float32)
    if reference_event_weights is not None:
        reference_mask = reference_mask * jnp.asarray(reference_event_weights, jnp.float32)
    total = jnp.sum(reference_mask)
    x = jnp.concatenate([data, reference], axis=-2)
    data_weight = jnp.concatenate([data_mask, jnp.zeros_like(reference_mask)], axis=-1)
    reference_weight = jnp.concatenate(
        [jnp.zeros_like(data_mask), reference_mask * (n_expected / total)], axis=-1
    )
    return x, data_weight, reference_weight


def reference_statistics(
    reference: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (weighted) mean and standard deviation of the reference sample.

    Args:
        reference: (N_R, d) reference events.
        weights: optional (N_R,) event weights.

    Returns:
        ``(mean, std)``, each (d,); inputs are standardised as ``(x - mean) / std`` for data
        and reference alike, so the clip acts on the same scale whatever the feature units.

    Raises:
        ValueError: a feature is constant over the reference (std 0).
    """
    reference = np.asarray(reference, np.float64)
    w = np.ones(len(reference)) if weights is None else np.asarray(weights, np.float64)
    mean = np.average(reference, axis=0, weights=w)
    std = np.sqrt(np.average((reference - mean) ** 2, axis=0, weights=w))
    constant = np.flatnonzero(~(std > 0))
    if constant.size:
        raise ValueError(
            f"reference feature(s) {constant.tolist()} are constant (std 0): cannot standardise"
        )
    return mean, std
