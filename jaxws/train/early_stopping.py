"""Early stopping inside compiled code: patience bookkeeping and per-member freezing by select.

Shared by the training engine (epochs) and the meta-learning outer loop (episodes). Semantics
of Keras' EarlyStopping(patience, min_delta) with ModelCheckpoint(save_best_only): a step
improves if its loss is below the best so far by more than `min_delta`; training stops after
`patience` steps without improvement or at `max_steps`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def select(flag, new, old):
    """`new` where `flag` (a scalar, or one flag per member under vmap) is true, else `old`."""
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


class Progress(NamedTuple):
    improved: jax.Array
    best_loss: jax.Array
    best_step: jax.Array
    bad_steps: jax.Array
    done: jax.Array


def update(
    loss, best_loss, best_step, bad_steps, step, *, min_delta: float, patience: int, max_steps: int
) -> Progress:
    """Bookkeeping after step `step` (0-based) whose validation loss is `loss`."""
    improved = loss < best_loss - min_delta
    bad_steps = jnp.where(improved, 0, bad_steps + 1)
    return Progress(
        improved=improved,
        best_loss=jnp.where(improved, loss, best_loss),
        best_step=jnp.where(improved, step, best_step),
        bad_steps=bad_steps,
        done=(bad_steps >= patience) | (step + 1 >= max_steps),
    )
