"""Per-example losses. The engine weights and reduces them (optax convention)."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def sigmoid_binary_cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Binary cross-entropy of sigmoid(logits) against labels in [0, 1], per example."""
    return optax.sigmoid_binary_cross_entropy(logits, labels)
