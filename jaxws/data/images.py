"""Jet images at any resolution, made on the device from padded constituent sets.

Preprocessing of Beauchesne, Chen and Chiang (arXiv:2312.06152), section 2, after
Kasieczka et al. and de Oliveira et al.:
  1. translate to the pT-weighted centroid of the constituents (the jet axis), so a common
     offset of (deta, dphi) does not matter;
  2. rotate so that the pT-weighted principal axis (the major axis of the pT-weighted second
     moments) is horizontal;
  3. flip each axis so that the hardest constituent lies in the upper right quadrant
     (deta >= 0 and dphi >= 0);
  4. pixelate the pT on a resolution x resolution grid over deta, dphi in [-1, 1].

Conventions: image[i, j] sums the pT of the constituents in deta bin i and dphi bin j, like
`np.histogram2d(deta, dphi, bins=R, range=[[-1, 1], [-1, 1]], weights=pt)` (right-open bins
except the last, which includes 1); so axis 0 is the horizontal (principal) axis. Padding
(pT = 0) contributes nothing and constituents outside the window are dropped. By default
pixels hold raw pT [GeV] as in the paper; `normalize=True` divides by the image's pT sum.

Channels (`channels` of `jet_images` / `event_images`): "pt" is the image above; "count" is
the number of constituents in each pixel (never normalised). The count channel keeps the
constituent multiplicity, which separates dark showers from QCD far better than the pT
pattern (hv-reference: AUC 0.97 for Lambda_D = 10 ID from the total multiplicity alone) and
which a normalised pT image loses. One channel gives (..., R, R); several give
(..., R, R, K) in the order asked.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

IMAGE_HALF_WIDTH = 1.0
CHANNELS = ("pt", "count")


def check_channels(channels: tuple[str, ...]) -> tuple[str, ...]:
    """`channels` as a tuple, or ValueError naming an unknown or repeated channel."""
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if not channels or unknown or len(set(channels)) != len(channels):
        raise ValueError(
            f"image channels must be distinct names from {list(CHANNELS)}, got {list(channels)}"
        )
    return channels


def preprocess(constituents: jax.Array) -> jax.Array:
    """Translate, rotate and flip one jet's constituents (steps 1-3).

    Args:
        constituents: (C, 3) array of pT, deta, dphi; rows with pT = 0 are padding.

    Returns:
        (C, 3) array of pT and the transformed coordinates (padding rows keep pT = 0).
    """
    pt, x, y = constituents[:, 0], constituents[:, 1], constituents[:, 2]
    pt = jnp.where(pt > 0, pt, 0.0)
    total = jnp.sum(pt)
    weight = pt / jnp.where(total > 0, total, 1.0)
    x = x - jnp.sum(weight * x)
    y = y - jnp.sum(weight * y)
    sxx, syy, sxy = jnp.sum(weight * x * x), jnp.sum(weight * y * y), jnp.sum(weight * x * y)
    # Angle of the major axis of the 2x2 second-moment matrix.
    angle = 0.5 * jnp.arctan2(2.0 * sxy, sxx - syy)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    x, y = cos * x + sin * y, -sin * x + cos * y
    hardest = jnp.argmax(pt)
    x = jnp.where(x[hardest] < 0, -x, x)
    y = jnp.where(y[hardest] < 0, -y, y)
    return jnp.stack([pt, x, y], axis=-1)


def _pixel_index(constituents: jax.Array, resolution: int) -> tuple[jax.Array, jax.Array]:
    """Flat pixel index (x bin * R + y bin) and pT of each constituent; 0 pT where dropped."""
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"pixelate: resolution must be a positive integer, got {resolution!r}")
    pt, x, y = constituents[..., 0], constituents[..., 1], constituents[..., 2]
    scale = resolution / (2.0 * IMAGE_HALF_WIDTH)
    ix = jnp.floor((x + IMAGE_HALF_WIDTH) * scale).astype(jnp.int32)
    iy = jnp.floor((y + IMAGE_HALF_WIDTH) * scale).astype(jnp.int32)
    # The upper edge belongs to the last bin, as in np.histogram2d.
    ix = jnp.where(x == IMAGE_HALF_WIDTH, resolution - 1, ix)
    iy = jnp.where(y == IMAGE_HALF_WIDTH, resolution - 1, iy)
    inside = (
        (pt > 0)
        & (jnp.abs(x) <= IMAGE_HALF_WIDTH)
        & (jnp.abs(y) <= IMAGE_HALF_WIDTH)
        & (ix >= 0)
        & (ix < resolution)
        & (iy >= 0)
        & (iy < resolution)
    )
    index = jnp.where(inside, ix * resolution + iy, 0)
    return index, jnp.where(inside, pt, 0.0).astype(jnp.float32)


def _normalise(images: jax.Array) -> jax.Array:
    total = jnp.sum(images, axis=(-2, -1), keepdims=True)
    return images / jnp.where(total > 0, total, 1.0)


def pixelate(constituents: jax.Array, resolution: int, normalize: bool = False) -> jax.Array:
    """Sum pT into a (resolution, resolution) grid over [-1, 1]^2 (step 4, no preprocessing).

    Args:
        constituents: (C, 3) array of pT, x, y.
        resolution: pixels per axis (static).
        normalize: divide by the pT sum of the image (an empty image stays zero).

    Returns:
        (resolution, resolution) float32 image; axis 0 is x, axis 1 is y.
    """
    index, pt = _pixel_index(constituents, resolution)
    image = jax.ops.segment_sum(pt, index, num_segments=resolution**2)
    image = image.reshape(resolution, resolution)
    return _normalise(image) if normalize else image


@functools.partial(jax.jit, static_argnames=("resolution", "normalize"))
def jet_image(constituents: jax.Array, resolution: int, normalize: bool = False) -> jax.Array:
    """The preprocessed image of one jet.

    Args:
        constituents: (C, 3) array of pT, deta, dphi relative to any axis.
        resolution: pixels per axis (25, 50, 75 in the paper).
        normalize: divide by the image's pT sum (default: raw pT, as in the paper).

    Returns:
        (resolution, resolution) float32 image.
    """
    return pixelate(preprocess(constituents), resolution, normalize)


def jet_images(
    constituents: jax.Array,
    resolution: int,
    normalize: bool = False,
    channels: tuple[str, ...] = ("pt",),
) -> jax.Array:
    """Jet images for any leading batch shape.

    (..., C, 3) -> (..., R, R) for one channel, (..., R, R, K) for K channels; jittable,
    unchunked. `normalize` applies to "pt" only.
    """
    channels = check_channels(channels)
    batch_shape = constituents.shape[:-2]
    flat = constituents.reshape(-1, *constituents.shape[-2:])
    jets = flat.shape[0]
    index, pt = _pixel_index(jax.vmap(preprocess)(flat), resolution)
    # One flat scatter-add over all jets (offset per jet) is much faster on CPU than a
    # batched scatter.
    index = (index + (jnp.arange(jets) * resolution**2)[:, None]).ravel()
    planes = []
    for channel in channels:
        values = pt if channel == "pt" else (pt > 0).astype(jnp.float32)
        image = jax.ops.segment_sum(values.ravel(), index, num_segments=jets * resolution**2)
        image = image.reshape(*batch_shape, resolution, resolution)
        planes.append(_normalise(image) if normalize and channel == "pt" else image)
    return planes[0] if len(planes) == 1 else jnp.stack(planes, axis=-1)


@functools.partial(jax.jit, static_argnames=("resolution", "normalize", "chunk_size", "channels"))
def event_images(
    constituents: jax.Array,
    resolution: int,
    normalize: bool = False,
    chunk_size: int = 2048,
    channels: tuple[str, ...] = ("pt",),
) -> jax.Array:
    """Images of both jets of every event, computed `chunk_size` events at a time.

    Args:
        constituents: (N, 2, C, 3) array (JetEvents.constituents).
        resolution: pixels per axis.
        normalize: divide each image by its pT sum.
        chunk_size: events per vectorised step (bounds the working memory; same result).
        channels: "pt" and/or "count" (see the module docstring).

    Returns:
        (N, 2, resolution, resolution) float32 images for one channel, (N, 2, R, R, K) for K.
    """
    if constituents.ndim != 4 or constituents.shape[1] != 2 or constituents.shape[3] != 3:
        raise ValueError(
            f"event_images: constituents must have shape (N, 2, C, 3), got {constituents.shape}"
        )
    return jax.lax.map(
        lambda event: jet_images(event, resolution, normalize, channels),
        constituents,
        batch_size=min(chunk_size, max(constituents.shape[0], 1)),
    )
