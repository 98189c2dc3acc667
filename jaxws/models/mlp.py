"""A multilayer perceptron for feature vectors, partitioned like the CNN.

The input batch norm and the hidden layers `feature_widths` are the feature extractor
(`features`, Theta); the hidden layers `head_widths` and the one-unit output are the head
(`head`, theta). Returns one logit per example.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxws.models.normalization import InputNorm


class MLPFeatures(nn.Module):
    """The MLP's feature extractor (Theta): optional input batch norm, then hidden layers.

    Attributes:
      widths: hidden layer widths.
      standardise: batch-normalise the inputs first.
      frozen_norm: keep the input batch norm in inference mode while training.
    """

    widths: tuple[int, ...]
    standardise: bool
    frozen_norm: bool

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        """Map (B, F) features to (B, widths[-1]) hidden features (ReLU)."""
        if self.standardise:
            x = InputNorm(use_running_average=(not train) or self.frozen_norm, name="input_norm")(x)
        for layer, width in enumerate(self.widths):
            x = nn.relu(nn.Dense(width, name=f"dense_{layer}")(x))
        return x


class MLPHead(nn.Module):
    """The MLP's head (theta): hidden ReLU layers and a one-unit output.

    Attributes:
      widths: hidden layer widths before the output.
    """

    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Map (B, D) features to (B,) logits."""
        for layer, width in enumerate(self.widths):
            x = nn.relu(nn.Dense(width, name=f"dense_{layer}")(x))
        return nn.Dense(1, name="output")(x)[..., 0]


class MLP(nn.Module):
    """Feature-vector classifier returning one logit per example.

    Attributes:
      feature_widths: hidden layers of the feature extractor.
      head_widths: hidden layers of the head before the one-unit output.
      standardise: batch-normalise the inputs (exact training-set statistics, see
        `jaxws.models.normalization`), as the CNN does.
      frozen_norm: keep the input batch norm in inference mode while training.
    """

    feature_widths: tuple[int, ...] = (64, 64)
    head_widths: tuple[int, ...] = (32,)
    standardise: bool = True
    frozen_norm: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """Map (B, ...) inputs, flattened to (B, F), to (B,) logits."""
        x = x.reshape(x.shape[0], -1)
        x = MLPFeatures(self.feature_widths, self.standardise, self.frozen_norm, name="features")(
            x, train
        )
        return MLPHead(self.head_widths, name="head")(x)
