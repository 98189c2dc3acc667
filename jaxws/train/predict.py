"""Inference: one model or an ensemble on shared inputs, in chunks, one compiled program each."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxws.models import layers
from jaxws.train.state import Pool


def predict(model: nn.Module, variables: dict, x: Pool, batch_size: int = 2048) -> jax.Array:
    """Model outputs in inference mode for every event of `x`, in chunks of `batch_size`."""
    return _predict_fn(model, batch_size, layers.conv_method_override())(variables, x)


def predict_ensemble(
    model: nn.Module, variables: dict, x: Pool, batch_size: int = 2048
) -> jax.Array:
    """(E, N) outputs of E members (variables with a leading member axis) on shared `x`."""
    return _predict_ensemble_fn(model, batch_size, layers.conv_method_override())(variables, x)


def _predict_impl(model: nn.Module, batch_size: int):
    def impl(variables: dict, x: Pool) -> jax.Array:
        n = jax.tree.leaves(x)[0].shape[0]
        size = min(batch_size, n)
        n_chunks = math.ceil(n / size)
        pad = n_chunks * size - n

        def reshape(a: jax.Array) -> jax.Array:
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
            return a.reshape(n_chunks, size, *a.shape[1:])

        chunks = jax.tree.map(reshape, x)
        outputs = jax.lax.map(lambda c: model.apply(variables, c, train=False), chunks)
        return outputs.reshape(n_chunks * size)[:n]

    return impl


# Cached per (module, batch size, convolution override): flax modules are hashable
# dataclasses, so repeated predictions with the same architecture reuse one compiled program.
@functools.lru_cache(maxsize=32)
def _predict_fn(model: nn.Module, batch_size: int, conv_method: str | None):
    return jax.jit(_predict_impl(model, batch_size))


@functools.lru_cache(maxsize=32)
def _predict_ensemble_fn(model: nn.Module, batch_size: int, conv_method: str | None):
    return jax.jit(jax.vmap(_predict_impl(model, batch_size), in_axes=(0, None)))
