"""The loop of every iterative fit: steps in a compiled while loop, blocks of them on the host.

A fit's step (an epoch of a classifier, an episode of meta-learning) maps a state to the next
state; the state carries its early-stopping bookkeeping, `done` included
(`jaxws.train.early_stopping`). `steps` runs up to n steps in one `lax.while_loop`, ending as
soon as the state is done (under `vmap`, once every member is: a stopped member's step must
leave it unchanged, which `early_stopping.select` does); `run` calls a compiled block of
steps from the host until the state is done, with a progress bar. A step that draws its
random numbers from its own index (`fold_in(key, step)`) gives the same result whatever the
block length, so a fit can be cut into blocks anywhere.

Users: `jaxws.train.learner.run_epochs` (the classifier engine's epochs; `Trainer.run` adds
refill and compaction of ensemble rows between blocks) and the meta-learning outer loop
(`jaxws.methods.meta.outer.MetaTrainer`, episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

State = TypeVar("State")


def steps(
    step: Callable[[State], State], state: State, n: int, done: Callable[[State], jax.Array]
) -> State:
    """Up to `n` applications of `step`, fewer once `done(state)` (a `lax.while_loop`).

    Args:
      step: the state after one more step (traceable).
      state: the state before.
      n: most steps to run (static or traced).
      done: whether a state has finished (a boolean scalar).

    Returns:
      The state after the steps.
    """

    def running(carry: tuple[jax.Array, State]) -> jax.Array:
        count, current = carry
        return (count < n) & ~done(current)

    def one(carry: tuple[jax.Array, State]) -> tuple[jax.Array, State]:
        count, current = carry
        return count + 1, step(current)

    _, state = jax.lax.while_loop(running, one, (jnp.array(0, jnp.int32), state))
    return state


def run(
    block: Callable[[State, int], State],
    state: State,
    *,
    done: Callable[[State], bool],
    position: Callable[[State], int],
    total: int,
    block_steps: int = 1,
    progress: bool | str = False,
    desc: str = "",
    after_block: Callable[[State], None] | None = None,
) -> State:
    """Call `block(state, block_steps)` from the host until `done(state)`.

    Args:
      block: a compiled function running up to `block_steps` steps (e.g. jit of `steps`).
      state: the starting state.
      done: whether the state has finished (read on the host: one device sync per block).
      position: steps run so far (for the progress bar).
      total: most steps in all (the progress bar's length).
      block_steps: steps per call.
      progress: show a progress bar (a string is its description).
      desc: the progress bar's description when `progress` is True.
      after_block: called with the state after each block (e.g. to checkpoint it).

    Returns:
      The finished state.
    """
    label = progress if isinstance(progress, str) else desc
    with tqdm(total=total, desc=label, disable=not progress, leave=False) as bar:
        while not done(state):
            state = block(state, block_steps)
            if after_block is not None:
                after_block(state)
            bar.update(int(position(state)) - bar.n)
    return state
