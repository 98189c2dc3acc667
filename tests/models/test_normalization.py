"""Input normalisation: the stored statistics are the training data's at every epoch.

The defect this guards against: a BatchNorm moving average (momentum 0.99, starting at mean 0,
variance 1) had not settled when early stopping kept an early epoch, so the returned model
normalised its input with a variance 150 times too large.
"""

import jax
import numpy as np

from jaxws.models.cnn import SLIM_CNN, JetCNN
from jaxws.models.mlp import MLP
from jaxws.models.normalization import InputNorm
from jaxws.train import Hparams, MemberData, TrainConfig, fit


def _normalised_images(n, resolution=8, seed=0):
    """Images whose pixels have a small variance (like pT-normalised jet images), two classes."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.5).astype(np.float32)
    images = rng.gamma(0.3, 1.0, size=(n, 2, resolution, resolution)).astype(np.float32)
    images[labels == 1, :, : resolution // 2] *= 1.5
    images /= images.sum(axis=(-2, -1), keepdims=True)
    return images, labels


def _weighted_moments(pixels):
    return pixels.mean(), pixels.var()


def test_stored_statistics_equal_training_data_after_an_early_best_epoch():
    images, labels = _normalised_images(1200)
    train, val = np.arange(1000), np.arange(1000, 1200)
    member = MemberData.from_arrays(train, labels[train], val, labels[val])
    # Two epochs of 8 steps: a momentum-0.99 average would still be 85% its initial value.
    config = TrainConfig(batch_size=125, max_epochs=2, patience=1)
    model = JetCNN(**SLIM_CNN)
    result = fit(jax.random.key(0), model, images, member, Hparams(1e-3), config)
    stats = result.variables["batch_stats"]["features"]
    for jet in range(2):
        pixels = images[train, jet]
        mean, variance = _weighted_moments(pixels)
        stored = stats[f"input_norm_{jet}"]
        stored_mean = float(stored["mean"][0])
        stored_variance = float(stored["second_moment"][0] - stored["mean"][0] ** 2)
        # Training-set moments to 0.5 %: every batch is a full batch of distinct events.
        np.testing.assert_allclose(stored_mean, mean, rtol=5e-3)
        np.testing.assert_allclose(stored_variance, variance, rtol=5e-3)


def test_input_norm_statistics_are_cumulative_batch_moments():
    rng = np.random.default_rng(3)
    batches = [rng.normal(2.0, 3.0, size=(50, 4)).astype(np.float32) for _ in range(6)]
    norm = InputNorm(use_running_average=False)
    variables = norm.init(jax.random.key(0), batches[0])
    state = variables["batch_stats"]
    for batch in batches:
        _, updated = norm.apply({**variables, "batch_stats": state}, batch, mutable=["batch_stats"])
        state = updated["batch_stats"]
    everything = np.concatenate(batches)
    np.testing.assert_allclose(state["mean"], everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        state["second_moment"] - state["mean"] ** 2, everything.var(axis=0), rtol=1e-4
    )
    assert float(state["count"]) == 6
    # Inference mode standardises with those statistics (scale 1, offset 0 at init).
    frozen = InputNorm(use_running_average=True)
    out = frozen.apply({**variables, "batch_stats": state}, everything)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    expected_std = np.sqrt(everything.var(axis=0) / (everything.var(axis=0) + 1e-3))
    np.testing.assert_allclose(out.std(axis=0), expected_std, rtol=1e-4)


def test_mlp_input_statistics_are_exact_after_one_epoch():
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 0.05, size=(600, 3)).astype(np.float32)
    labels = (rng.random(600) < 0.5).astype(np.float32)
    member = MemberData.from_arrays(np.arange(500), labels[:500], np.arange(500, 600), labels[500:])
    config = TrainConfig(batch_size=100, max_epochs=1, patience=1)
    result = fit(jax.random.key(1), MLP((8,), (4,)), x, member, Hparams(1e-3), config)
    stored = result.variables["batch_stats"]["features"]["input_norm"]
    np.testing.assert_allclose(stored["mean"], x[:500].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        stored["second_moment"] - stored["mean"] ** 2, x[:500].var(axis=0), rtol=2e-2
    )
