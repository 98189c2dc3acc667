"""Reptile (Nichol, Achiam, Schulman 2018, arXiv:1803.02999).

No query loss is differentiated: after adapting on a task, the meta-gradient is the
difference between the starting and the adapted parameters, so the outer step moves the
initialisation towards the adapted one (averaged over a meta-batch: batched Reptile). With
the "sgd" outer optimizer and outer_lr = epsilon this is Reptile exactly; "adam" rescales it.
The support and query halves are both used for adaptation (Reptile has no query step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxws.methods.meta import GradientMetaLearner, MetaState, register
from jaxws.models import partition


def _not_meta(path) -> bool:
    return not partition.is_meta(path)


@register("reptile")
class Reptile(GradientMetaLearner):
    """Outer step along (initial - adapted) parameters."""

    adapted = staticmethod(_not_meta)
    meta_trained = staticmethod(_not_meta)
    fine_tune_trainable = staticmethod(_not_meta)
    fine_tune_reinit = None

    def meta_gradient(self, state: MetaState, model_state, task, hparams, key):
        x_s, y_s, w_s = task.support
        x_q, y_q, w_q = task.query
        both = (
            jax.tree.map(lambda a, b: jnp.concatenate([a, b]), x_s, x_q),
            jnp.concatenate([y_s, y_q]),
            jnp.concatenate([w_s, w_q]),
        )
        adapted = jax.lax.stop_gradient(self.adapt(state, model_state, both, hparams, key))
        loss = self.task_loss(adapted, model_state, task.query)
        (start, extra), _ = self._outer_part(state)
        end, _ = partition.split(adapted, self.meta_trained)
        grads = {k: start[k] - end[k] for k in start}
        return (grads, jax.tree.map(jnp.zeros_like, extra)), loss
