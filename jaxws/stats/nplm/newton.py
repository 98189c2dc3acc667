"""An optional NPLM fit: damped saddle-free Newton on all parameters of f at once.

Not the papers' fit (they train with Adam, :mod:`jaxws.stats.nplm.adam`): Newton converges in
a few hundred iterations but can stop in a local minimum that long Adam training leaves
(issue 12; tests/stats/test_nplm.py compares the two). The loss and ``t = -2 L`` are those of
:mod:`jaxws.stats.nplm.loss`; clipped weights are kept in ``[-clip, clip]`` by a projected
step (Bertsekas 1982). For one hidden layer the gradient and Hessian are in closed form
(:func:`one_hidden_layer_derivatives`); deeper networks use ``jax.hessian``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxws.models.nplm_net import NetworkSpec, apply_test_function, init_test_function
from jaxws.stats.nplm.loss import nplm_loss_terms
from jaxws.stats.nplm.training import NPLMFit, NPLMHparams, NPLMTraining, clip_weights

#: A Newton fit has converged when half its decrement is at most this times max(1, |L|)
#: (relative to the loss, absolute below 1; float32 resolves about 1e-7 of a sum of terms).
NEWTON_TOLERANCE = 1e-5


def fit_newton(
    key: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
) -> NPLMFit:
    """Damped saddle-free Newton: step -(|H| + lambda)^-1 g in the Hessian eigenbasis.

    Negative-curvature directions are followed downhill (|eigenvalue|, Dauphin et al. 2014);
    lambda shrinks after a step that lowers the loss and grows (the step is then rejected)
    otherwise, so the loss never increases.

    Args:
        key: typed PRNG key for the initialisation, consumed.
        x: events, shape (n, n_inputs).
        data_weight: d_i, shape (n,).
        reference_weight: r_i, shape (n,).
        hparams: clip value of this member (the learning rate is unused).
        spec: the architecture (static).
        train: the schedule (static); ``epochs`` counts Newton iterations.

    Returns:
        The fit; ``t = -2 L`` at the final parameters and at ``train.checkpoints``;
        ``converged`` when, at the end, half the damped Newton decrement
        ``g^T (|H| + lambda)^-1 g / 2`` over the free parameters (the loss a further step
        would gain, to second order) is at most ``NEWTON_TOLERANCE * max(1, |L|)``.
    """
    params = clip_weights(init_test_function(key, spec, train.init), hparams.clip, train.clip_scope)
    flat, unravel = ravel_pytree(params)
    is_clipped = ravel_pytree(
        jax.tree_util.tree_map_with_path(
            lambda path, leaf: jnp.full(
                leaf.shape, train.clip_scope == "all" or getattr(path[-1], "key", None) == "kernel"
            ),
            params,
        )
    )[0]

    def loss(flat_params: jax.Array) -> jax.Array:
        f = apply_test_function(unravel(flat_params), x, spec)
        return jnp.sum(nplm_loss_terms(f, data_weight, reference_weight))

    if len(spec.hidden) == 1:
        derivatives = lambda p: one_hidden_layer_derivatives(
            unravel(p), x, data_weight, reference_weight, spec
        )
    else:
        derivatives = lambda p: (jax.grad(loss)(p), jax.hessian(loss)(p))

    def newton_direction(flat_params: jax.Array, damping: jax.Array) -> tuple:
        grad, hessian = derivatives(flat_params)
        # Projected Newton (Bertsekas 1982): clipped weights at the bound whose descent direction
        # points outward are held fixed; the step solves for the free parameters only.
        at_bound = jnp.abs(flat_params) >= hparams.clip * (1.0 - 1e-6)
        held = is_clipped & at_bound & (flat_params * grad < 0)
        free = ~held
        hessian = jnp.where(free[:, None] & free[None, :], hessian, 0.0) + jnp.diag(held * 1.0)
        grad = jnp.where(free, grad, 0.0)
        eigenvalues, eigenvectors = jnp.linalg.eigh(hessian)
        scale = jnp.abs(eigenvalues) + damping
        projected = eigenvectors.T @ grad
        return eigenvectors @ (projected / scale), 0.5 * jnp.sum(projected**2 / scale)

    def step(carry: tuple, _: None) -> tuple[tuple, None]:
        flat_params, damping, current = carry
        direction, _ = newton_direction(flat_params, damping)
        proposal = flat_params - direction
        proposal = jnp.where(is_clipped, jnp.clip(proposal, -hparams.clip, hparams.clip), proposal)
        proposed = loss(proposal)
        better = proposed < current
        return (
            jnp.where(better, proposal, flat_params),
            jnp.where(better, jnp.maximum(damping * 0.3, 1e-6), damping * 10.0),
            jnp.where(better, proposed, current),
        ), None

    carry = (flat, jnp.float32(1.0), loss(flat))
    history = []
    done = 0
    for checkpoint in train.checkpoints:
        carry, _ = jax.lax.scan(step, carry, None, length=checkpoint - done)
        done = checkpoint
        history.append(-2.0 * carry[2])
    t_history = jnp.stack(history)
    # The undamped-limit decrement (lambda at its floor 1e-6) at the final parameters.
    _, decrement = newton_direction(carry[0], jnp.float32(1e-6))
    converged = decrement <= NEWTON_TOLERANCE * jnp.maximum(1.0, jnp.abs(carry[2]))
    return NPLMFit(
        t=t_history[-1], t_history=t_history, params=unravel(carry[0]), converged=converged
    )


_ACTIVATION_DERIVATIVES = {
    # (value, first, second derivative) from the activation's output or input
    "sigmoid": lambda z: (
        (a := jax.nn.sigmoid(z)),
        (d1 := a * (1.0 - a)),
        d1 * (1.0 - 2.0 * a),
    ),
    "tanh": lambda z: ((a := jnp.tanh(z)), (d1 := 1.0 - a * a), -2.0 * a * d1),
    "relu": lambda z: (jax.nn.relu(z), (z > 0).astype(z.dtype), jnp.zeros_like(z)),
}


def one_hidden_layer_derivatives(
    params: dict,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    spec: NetworkSpec,
) -> tuple[jax.Array, jax.Array]:
    """Gradient and Hessian of the NPLM loss for f = a . act(x W + b) + c, in closed form.

    The loss is sum_i l_i(f_i) with l' = r e^f - d and l'' = r e^f, so
    H = J^T diag(l'') J + sum_i l'_i Hess(f_i); Hess(f_i) only couples parameters of the same
    hidden unit. Costs a few forward passes instead of one per parameter (jax.hessian). The
    ordering is that of ``ravel_pytree``: hidden bias, hidden kernel (row-major), output bias,
    output kernel.

    Args:
        params: parameters of f (one hidden layer).
        x: events, shape (n, n_inputs).
        data_weight: d_i, shape (n,).
        reference_weight: r_i, shape (n,).
        spec: the architecture.

    Returns:
        ``(gradient, hessian)`` of the summed loss in the flat parameter order.
    """
    n_inputs, width = spec.n_inputs, spec.hidden[0]
    kernel = params["params"]["hidden_0"]["kernel"]
    a = params["params"]["output"]["kernel"][:, 0]
    z = (
        x @ kernel + params["params"]["hidden_0"]["bias"]
        if n_inputs > 1
        else (x * kernel[0] + params["params"]["hidden_0"]["bias"])
    )
    s0, s1, s2 = _ACTIVATION_DERIVATIVES[spec.activation](z)
    f = s0 @ a + params["params"]["output"]["bias"][0]
    exp_term = reference_weight * jnp.exp(f)
    first = exp_term - data_weight  # dl/df
    u = jnp.concatenate([jnp.ones_like(x[:, :1]), x], axis=1)  # (n, 1 + d): d z / d(b, W)
    # Jacobian of f: columns [b_j (H), W_kj (d*H), c, a_j (H)]
    jac_zb = (s1 * a)[:, None, :] * u[:, :, None]  # (n, 1 + d, H)
    jac = jnp.concatenate(
        [jac_zb.reshape(len(x), -1), jnp.ones_like(f)[:, None], s0], axis=1
    )  # (b, W) flatten row-major over (1 + d, H) is exactly [b_j, W_kj]
    grad = first @ jac
    hessian = (jac * exp_term[:, None]).T @ jac
    # sum_i l'_i Hess(f_i): per hidden unit j, a (1+d)x(1+d) block over (b_j, W_.j) and
    # a cross term between a_j and (b_j, W_.j).
    block = jnp.einsum("nj,nk,nl->jkl", first[:, None] * s2, u, u) * a[:, None, None]
    cross = jnp.einsum("nj,nk->jk", first[:, None] * s1, u)  # (H, 1 + d)
    zb_index = np.arange((1 + n_inputs) * width).reshape(1 + n_inputs, width)  # [k, j]
    a_index = (1 + n_inputs) * width + 1 + np.arange(width)
    rows = zb_index.T[:, :, None]  # (H, 1 + d, 1)
    cols = zb_index.T[:, None, :]  # (H, 1, 1 + d)
    hessian = hessian.at[rows, cols].add(block)
    hessian = hessian.at[zb_index.T, a_index[:, None]].add(cross)
    hessian = hessian.at[a_index[:, None], zb_index.T].add(cross)
    return grad, hessian
