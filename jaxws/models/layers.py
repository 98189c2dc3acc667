"""Convolution and pooling written to vmap well over per-member weights.

`jax.vmap` of `lax.conv_general_dilated` over a leading axis of kernels becomes a grouped
convolution that XLA's CPU backend runs slowly on one core and with a large working set (and
even unvmapped, XLA CPU's convolution was 10x slower than a matmul formulation for these
small-channel layers; bench/README.md). Written as matmuls, a vmapped convolution is a batched
matmul instead, which every backend runs well. Two formulations: im2col (shifted views of the
padded image stacked along the channel axis, one matmul) and shift-and-matmul (one matmul per
kernel offset, accumulated); the second is the default, being faster here at equal memory.
2x2 max-pooling as reshape + max has the same values and, away from exact ties
(measure zero for float inputs), the same gradients as `lax.reduce_window`.

The convolution optionally carries meta-transfer-learning parameters (Sun et al. 2019, as
used in arXiv:2312.06152 sec. 5, eqs. 4-5): a scale S per (input channel, filter) multiplying
the kernel, and a shift S-bar per filter added to the bias. With S = 1 and S-bar = 0 it is the
plain convolution.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def same_padding(kernel_size: int) -> tuple[int, int]:
    """Padding (before, after) of 'SAME' convolution with stride 1, as TensorFlow/XLA pad."""
    total = kernel_size - 1
    return total // 2, total - total // 2


def im2col(x: jnp.ndarray, kernel_size: tuple[int, int]) -> jnp.ndarray:
    """Patches of a 'SAME'-padded, stride-1 convolution.

    Args:
      x: images (B, H, W, C).
      kernel_size: (kh, kw).

    Returns:
      (B, H, W, kh * kw * C), ordered (kh, kw, C) to match an HWIO kernel reshaped to
      (kh * kw * C, F).
    """
    kh, kw = kernel_size
    _, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), same_padding(kh), same_padding(kw), (0, 0)))
    shifted = [padded[:, i : i + height, j : j + width, :] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(shifted, axis=-1)


def conv2d_im2col(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation as im2col + one matmul.

    Args:
      x: (B, H, W, C) images.
      kernel: (kh, kw, C, F) (HWIO).
      bias: (F,).

    Returns:
      (B, H, W, F).
    """
    kh, kw, cin, cout = kernel.shape
    patches = im2col(x, (kh, kw))
    return patches @ kernel.reshape(kh * kw * cin, cout) + bias


def conv2d_shift_matmul(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation as a sum of one matmul per kernel offset.

    Same arithmetic as im2col without materialising the patches; under `vmap` it is still a
    batched matmul. Measured on the 2-core CPU (bench/README.md): 1.5x the im2col throughput
    for the paper CNN and 1.4x for the slim CNN at E = 1.

    Args and returns as `conv2d_im2col`.
    """
    kh, kw, _, _ = kernel.shape
    _, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), same_padding(kh), same_padding(kw), (0, 0)))
    out = bias
    for i in range(kh):
        for j in range(kw):
            out = out + padded[:, i : i + height, j : j + width, :] @ kernel[i, j]
    return out


def conv2d_same(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation (like Keras Conv2D): the default implementation,
    `conv2d_shift_matmul`. Args and returns as `conv2d_im2col`."""
    return conv2d_shift_matmul(x, kernel, bias)


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max-pooling, stride 2, 'VALID' (odd edges dropped, as Keras MaxPooling2D).

    Args:
      x: (B, H, W, C).

    Returns:
      (B, H // 2, W // 2, C).
    """
    batch, height, width, channels = x.shape
    h2, w2 = height // 2, width // 2
    x = x[:, : 2 * h2, : 2 * w2, :].reshape(batch, h2, 2, w2, 2, channels)
    return x.max(axis=(2, 4))


class Conv2D(nn.Module):
    """Keras-like Conv2D (stride 1, 'same', Glorot-uniform kernel, zero bias).

    Attributes:
      features: number of filters F.
      kernel_size: square kernel size k.
      meta: add the meta-transfer-learning scale `mtl_scale` (C, F), initialised to 1, and
        shift `mtl_shift` (F,), initialised to 0.
    """

    features: int
    kernel_size: int
    meta: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        cin = x.shape[-1]
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.glorot_uniform(), (k, k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.meta:
            scale = self.param("mtl_scale", nn.initializers.ones, (cin, self.features))
            shift = self.param("mtl_shift", nn.initializers.zeros, (self.features,))
            kernel = kernel * scale
            bias = bias + shift
        return conv2d_same(x, kernel, bias)
