"""Model-agnostic meta-learning (Finn, Abbeel, Levine 2017, arXiv:1703.03400).

Every parameter is adapted in the inner loop and meta-trained in the outer loop. The exact
second-order gradient through the inner loop is the default; `first_order: true` in the
config gives first-order MAML (registered as "fomaml" too, with the flag forced on). Phase 3
fine-tunes the whole meta-learned initialisation on the CWoLa task.
"""

from __future__ import annotations

import dataclasses

from jaxws.methods.meta import GradientMetaLearner, register
from jaxws.models import partition


def _not_meta(path) -> bool:
    return not partition.is_meta(path)


@register("maml")
class MAML(GradientMetaLearner):
    """MAML on all parameters of a plain network."""

    adapted = staticmethod(_not_meta)
    meta_trained = staticmethod(_not_meta)
    fine_tune_trainable = staticmethod(_not_meta)
    fine_tune_reinit = None


@register("fomaml")
class FirstOrderMAML(MAML):
    """First-order MAML: the query gradient at the adapted parameters is the meta-gradient."""

    def __init__(self, apply_fn, config, **kwargs):
        super().__init__(apply_fn, dataclasses.replace(config, first_order=True), **kwargs)
