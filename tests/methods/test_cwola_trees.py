"""`weak_supervision(classifier="trees")`: boosted-tree CWoLa against the known optimum."""

import numpy as np
import pytest
from gaussian_mixtures import labelled_test, mixture
from margins import TRAINED, member_auc_se, record
from scipy import stats
from threadpoolctl import threadpool_limits

from jaxws.config import ConfigError
from jaxws.methods.cwola import TreeScorer, weak_supervision
from jaxws.stats.roc import area_under_curve, roc_curve


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """scikit-learn's OpenMP threads crawl when the suite's workers oversubscribe the cores."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.mark.statistical
def test_tree_ensemble_approaches_the_optimal_classifier():
    """Mixtures with signal fractions 0.35 and 0.1 of S = N(mu, 1), B = N(0, 1) in 4 dims.

    The Neyman-Pearson optimal S/B classifier ranks by mu . x (AUC Phi(|mu|/sqrt 2), 0.834 on
    this test set). The tree ensemble (small trees, `max_leaf_nodes=7`) never sees truth
    labels; its S/B AUC on a pure test set of 5000 + 5000 must come within 0.02 of the
    optimal ranking's AUC on the same test set (measured gap 0.010; the optimum's own
    sampling error is ~0.004, and a classifier that used only the strongest feature would
    sit 0.034 below it, so the margin tells both features were learned), and its scores must
    rank test events like the likelihood ratio (Spearman > 0.9). With scikit-learn's
    31-leaf trees the gap here is 0.027: axis-aligned steps on an oblique boundary, fitted
    to the noisy mixture labels of 24k events.
    """
    rng = np.random.default_rng(0)
    mixed_a, mixed_b = mixture(rng, 12_000, 0.35), mixture(rng, 12_000, 0.10)
    scorer = weak_supervision(
        mixed_a,
        mixed_b,
        classifier="trees",
        n_members=3,
        seed=1,
        tree_options={"max_leaf_nodes": 7},
    )
    assert isinstance(scorer, TreeScorer)
    assert scorer.not_converged == ["", "", ""]  # early stopping triggered for every member
    toy = labelled_test(rng)
    test, labels, optimal, optimal_auc = toy.events, toy.labels, toy.optimal, toy.optimal_auc
    tree_auc = area_under_curve(roc_curve(scorer(test), labels))
    se = member_auc_se(scorer.member_scores(test), labels, same_events=True)
    seeds = "3 member seeds, / sqrt(3)"
    low, high = optimal_auc - 0.02, optimal_auc + 0.005
    record("tree AUC > optimal - 0.02", tree_auc, low, se, TRAINED, se_from=seeds)
    record("tree AUC <= optimal + 0.005", tree_auc, high, se, TRAINED, False, seeds)
    assert low < tree_auc <= high
    rho = stats.spearmanr(scorer(test), optimal).statistic
    se_z = 1 / np.sqrt(len(test) - 3)  # Fisher's z = atanh(rho)
    record(
        "atanh Spearman > atanh 0.9",
        np.arctanh(rho),
        np.arctanh(0.9),
        se_z,
        TRAINED,
        se_from="test sample",
    )
    assert rho > 0.9
    # the ensemble score is the mean member probability
    members = scorer.member_scores(test)
    assert members.shape == (3, len(test))
    np.testing.assert_allclose(scorer(test), (1 / (1 + np.exp(-members))).mean(0), rtol=1e-5)


def test_tree_ensemble_same_seed_same_scores():
    rng = np.random.default_rng(5)
    a, b = mixture(rng, 2000, 0.4), mixture(rng, 1500, 0.0)
    options = {"max_iter": 30}
    first = weak_supervision(a, b, classifier="trees", n_members=2, seed=3, tree_options=options)
    second = weak_supervision(a, b, classifier="trees", n_members=2, seed=3, tree_options=options)
    other = weak_supervision(a, b, classifier="trees", n_members=2, seed=4, tree_options=options)
    x = mixture(rng, 500, 0.5)
    np.testing.assert_array_equal(first.member_scores(x), second.member_scores(x))
    assert not np.array_equal(first(x), other(x))
    # members differ (own split and seed)
    assert not np.array_equal(*first.member_scores(x))


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"classifier": "forest"}, ["classifier", "forest"]),
        ({"classifier": "trees", "chunk_size": 2}, ["chunk_size"]),
        ({"classifier": "trees", "checkpoint_dir": "x", "config": 1}, ["checkpoint_dir", "config"]),
        ({"tree_options": {"max_iter": 5}}, ["tree_options"]),
        ({"classifier": "trees", "tree_options": {"depth": 3}}, ["depth"]),
        ({"classifier": "trees", "tree_options": {"max_iter": 0}}, ["tree_options.max_iter"]),
        (
            {"classifier": "trees", "tree_options": {"learning_rate": float("nan")}},
            ["tree_options.learning_rate"],
        ),
        ({"classifier": "trees", "tree_options": [1]}, ["tree_options"]),
        ({"classifier": "trees", "n_members": 0}, ["n_members"]),
    ],
)
def test_tree_ensemble_refuses_bad_arguments_naming_them(kwargs, names):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    with pytest.raises(ConfigError) as error:
        weak_supervision(a, b, **kwargs)
    for name in names:
        assert name in str(error.value), (name, str(error.value))


def test_tree_ensemble_refuses_images_and_mismatched_test_features():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="feature vectors"):
        weak_supervision(
            rng.normal(size=(50, 2, 4, 4)), rng.normal(size=(50, 2, 4, 4)), classifier="trees"
        )
    with pytest.warns(UserWarning, match="1 of 1 members did not converge"):
        scorer = weak_supervision(
            rng.normal(size=(80, 3)),
            rng.normal(size=(80, 3)),
            classifier="trees",
            n_members=1,
            tree_options={"max_iter": 5, "n_iter_no_change": 1000},
        )
    assert scorer.not_converged[0]
    assert scorer.n_iter == [5]
    with pytest.raises(ConfigError, match="feature shape"):
        scorer(rng.normal(size=(10, 4)))
