"""Meta-SGD (Li, Zhou, Chen, Li 2017, arXiv:1707.09835).

Like MAML, but the inner step size is a meta-learned vector alpha with one entry per
adapted parameter (initialised to the inner learning rate beta): theta' = theta - alpha * grad.
alpha is an extra meta-parameter of the outer update. Phase 3 fine-tunes the meta-learned
initialisation with the engine's Adam (alpha does not carry over to the engine).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxws.methods.meta import GradientMetaLearner, MetaState, register
from jaxws.models import partition


def _not_meta(path) -> bool:
    return not partition.is_meta(path)


@register("meta_sgd")
class MetaSGD(GradientMetaLearner):
    """MAML with a learned per-parameter inner learning rate."""

    adapted = staticmethod(_not_meta)
    meta_trained = staticmethod(_not_meta)
    fine_tune_trainable = staticmethod(_not_meta)
    fine_tune_reinit = None

    def init(self, key, params, hparams) -> MetaState:
        del key
        adapted, _ = partition.split(params, self.adapted)
        rates = {k: jnp.full(v.shape, hparams.inner_lr, v.dtype) for k, v in adapted.items()}
        return MetaState(params=params, extra={"inner_lr": rates})

    def inner_step_size(self, state: MetaState, hparams):
        return state.extra["inner_lr"]
