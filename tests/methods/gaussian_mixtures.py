"""The 4-D Gaussian CWoLa toy shared by tests/methods/test_cwola.py and test_cwola_trees.py.

Signal S = N(mu, 1), background B = N(0, 1); the Neyman-Pearson optimal S/B ranking is
mu . x, with AUC Phi(|mu| / sqrt 2).
"""

from dataclasses import dataclass

import numpy as np

from jaxws.stats.roc import area_under_curve, roc_curve

SIGNAL_MEAN = np.array([1.2, -0.6, 0.0, 0.0])


def mixture(rng: np.random.Generator, n: int, signal_fraction: float) -> np.ndarray:
    """`n` events, each signal with probability `signal_fraction`."""
    is_signal = rng.random(n) < signal_fraction
    x = rng.normal(size=(n, 4))
    x[is_signal] += SIGNAL_MEAN
    return x.astype(np.float32)


@dataclass
class LabelledTest:
    """Pure signal then pure background test events, their labels and the optimal ranking."""

    events: np.ndarray
    labels: np.ndarray
    optimal: np.ndarray
    optimal_auc: float


def labelled_test(rng: np.random.Generator, n: int = 5000) -> LabelledTest:
    """`n` signal and `n` background events (signal drawn first, as the tests always did)."""
    signal = rng.normal(size=(n, 4)) + SIGNAL_MEAN
    background = rng.normal(size=(n, 4))
    events = np.concatenate([signal, background]).astype(np.float32)
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    optimal = events @ SIGNAL_MEAN
    return LabelledTest(events, labels, optimal, area_under_curve(roc_curve(optimal, labels)))
