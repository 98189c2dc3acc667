"""What one NPLM fit is: per-member numbers, the static training, the result, the weight clip.

Follows D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155) and NPLM_package (GaiaGrosso): full
batch training of the test function f, every weight (biases included) clipped into
``[-clip, clip]`` after every step; the clip bounds f, hence t, and is chosen so that the null
follows chi2 (:mod:`jaxws.stats.nplm.null`). ``t = -2 L`` at the trained parameters, larger t
is more signal-like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxws.models.nplm_net import INITIALISATIONS

CLIP_SCOPES = ("all", "kernels")


def clip_weights(params: Any, clip: jax.Array, scope: str = "all") -> Any:
    """Weight clipping into [-clip, clip] (NPLM_package clips every weight, biases included).

    Args:
        params: parameter pytree of f.
        clip: clipping value (``inf`` for none).
        scope: "all" (kernels and biases, the papers' statistic) or "kernels" (biases free).

    Returns:
        The clipped pytree.
    """
    if scope not in CLIP_SCOPES:
        raise ValueError(f"clip scope must be one of {CLIP_SCOPES}, got {scope!r}")

    def clip_leaf(path: tuple, leaf: jax.Array) -> jax.Array:
        name = getattr(path[-1], "key", None)
        clipped = scope == "all" or name == "kernel"
        return jnp.clip(leaf, -clip, clip) if clipped else leaf

    return jax.tree_util.tree_map_with_path(clip_leaf, params)


def clip_kernels(params: Any, clip: jax.Array) -> Any:
    """Weight clipping of the kernels only (``clip_weights(params, clip, "kernels")``)."""
    return clip_weights(params, clip, "kernels")


class NPLMHparams(NamedTuple):
    """Per-member training numbers (pytree leaves: sweeping them does not recompile).

    Attributes:
        learning_rate: Adam learning rate.
        clip: weight-clipping value (of every weight or of the kernels only, as
            ``NPLMTraining.clip_scope`` says); ``inf`` means no clipping.
    """

    learning_rate: jax.Array
    clip: jax.Array


@dataclass(frozen=True)
class NPLMTraining:
    """Static training schedule (full batch; Adam or damped Newton).

    Args:
        epochs: number of full-batch Adam steps (Newton iterations for "newton").
        checkpoints: epochs (ascending, the last one equal to ``epochs``) at which t is
            recorded inside the compiled loop ("t against epochs"); t at epoch c is
            ``-2 L`` after c steps.
        decay: learning-rate profile over the epochs, multiplying the per-member rate:
            "constant" (the papers' choice) or "cosine" (cosine decay to ``final_fraction``).
        final_fraction: last-epoch learning rate over the initial one for "cosine".
        optimizer: "adam" (full-batch Adam, the papers' choice; weights clipped after every
            step) or "newton" (damped saddle-free Newton on all parameters at once; clipped
            weights at the bound pushed outward are held, the others projected into the box; a
            step is kept only if it lowers the loss). Newton is an option only: it can stop in
            a local minimum that long Adam training leaves (tests/stats/test_nplm.py compares them).
        clip_scope: "all" (every weight, biases included, as NPLM_package) or "kernels".
        init: "glorot" (NPLM_package's glorot-uniform kernels and biases) or "lecun".
    """

    epochs: int
    checkpoints: tuple[int, ...] = ()
    decay: str = "constant"
    final_fraction: float = 0.01
    optimizer: str = "adam"
    clip_scope: str = "all"
    init: str = "glorot"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"NPLMTraining.epochs must be a positive int, got {self.epochs!r}")
        points = tuple(int(c) for c in self.checkpoints) or (self.epochs,)
        if points[-1] != self.epochs:
            points = (*[c for c in points if c < self.epochs], self.epochs)
        if any(c < 1 for c in points) or list(points) != sorted(set(points)):
            raise ValueError(
                f"NPLMTraining.checkpoints must be ascending positive epochs <= {self.epochs}, "
                f"got {self.checkpoints!r}"
            )
        object.__setattr__(self, "checkpoints", points)
        if self.optimizer not in ("adam", "newton"):
            raise ValueError(
                f"NPLMTraining.optimizer must be adam or newton, got {self.optimizer!r}"
            )
        if self.decay not in ("constant", "cosine"):
            raise ValueError(f"NPLMTraining.decay must be constant or cosine, got {self.decay!r}")
        if not 0.0 < self.final_fraction <= 1.0:
            raise ValueError(
                f"NPLMTraining.final_fraction must be in (0, 1], got {self.final_fraction!r}"
            )
        if self.clip_scope not in CLIP_SCOPES:
            raise ValueError(f"NPLMTraining.clip_scope must be one of {CLIP_SCOPES}")
        if self.init not in INITIALISATIONS:
            raise ValueError(f"NPLMTraining.init must be one of {INITIALISATIONS}")

    def rate_profile(self, step: jax.Array) -> jax.Array:
        """Learning-rate multiplier at a (0-based) step."""
        if self.decay == "constant":
            return jnp.ones_like(step, jnp.float32)
        progress = step.astype(jnp.float32) / max(self.epochs - 1, 1)
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return self.final_fraction + (1.0 - self.final_fraction) * cosine


class NPLMFit(NamedTuple):
    """Result of one fit (or of an ensemble, with a leading member axis).

    Attributes:
        t: test statistic ``-2 L`` after the last epoch.
        t_history: t at each of ``NPLMTraining.checkpoints``.
        params: trained parameters of f.
        converged: whether a fit run to a tolerance (Newton, kernel) met it; None for Adam,
            which trains for a fixed number of epochs (t is -2 L after them, the papers'
            definition) and claims no minimum.
    """

    t: jax.Array
    t_history: jax.Array
    params: Any
    converged: Any = None
