"""Jet images: the paper's preprocessing invariances and pixelisation against np.histogram2d."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxws.data import images
from jaxws.data.images import event_images, jet_image, jet_images

preprocess = jax.jit(images.preprocess)
pixelate = jax.jit(images.pixelate, static_argnums=1)

C = 40


def _random_jet(rng, n=30, spread=(0.25, 0.08), offset=(0.0, 0.0)):
    """An elongated jet of n constituents, padded to C with pT = 0 and garbage coordinates."""
    angle = rng.uniform(0, np.pi)
    local = rng.normal(size=(n, 2)) * np.array(spread)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = local @ rotation.T + np.array(offset)
    pt = np.sort(rng.exponential(50.0, n))[::-1] + 1.0
    jet = np.zeros((C, 3), np.float32)
    jet[:n, 0], jet[:n, 1:] = pt, xy
    jet[n:, 1:] = rng.uniform(-5, 5, size=(C - n, 2))  # padding coordinates must not matter
    return jet


def _rotate_about(jet, angle, centre):
    out = jet.copy()
    c, s = np.cos(angle), np.sin(angle)
    x, y = jet[:, 1] - centre[0], jet[:, 2] - centre[1]
    out[:, 1], out[:, 2] = c * x - s * y + centre[0], s * x + c * y + centre[1]
    return out


def _histogram(jet, resolution):
    alive = jet[:, 0] > 0
    hist, _, _ = np.histogram2d(
        jet[alive, 1].astype(np.float64),
        jet[alive, 2].astype(np.float64),
        bins=resolution,
        range=[[-1, 1], [-1, 1]],
        weights=jet[alive, 0].astype(np.float64),
    )
    return hist


@pytest.mark.parametrize("resolution", [25, 50, 75])
def test_pixelate_matches_numpy_histogram2d(resolution):
    rng = np.random.default_rng(resolution)
    jet = _random_jet(rng, n=C - 5, spread=(0.7, 0.5))  # many constituents outside [-1, 1]
    jet[0, 1:] = (1.0, -1.0)  # the closed upper edge and the lower edge
    jet[1, 1:] = (1.2, 0.0)  # outside: dropped
    image = np.asarray(pixelate(jnp.asarray(jet), resolution))
    np.testing.assert_allclose(image, _histogram(jet, resolution), rtol=1e-5, atol=1e-3)


def test_preprocessing_is_invariant_under_translation_rotation_and_reflection():
    rng = np.random.default_rng(0)
    for _ in range(5):
        jet = _random_jet(rng)
        reference = np.asarray(preprocess(jnp.asarray(jet)))
        centre = rng.uniform(-0.3, 0.3, 2)
        moved = _rotate_about(jet, rng.uniform(0, 2 * np.pi), centre)
        moved[:, 1:] += rng.uniform(-0.5, 0.5, 2)
        reflected = jet.copy()
        reflected[:, 2] *= -1
        for variant in (moved, reflected):
            out = np.asarray(preprocess(jnp.asarray(variant)))
            alive = jet[:, 0] > 0
            np.testing.assert_allclose(out[alive], reference[alive], atol=2e-5)


def test_images_of_rotated_and_translated_jets_agree_up_to_pixel_edges():
    rng = np.random.default_rng(1)
    jet = _random_jet(rng)
    moved = _rotate_about(jet, 1.1, (0.2, -0.1))
    moved[:, 1:] += (0.3, -0.2)
    a = np.asarray(jet_image(jnp.asarray(jet), 25))
    b = np.asarray(jet_image(jnp.asarray(moved), 25))
    # At most a constituent or two may cross a pixel edge through float rounding.
    assert np.abs(a - b).sum() <= 0.02 * a.sum()


def test_principal_axis_is_horizontal_and_hardest_in_upper_right():
    rng = np.random.default_rng(2)
    for _ in range(10):
        jet = _random_jet(rng, offset=rng.uniform(-0.2, 0.2, 2))
        out = np.asarray(preprocess(jnp.asarray(jet)))
        w = out[:, 0] / out[:, 0].sum()
        x, y = out[:, 1], out[:, 2]
        assert abs(np.sum(w * x)) < 1e-5
        assert abs(np.sum(w * y)) < 1e-5
        sxx, syy, sxy = np.sum(w * x * x), np.sum(w * y * y), np.sum(w * x * y)
        assert abs(sxy) < 1e-5 * (sxx + syy) + 1e-7
        assert sxx >= syy
        hardest = np.argmax(out[:, 0])
        assert x[hardest] >= 0
        assert y[hardest] >= 0
        # The same on the image: pixel-centre moments and the hardest constituent's pixel.
        image = np.asarray(jet_image(jnp.asarray(jet), 50))
        centres = (np.arange(50) + 0.5) / 25 - 1
        p = image / image.sum()
        mx, my = np.sum(p.sum(1) * centres), np.sum(p.sum(0) * centres)
        vx = np.sum(p.sum(1) * (centres - mx) ** 2)
        vy = np.sum(p.sum(0) * (centres - my) ** 2)
        cxy = np.sum(p * np.outer(centres - mx, centres - my))
        assert vx >= vy
        assert abs(cxy) < 0.05 * (vx + vy)
        i, j = np.floor((out[hardest, 1:] + 1) * 25).astype(int)
        assert i >= 25
        assert j >= 25
        assert image[i, j] >= out[hardest, 0] - 1e-3


def test_pt_inside_window_is_conserved_and_normalisation():
    rng = np.random.default_rng(3)
    jet = _random_jet(rng, spread=(0.8, 0.3))
    out = np.asarray(preprocess(jnp.asarray(jet)))
    inside = (out[:, 0] > 0) & (np.abs(out[:, 1]) <= 1) & (np.abs(out[:, 2]) <= 1)
    assert inside.sum() < (out[:, 0] > 0).sum()  # some constituents really are dropped
    image = np.asarray(jet_image(jnp.asarray(jet), 25))
    np.testing.assert_allclose(image.sum(), out[inside, 0].sum(), rtol=1e-5)
    normalised = np.asarray(jet_image(jnp.asarray(jet), 25, normalize=True))
    np.testing.assert_allclose(normalised, image / image.sum(), rtol=1e-5, atol=1e-7)
    empty = np.asarray(jet_image(jnp.zeros((C, 3)), 25, normalize=True))
    assert np.all(empty == 0)


def test_event_images_batched_and_chunked_equal_single_jets():
    rng = np.random.default_rng(4)
    events = np.stack([[_random_jet(rng), _random_jet(rng)] for _ in range(7)])
    expected = np.stack(
        [[np.asarray(jet_image(jnp.asarray(jet), 25)) for jet in event] for event in events]
    )
    for chunk_size in (3,):  # 7 events in chunks of 3: the remainder path
        images = np.asarray(event_images(jnp.asarray(events), 25, chunk_size=chunk_size))
        assert images.shape == (7, 2, 25, 25)
        assert images.dtype == np.float32
        np.testing.assert_allclose(images, expected, rtol=1e-6, atol=1e-4)
    jitted = jax.jit(lambda c: jet_images(c, 25))(jnp.asarray(events))
    np.testing.assert_allclose(np.asarray(jitted), expected, rtol=1e-6, atol=1e-4)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="constituents must have shape"):
        event_images(jnp.zeros((4, 3, 10, 3)), 25)
    with pytest.raises(ValueError, match="resolution"):
        jet_image(jnp.zeros((10, 3)), 0)


def test_count_channel_is_the_constituent_histogram_and_pt_channel_is_unchanged():
    rng = np.random.default_rng(11)
    jets = np.stack([_random_jet(rng, n) for n in (5, 17, 30)])
    both = np.asarray(jet_images(jnp.asarray(jets), 10, normalize=True, channels=("pt", "count")))
    assert both.shape == (3, 10, 10, 2)
    pt_only = np.asarray(jet_images(jnp.asarray(jets), 10, normalize=True))
    np.testing.assert_array_equal(both[..., 0], pt_only)
    for jet, image in zip(jets, both[..., 1], strict=True):
        moved = np.asarray(preprocess(jnp.asarray(jet)))
        real = moved[:, 0] > 0
        expected, _, _ = np.histogram2d(
            moved[real, 1], moved[real, 2], bins=10, range=[[-1, 1], [-1, 1]]
        )
        np.testing.assert_array_equal(image, expected)
    # The count channel is never normalised: it sums to the multiplicity inside the window.
    np.testing.assert_array_equal(both[..., 1].sum(axis=(1, 2)), [5, 17, 30])


def test_event_images_with_channels_and_bad_channel_names():
    rng = np.random.default_rng(12)
    events = np.stack([np.stack([_random_jet(rng), _random_jet(rng, 12)]) for _ in range(4)])
    out = event_images(jnp.asarray(events), 6, channels=("count", "pt"))
    assert out.shape == (4, 2, 6, 6, 2)
    np.testing.assert_array_equal(np.asarray(out[..., 0]).sum(axis=(2, 3)), [[30, 12]] * 4)
    for bad in (("pt", "pt"), ("mass",), ()):
        with pytest.raises(ValueError, match="image channels"):
            jet_images(jnp.asarray(events[0]), 6, channels=bad)


def test_study_images_refuse_events_without_constituents():
    from types import SimpleNamespace

    from jaxws.config import ConfigError
    from jaxws.methods.injection_study import event_pool_images

    rng = np.random.default_rng(13)
    events = np.stack([np.stack([_random_jet(rng), _random_jet(rng, 12)]) for _ in range(5)])
    events[3, 1, :, 0] = 0.0  # event 3's second jet has no constituent
    config = SimpleNamespace(resolution=6, normalize_images=True, channels=("pt",))
    with pytest.raises(ConfigError, match=r"1 of 5 events .*first event index 3"):
        event_pool_images(SimpleNamespace(constituents=events), config)
    with pytest.raises(ConfigError, match="C >= 1"):
        event_pool_images(SimpleNamespace(constituents=events[:, :, :0]), config)
