"""Meta-transfer learning (Sun et al. 2019, arXiv:1812.02391; arXiv:2312.06152 sec. 5).

Phase 1 (pretraining with S = 1, S-bar = 0) and phase 3 (fine-tuning theta on the CWoLa task
with Theta, S and S-bar frozen) are transfer learning (`jaxws.methods.transfer`). Phase 2 is
this learner: the feature extractor Theta stays fixed; base learning adapts the head theta
(eq. 6); the meta-learner update moves theta and the scale S / shift S-bar of every conv layer
(eq. 7). The paper keeps the pretrained theta at the start of phase 2 and re-initialises it
after; `fine_tune_reinit` says the latter.
"""

from __future__ import annotations

from jaxws.methods.meta import GradientMetaLearner, register
from jaxws.models import partition


def _head_or_meta(path) -> bool:
    return partition.is_head(path) or partition.is_meta(path)


@register("mtl")
class MTL(GradientMetaLearner):
    """Inner loop on theta; outer update on theta, S and S-bar; Theta frozen."""

    adapted = staticmethod(partition.is_head)
    meta_trained = staticmethod(_head_or_meta)
    uses_meta_parameters = True
    fine_tune_trainable = staticmethod(partition.is_head)
    fine_tune_reinit = staticmethod(partition.is_head)
