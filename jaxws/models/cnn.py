"""The jet-image CNN of arXiv:2312.06152 (Table 2) and a slim CPU variant.

One CNN subnetwork is shared by the two leading jets. Each jet's image is batch-normalised
separately at the input ("the distributions of each of them are independently batch
normalized"), passed through the shared convolutional feature extractor (Theta, submodule
`features`) and the shared dense head (theta, submodule `head`), which returns one sigmoid
output per jet. The event output is the product of the two sigmoids; the module returns its
logit, log p - log(1 - p), so that a standard sigmoid cross-entropy on the logit is exactly
the binary cross-entropy of the product.

Table 2: (conv 64@5x5, maxpool 2x2) x 2, conv 128@3x3, maxpool 2x2, conv 128@3x3, flatten,
dense 128 x 3, dense 1; ReLU, padding 'same'. `PAPER_CNN` below is that network.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxws.models.layers import Conv2D, max_pool_2x2
from jaxws.models.normalization import InputNorm


def log1mexp(log_p: jnp.ndarray) -> jnp.ndarray:
    """log(1 - exp(log_p)) for log_p < 0, stable at both ends (Maechler 2012)."""
    return jnp.where(
        log_p > -0.6931471805599453, jnp.log(-jnp.expm1(log_p)), jnp.log1p(-jnp.exp(log_p))
    )


class ConvFeatures(nn.Module):
    """Per-jet input batch norm and the shared convolutional stack (Theta).

    Input (B, 2, R, R) jet images, or (B, 2, R, R, K) with K channels per pixel (e.g. pT and
    constituent count); output (B, 2, D) flattened features per jet.
    """

    conv_features: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    pool_after: tuple[bool, ...]
    meta: bool = False
    frozen_norm: bool = False

    @nn.compact
    def __call__(self, images: jnp.ndarray, train: bool) -> jnp.ndarray:
        """Features of both jets of a batch.

        Args:
          images: (B, 2, R, R) or (B, 2, R, R, K) jet images.
          train: normalise with the batch's statistics and update the stored ones.

        Returns:
          (B, 2, D) flattened convolutional features per jet.
        """
        batch = images.shape[0]
        if images.ndim == 4:
            images = images[..., None]
        # Each jet's channels normalised separately (the paper: "the distributions of each of
        # them are independently batch normalized"), with exact statistics (normalization.py).
        normalised = [
            InputNorm(
                use_running_average=(not train) or self.frozen_norm, name=f"input_norm_{jet}"
            )(images[:, jet])
            for jet in range(2)
        ]
        x = jnp.concatenate(normalised, axis=0)  # (2B, R, R, K): both jets share the convs
        for layer, (features, size, pool) in enumerate(
            zip(self.conv_features, self.kernel_sizes, self.pool_after, strict=True)
        ):
            x = nn.relu(Conv2D(features, size, meta=self.meta, name=f"conv_{layer}")(x))
            if pool:
                x = max_pool_2x2(x)
        x = x.reshape(2, batch, -1)
        return jnp.swapaxes(x, 0, 1)


class DenseHead(nn.Module):
    """Shared dense layers and one output per jet (theta). (B, 2, D) -> (B, 2) logits."""

    dense_features: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Map (B, 2, D) features to (B, 2) logits, one per jet."""
        for layer, features in enumerate(self.dense_features):
            x = nn.relu(nn.Dense(features, name=f"dense_{layer}")(x))
        return nn.Dense(1, name="output")(x)[..., 0]


class JetCNN(nn.Module):
    """Two-jet image classifier; returns the logit of sigmoid(jet 1) * sigmoid(jet 2).

    Attributes:
      conv_features, kernel_sizes, pool_after: the convolutional stack, layer by layer.
      dense_features: hidden dense layers of the head (the output layer is added).
      meta: add meta-transfer-learning scale and shift parameters to every conv layer.
      frozen_norm: run the input batch norm in inference mode even when training (used when
        the feature extractor is frozen, as Keras does for a non-trainable BatchNormalization).
    """

    conv_features: tuple[int, ...] = (64, 64, 128, 128)
    kernel_sizes: tuple[int, ...] = (5, 5, 3, 3)
    pool_after: tuple[bool, ...] = (True, True, True, False)
    dense_features: tuple[int, ...] = (128, 128, 128)
    meta: bool = False
    frozen_norm: bool = False

    @nn.compact
    def __call__(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """Event logit log(p / (1 - p)) with p = sigmoid(jet 1 logit) * sigmoid(jet 2 logit).

        Args:
          images: (B, 2, R, R) or (B, 2, R, R, K) jet images.
          train: batch statistics for the input norm (and update them), unless `frozen_norm`.

        Returns:
          (B,) logits.

        Raises:
          ValueError: If `images` is not (B, 2, R, R) or (B, 2, R, R, K).
        """
        if images.ndim not in (4, 5) or images.shape[1] != 2:
            raise ValueError(
                f"JetCNN expects images (B, 2, R, R) or (B, 2, R, R, K), got shape {images.shape}"
            )
        features = ConvFeatures(
            self.conv_features,
            self.kernel_sizes,
            self.pool_after,
            meta=self.meta,
            frozen_norm=self.frozen_norm,
            name="features",
        )(images, train)
        jet_logits = DenseHead(self.dense_features, name="head")(features)
        log_p = jax.nn.log_sigmoid(jet_logits).sum(axis=-1)
        return log_p - log1mexp(log_p)


PAPER_CNN = dict(
    conv_features=(64, 64, 128, 128),
    kernel_sizes=(5, 5, 3, 3),
    pool_after=(True, True, True, False),
    dense_features=(128, 128, 128),
)
SLIM_CNN = dict(
    conv_features=(8, 16),
    kernel_sizes=(3, 3),
    pool_after=(True, True),
    dense_features=(32, 32),
)
