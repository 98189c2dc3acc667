"""Member views: which pool events one ensemble member trains and validates on.

A study keeps one pool of inputs (jet images or features) on the device; each member (one
pseudo-experiment, one seed, one meta-learning task) sees it through integer indices, labels
and per-event weights, so that many members share the pool without copies. Weight 0 marks
padding, which lets members of different sizes be stacked along a leading member axis.
"""

from __future__ import annotations

import flax
import jax
import numpy as np
from numpy.typing import ArrayLike


@flax.struct.dataclass(kw_only=True)
class MemberData:
    """One member's view of the pool: indices, labels and weights (weight 0 = padding).

    Fields are NumPy arrays as built (`from_arrays`) and JAX arrays once on the device. The
    constructor takes keywords only, so that the one positional order is `from_arrays`'s
    (train index, train label, val index, val label, then optional weights).
    """

    train_index: jax.Array | np.ndarray
    train_label: jax.Array | np.ndarray
    train_weight: jax.Array | np.ndarray
    val_index: jax.Array | np.ndarray
    val_label: jax.Array | np.ndarray
    val_weight: jax.Array | np.ndarray

    @staticmethod
    def from_arrays(
        train_index: ArrayLike,
        train_label: ArrayLike,
        val_index: ArrayLike,
        val_label: ArrayLike,
        train_weight: ArrayLike | None = None,
        val_weight: ArrayLike | None = None,
    ) -> MemberData:
        """MemberData with unit weights where none are given.

        Args:
            train_index: pool indices of the training events (cast to int32).
            train_label: their labels (cast to float32).
            val_index: pool indices of the validation events.
            val_label: their labels.
            train_weight: per-event training weights (default one each).
            val_weight: per-event validation weights (default one each).

        Returns:
            The member view, with NumPy leaves.
        """
        train_index = np.asarray(train_index, np.int32)
        val_index = np.asarray(val_index, np.int32)
        return MemberData(
            train_index=train_index,
            train_label=np.asarray(train_label, np.float32),
            train_weight=np.ones(train_index.shape, np.float32)
            if train_weight is None
            else np.asarray(train_weight, np.float32),
            val_index=val_index,
            val_label=np.asarray(val_label, np.float32),
            val_weight=np.ones(val_index.shape, np.float32)
            if val_weight is None
            else np.asarray(val_weight, np.float32),
        )
