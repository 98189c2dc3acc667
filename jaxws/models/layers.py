"""Convolution and pooling for the jet CNNs; the convolution form is chosen per layer and backend.

Four forms of the same stride-1 'SAME' cross-correlation (values and gradients tested against
`lax.conv_general_dilated` in tests/models/test_layers.py):

- `lax`: `lax.conv_general_dilated` itself. On GPU it is cuDNN's convolution, and `jax.vmap`
  over per-member kernels folds the members into feature groups (a grouped convolution), which
  cuDNN runs as one kernel. On XLA's CPU backend it was 10-25x slower than the matmul forms
  for these layers, vmapped or not (bench/README.md).
- `im2col`: the kh * kw shifted views of the padded image stacked along the channel axis and
  one matmul with the (kh * kw * C, F) kernel. Best when C is small: for the first layer of a
  jet CNN (C = 1) it is one (N, 25) x (25, 64) matmul instead of 25 one-column outer products.
- `rows`: im2col over the kernel's width only (K = kw * C) and one matmul per kernel row,
  accumulated: 1/kh of the im2col patch memory with kh times fewer accumulator passes than
  `shift`.
- `shift`: one (N, C) x (C, F) matmul per kernel offset, accumulated. Reads and writes the
  (N, F) accumulator kh * kw times, so it is bandwidth-bound when C is small; kept for
  comparison and as an explicit choice.

`conv2d_same(..., method="auto")` picks the form by `choose_conv_method(backend, ...)`: `lax` on
GPU/TPU, on CPU the form that measured fastest for the layer's shape (bench/conv_forms.py).
`JAXWS_CONV` (environment) or `Conv2D(method=...)` override it; the module attribute wins.

Under `jax.vmap` over per-member weights every matmul form is a batched matmul.
2x2 max-pooling as reshape + max has the same values and, away from exact ties (measure zero
for float inputs), the same gradients as `lax.reduce_window`.

The convolution optionally carries meta-transfer-learning parameters (Sun et al. 2019, as
used in arXiv:2312.06152 sec. 5, eqs. 4-5): a scale S per (input channel, filter) multiplying
the kernel, and a shift S-bar per filter added to the bias. With S = 1 and S-bar = 0 it is the
plain convolution.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

CONV_METHODS = ("lax", "im2col", "rows", "shift")
CONV_ENV = "JAXWS_CONV"


def same_padding(kernel_size: int) -> tuple[int, int]:
    """Padding (before, after) of 'SAME' convolution with stride 1, as TensorFlow/XLA pad."""
    total = kernel_size - 1
    return total // 2, total - total // 2


def _pad_same(x: jnp.ndarray, kh: int, kw: int) -> jnp.ndarray:
    return jnp.pad(x, ((0, 0), same_padding(kh), same_padding(kw), (0, 0)))


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
    padded = _pad_same(x, kh, kw)
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


def conv2d_rows(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation as one matmul per kernel row over width-patches.

    The padded image's kw horizontal shifts are stacked along channels once (K = kw * C); row i
    of the kernel is then a matmul of that stack shifted down by i. Args and returns as
    `conv2d_im2col`.
    """
    kh, kw, cin, cout = kernel.shape
    _, height, width, _ = x.shape
    padded = _pad_same(x, kh, kw)
    rows = jnp.concatenate([padded[:, :, j : j + width, :] for j in range(kw)], axis=-1)
    out = bias
    for i in range(kh):
        out = out + rows[:, i : i + height] @ kernel[i].reshape(kw * cin, cout)
    return out


def conv2d_shift_matmul(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation as a sum of one matmul per kernel offset.

    Same arithmetic as im2col without materialising the patches, but the (B, H, W, F)
    accumulator is read and written kh * kw times. Args and returns as `conv2d_im2col`.
    """
    kh, kw, _, _ = kernel.shape
    _, height, width, _ = x.shape
    padded = _pad_same(x, kh, kw)
    out = bias
    for i in range(kh):
        for j in range(kw):
            out = out + padded[:, i : i + height, j : j + width, :] @ kernel[i, j]
    return out


def conv2d_lax(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation by `lax.conv_general_dilated` (cuDNN on GPU).

    Args and returns as `conv2d_im2col`.
    """
    out = lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return out + bias


_FORMS = {
    "lax": conv2d_lax,
    "im2col": conv2d_im2col,
    "rows": conv2d_rows,
    "shift": conv2d_shift_matmul,
}


def choose_conv_method(
    backend: str, kernel_size: tuple[int, int], in_channels: int, out_channels: int
) -> str:
    """The convolution form used by `method="auto"` for one layer.

    Args:
      backend: `jax.default_backend()` ("cpu", "gpu", "cuda", "rocm", "tpu").
      kernel_size: (kh, kw).
      in_channels: C.
      out_channels: F.

    Returns:
      "lax" off CPU (cuDNN / the TPU's convolution units); on CPU "im2col", which measured
      fastest for every layer of the paper and slim CNNs, forward and backward
      (bench/conv_forms.py, bench/README.md).
    """
    if backend != "cpu":
        return "lax"
    del kernel_size, in_channels, out_channels  # one answer on CPU for the measured shapes
    return "im2col"


def conv_method_override() -> str | None:
    """The form forced by the `JAXWS_CONV` environment variable, or None ("auto" or unset)."""
    value = os.environ.get(CONV_ENV, "auto").strip() or "auto"
    if value == "auto":
        return None
    if value not in CONV_METHODS:
        raise ValueError(f"{CONV_ENV}={value!r}: expected auto or one of {', '.join(CONV_METHODS)}")
    return value


def conv2d_same(
    x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray, method: str = "auto"
) -> jnp.ndarray:
    """Stride-1 'SAME' cross-correlation (like Keras Conv2D) in the chosen form.

    Args:
      x: (B, H, W, C) images.
      kernel: (kh, kw, C, F) (HWIO).
      bias: (F,).
      method: one of `CONV_METHODS`, or "auto": `JAXWS_CONV` if set, else
        `choose_conv_method` for the default backend and this layer's shape.

    Returns:
      (B, H, W, F).
    """
    if method == "auto":
        kh, kw, cin, cout = kernel.shape
        method = conv_method_override() or choose_conv_method(
            jax.default_backend(), (kh, kw), cin, cout
        )
    if method not in _FORMS:
        raise ValueError(f"unknown convolution method {method!r}; expected auto or {CONV_METHODS}")
    return _FORMS[method](x, kernel, bias)


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
      method: convolution form ("auto" or one of `CONV_METHODS`, see `conv2d_same`).
    """

    features: int
    kernel_size: int
    meta: bool = False
    method: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Convolve (B, H, W, C) images into (B, H, W, F) feature maps."""
        cin = x.shape[-1]
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.glorot_uniform(), (k, k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.meta:
            scale = self.param("mtl_scale", nn.initializers.ones, (cin, self.features))
            shift = self.param("mtl_shift", nn.initializers.zeros, (self.features,))
            kernel = kernel * scale
            bias = bias + shift
        return conv2d_same(x, kernel, bias, self.method)
