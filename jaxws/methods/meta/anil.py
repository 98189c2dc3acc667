"""ANIL, almost no inner loop (Raghu et al. 2020, arXiv:1909.09157).

Only the head is adapted in the inner loop; the outer loop meta-trains the whole network
(second-order by default, the gradient flowing into the feature extractor through the head's
adaptation). Phase 3 fine-tunes the head with the feature extractor frozen, as ANIL adapts at
test time.
"""

from __future__ import annotations

from jaxws.methods.meta import GradientMetaLearner, register
from jaxws.models import partition


def _not_meta(path) -> bool:
    return not partition.is_meta(path)


@register("anil")
class ANIL(GradientMetaLearner):
    """Inner loop on the head only, outer loop on everything."""

    adapted = staticmethod(partition.is_head)
    meta_trained = staticmethod(_not_meta)
    fine_tune_trainable = staticmethod(partition.is_head)
    fine_tune_reinit = None
