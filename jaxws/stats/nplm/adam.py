"""The papers' NPLM fit: full-batch Adam with the weights clipped after every step.

Follows D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155) and NPLM_package: Adam (learning rate
a per-member leaf, times a static profile), full batch, clipping after every step; t is
``-2 L`` after the last step and at the recorded epochs, all inside one compiled loop (the
training engine's ``jaxws.train.loop.steps``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxws.models.nplm_net import NetworkSpec, apply_test_function, init_test_function
from jaxws.stats.nplm.loss import nplm_loss_terms
from jaxws.stats.nplm.training import NPLMFit, NPLMHparams, NPLMTraining, clip_weights
from jaxws.train import loop


def fit_adam(
    key: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
) -> NPLMFit:
    """Minimise the weighted NPLM loss for one member with Adam (clipping after every step).

    Args:
        key: typed PRNG key for the initialisation, consumed.
        x: events, shape (n, n_inputs).
        data_weight: d_i, shape (n,).
        reference_weight: r_i, shape (n,).
        hparams: learning rate and clip value of this member.
        spec: the architecture (static).
        train: the schedule (static).

    Returns:
        The fit; ``t = -2 L`` at the final parameters and at ``train.checkpoints``.
    """
    # Adam scaled by the per-member rate (a leaf) times the static profile of the schedule.
    optimizer = optax.chain(
        optax.scale_by_adam(),
        optax.scale_by_schedule(lambda step: -hparams.learning_rate * train.rate_profile(step)),
    )
    checkpoints = jnp.asarray(train.checkpoints)

    def loss(params: dict) -> jax.Array:
        f = apply_test_function(params, x, spec)
        return jnp.sum(nplm_loss_terms(f, data_weight, reference_weight))

    def step(carry: tuple) -> tuple:
        params, opt_state, history, epoch = carry
        value, grads = jax.value_and_grad(loss)(params)
        # value is L after `epoch` steps: record it where a checkpoint asks for that epoch.
        history = jnp.where(checkpoints == epoch, -2.0 * value, history)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = clip_weights(optax.apply_updates(params, updates), hparams.clip, train.clip_scope)
        return params, opt_state, history, epoch + 1

    params = clip_weights(init_test_function(key, spec, train.init), hparams.clip, train.clip_scope)
    history = jnp.zeros(len(train.checkpoints), jnp.float32)
    carry = (params, optimizer.init(params), history, jnp.array(0, jnp.int32))
    # The engine's loop (`jaxws.train.loop`), for a fixed number of epochs: no early stopping.
    never = lambda _: jnp.array(False)
    params, _, history, _ = loop.steps(step, carry, train.epochs, never)
    t = -2.0 * loss(params)
    t_history = history.at[-1].set(t)  # the last checkpoint is `epochs`: after the last step
    return NPLMFit(t=t, t_history=t_history, params=params)
