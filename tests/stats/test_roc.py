"""ROC, AUC, SIC and eps_s at fixed eps_b against brute-force NumPy and SciPy references."""

import numpy as np
import pytest
from scipy import stats

from jaxws.stats.roc import (
    RocCurve,
    area_under_curve,
    auc_of_samples,
    batched_signal_efficiency_and_auc,
    roc_curve,
    signal_efficiency_at,
    significance_improvement,
)

pytestmark = pytest.mark.numerical  # every test here compares numbers (docs/testing.md)


def sample(seed, n=400, separation=1.0, decimals=None, weighted=False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + separation * labels
    if decimals is not None:  # rounding makes ties, within and across classes
        scores = np.round(scores, decimals)
    weights = rng.uniform(0.0, 2.0, n) if weighted else None
    return scores, labels, weights


def brute_force_roc(scores, labels, weights):
    """One point per distinct threshold, each computed from scratch (cut: score >= t)."""
    weights = np.ones_like(scores) if weights is None else weights
    signal, background = labels == 1, labels == 0
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    passed = scores[None, :] >= thresholds[:, None]
    eps_s = (passed * (weights * signal)).sum(axis=1) / weights[signal].sum()
    eps_b = (passed * (weights * background)).sum(axis=1) / weights[background].sum()
    return eps_b, eps_s, thresholds


def brute_force_auc(scores, labels, weights):
    """P(s > b) + P(s = b) / 2 over weighted signal-background pairs."""
    weights = np.ones_like(scores) if weights is None else weights
    signal, background = labels == 1, labels == 0
    difference = scores[signal][:, None] - scores[background][None, :]
    pair_weights = weights[signal][:, None] * weights[background][None, :]
    wins = (difference > 0) + 0.5 * (difference == 0)
    return (wins * pair_weights).sum() / pair_weights.sum()


@pytest.mark.parametrize(
    ("decimals", "weighted"), [(None, False), (1, False), (1, True), (0, True)]
)
def test_roc_curve_matches_brute_force_thresholds(decimals, weighted):
    scores, labels, weights = sample(0, decimals=decimals, weighted=weighted)
    curve = roc_curve(scores, labels, weights)
    eps_b, eps_s, thresholds = brute_force_roc(scores, labels, weights)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    np.testing.assert_allclose(curve.background_efficiency, eps_b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(curve.signal_efficiency, eps_s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        area_under_curve(curve), brute_force_auc(scores, labels, weights), rtol=1e-12
    )


@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_auc_equals_mann_whitney_u(decimals):
    scores, labels, _ = sample(1, n=600, decimals=decimals)
    u = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    expected = u / ((labels == 1).sum() * (labels == 0).sum())
    np.testing.assert_allclose(area_under_curve(roc_curve(scores, labels)), expected, rtol=1e-12)


def test_integer_weights_equal_repeated_events():
    scores, labels, _ = sample(2, n=200, decimals=1)
    counts = np.random.default_rng(3).integers(0, 4, scores.size)
    counts[np.flatnonzero(labels == 1)[0]] = counts[np.flatnonzero(labels == 0)[0]] = 1
    weighted = roc_curve(scores, labels, counts.astype(float))
    repeated = roc_curve(np.repeat(scores, counts), np.repeat(labels, counts))
    # Scores present only with weight 0 add points that repeat their neighbour's values.
    queries = np.linspace(0, 1, 101)
    np.testing.assert_allclose(
        signal_efficiency_at(weighted, queries), signal_efficiency_at(repeated, queries), atol=1e-12
    )
    np.testing.assert_allclose(area_under_curve(weighted), area_under_curve(repeated), rtol=1e-12)


def test_invariant_under_monotone_transform_of_scores():
    scores, labels, weights = sample(4, decimals=2, weighted=True)
    curve = roc_curve(scores, labels, weights)
    for transform in (lambda x: np.exp(x / 3), np.arctan, lambda x: 5 * x**3 - 2):
        other = roc_curve(transform(scores), labels, weights)
        np.testing.assert_allclose(other.background_efficiency, curve.background_efficiency)
        np.testing.assert_allclose(other.signal_efficiency, curve.signal_efficiency)


def test_perfect_and_constant_classifiers():
    labels = np.array([0, 1] * 50)
    perfect = roc_curve(labels + 0.1 * np.arange(100) / 100, labels)
    assert area_under_curve(perfect) == 1.0
    np.testing.assert_array_equal(signal_efficiency_at(perfect, [0.0, 0.3, 1.0]), [1.0, 1.0, 1.0])
    # All scores tied: the only points are (0, 0) and (1, 1), joined by the diagonal.
    constant = roc_curve(np.zeros(100), labels)
    np.testing.assert_array_equal(constant.background_efficiency, [0.0, 1.0])
    assert area_under_curve(constant) == 0.5
    queries = np.array([0.0, 0.01, 0.25, 0.7, 1.0])
    np.testing.assert_allclose(signal_efficiency_at(constant, queries), queries, atol=1e-15)


def test_random_classifier_is_diagonal_within_errors():
    rng = np.random.default_rng(5)
    n_signal, n_background = 20_000, 20_000
    labels = np.concatenate([np.ones(n_signal, int), np.zeros(n_background, int)])
    curve = roc_curve(rng.uniform(size=labels.size), labels)
    # AUC under H0: mean 1/2, sd sqrt((n1 + n0 + 1) / (12 n1 n0)); 4 sd: false alarm 6e-5.
    sd = np.sqrt((n_signal + n_background + 1) / (12 * n_signal * n_background))
    assert abs(area_under_curve(curve) - 0.5) < 4 * sd
    eps_b = np.array([0.01, 0.1, 0.5])
    sd_eps = np.sqrt(eps_b * (1 - eps_b) * (1 / n_signal + 1 / n_background))
    assert np.all(np.abs(signal_efficiency_at(curve, eps_b) - eps_b) < 4 * sd_eps)


def test_signal_efficiency_at_matches_order_statistics():
    # Without ties the ROC path is a staircase: at eps_b in [k / n_b, (k + 1) / n_b) the best
    # cut sits just above the (k + 1)-th highest background score.
    scores, labels, _ = sample(6, n=300)
    background = np.sort(scores[labels == 0])[::-1]
    signal = scores[labels == 1]
    queries = np.random.default_rng(7).uniform(0, 1, 200)
    rank = np.floor(queries * background.size).astype(int)
    expected = (signal[:, None] > background[rank][None, :]).mean(axis=0)
    result = signal_efficiency_at(roc_curve(scores, labels), queries)
    np.testing.assert_allclose(result, expected, atol=1e-12)


def test_signal_efficiency_at_takes_best_point_on_vertical_segments():
    curve = RocCurve(
        background_efficiency=np.array([0.0, 0.0, 0.5, 0.5, 1.0]),
        signal_efficiency=np.array([0.0, 0.2, 0.4, 0.9, 1.0]),
        thresholds=np.array([np.inf, 4.0, 3.0, 2.0, 1.0]),
    )
    result = signal_efficiency_at(curve, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(result, [0.2, 0.3, 0.9, 0.95, 1.0], atol=1e-15)


def test_significance_improvement():
    scores, labels, weights = sample(8, decimals=1, weighted=True)
    curve = roc_curve(scores, labels, weights)
    sic = significance_improvement(curve, min_background_efficiency=0.05)
    keep = curve.background_efficiency > 0.05
    np.testing.assert_allclose(
        sic.sic, curve.signal_efficiency[keep] / np.sqrt(curve.background_efficiency[keep])
    )
    assert np.all(np.isfinite(significance_improvement(curve).sic))
    assert significance_improvement(curve).sic[-1] == 1.0  # no cut: eps_s = eps_b = 1


def test_batched_matches_numpy_per_experiment_with_padding():
    eps_b = np.array([0.0, 0.001, 0.01, 0.1, 0.3, 1.0])
    rng = np.random.default_rng(9)
    experiments = [sample(10 + i, n=300 - 40 * i, decimals=1, weighted=True) for i in range(4)]
    n_max = 300
    scores = rng.normal(size=(4, n_max))  # padding scores are arbitrary: weight 0
    labels = rng.integers(0, 2, (4, n_max))
    weights = np.zeros((4, n_max))
    for i, (s, y, w) in enumerate(experiments):
        scores[i, : s.size], labels[i, : s.size], weights[i, : s.size] = s, y, w
    result, auc = batched_signal_efficiency_and_auc(scores, labels, weights, eps_b)
    assert result.shape == (4, eps_b.size)
    assert auc.shape == (4,)
    for i, (s, y, w) in enumerate(experiments):
        curve = roc_curve(s, y, w)
        np.testing.assert_allclose(result[i], signal_efficiency_at(curve, eps_b), atol=2e-6)
        np.testing.assert_allclose(auc[i], area_under_curve(curve), atol=2e-6)


def test_bad_inputs_are_refused():
    scores, labels, _ = sample(11, n=20)
    with pytest.raises(ValueError, match="labels"):
        roc_curve(scores, labels + 1)
    with pytest.raises(ValueError, match="weights"):
        roc_curve(scores, labels, -np.ones(20))
    with pytest.raises(ValueError, match="signal class"):
        roc_curve(scores, np.zeros(20, int))
    with pytest.raises(ValueError, match="finite"):
        roc_curve(np.full(20, np.nan), labels)
    with pytest.raises(ValueError, match="1-d"):
        roc_curve(scores[None], labels[None])
    with pytest.raises(ValueError, match="background_efficiencies"):
        signal_efficiency_at(roc_curve(scores, labels), [1.5])
    with pytest.raises(ValueError, match="shape"):
        batched_signal_efficiency_and_auc(scores, labels, None, [0.1])


def test_auc_of_samples_is_mann_whitney_with_ties():
    rng = np.random.default_rng(7)
    signal = rng.integers(0, 20, 300).astype(float) + 2  # integer scores: many ties
    background = rng.integers(0, 20, 400).astype(float)
    u = stats.mannwhitneyu(signal, background, alternative="two-sided").statistic
    np.testing.assert_allclose(auc_of_samples(signal, background), u / (300 * 400), rtol=1e-12)
    assert auc_of_samples(background, background) == 0.5
