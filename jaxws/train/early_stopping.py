"""Early stopping inside compiled code: patience bookkeeping and per-member freezing by select.

Shared by the training engine (epochs) and the meta-learning outer loop (episodes). Semantics
of Keras' EarlyStopping(patience, min_delta) with ModelCheckpoint(save_best_only): a step
improves if its loss is below the best so far by more than `min_delta`; training stops after
`patience` steps without improvement or at `max_steps`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def select(flag: ArrayLike, new: Any, old: Any) -> Any:
    """`new` where `flag` (a scalar, or one flag per member under vmap) is true, else `old`.

    Args:
      flag: boolean scalar (one per member under vmap).
      new: a pytree.
      old: a pytree of the same structure.

    Returns:
      The pytree whose leaves are `jnp.where(flag, new_leaf, old_leaf)`.
    """
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


class Progress(NamedTuple):
    """Early-stopping bookkeeping after one step.

    Attributes:
      improved: whether this step's loss beat the best by more than `min_delta`.
      best_loss: the best loss so far.
      best_step: the (0-based) step of the best loss.
      bad_steps: steps since the last improvement.
      done: patience exhausted or `max_steps` reached.
    """

    improved: jax.Array
    best_loss: jax.Array
    best_step: jax.Array
    bad_steps: jax.Array
    done: jax.Array


def update(
    loss: ArrayLike,
    best_loss: ArrayLike,
    best_step: ArrayLike,
    bad_steps: ArrayLike,
    step: ArrayLike,
    *,
    min_delta: float,
    patience: int,
    max_steps: int,
    keep_last: bool = False,
) -> Progress:
    """Bookkeeping after step `step` (0-based) whose validation loss is `loss`.

    Args:
      loss: this step's validation loss.
      best_loss: the best loss before this step.
      best_step: the step of `best_loss`.
      bad_steps: steps without improvement before this one.
      step: this step's index (0-based).
      min_delta: how much the loss must drop below the best to count as an improvement.
      patience: stop after this many steps without improvement.
      max_steps: stop after this many steps in all.
      keep_last: no early stopping: every step with a finite loss counts as improved (its
        variables are the ones kept), and only `max_steps` ends the run.

    Returns:
      The updated `Progress`.
    """
    improved = jnp.isfinite(loss) if keep_last else loss < best_loss - min_delta
    bad_steps = jnp.where(improved, 0, bad_steps + 1)
    out_of_patience = False if keep_last else bad_steps >= patience
    return Progress(
        improved=improved,
        best_loss=jnp.where(improved, loss, best_loss),
        best_step=jnp.where(improved, step, best_step),
        bad_steps=bad_steps,
        done=out_of_patience | (step + 1 >= max_steps),
    )
