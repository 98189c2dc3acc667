"""CWoLa hunting: layout, k-fold bookkeeping, toys, sculpting flag, and an end-to-end find."""

import jax
import numpy as np
import pytest
from margins import SAMPLING, record

from jaxws.methods.hunt import (
    HuntLayout,
    assign_folds,
    hunt,
    plan_folds,
    search,
    truth_significance,
)
from jaxws.methods.hunt.search import draw_toys
from jaxws.models.mlp import MLP
from jaxws.train import TrainConfig

LAYOUT = HuntLayout((3500.0, 7000.0), 0.04, signal_region_bins=2, sideband_bins=2, step_bins=2)


def dijet_mjj(rng, n, low=3500.0, high=7000.0):
    """Background mjj from the dijet density (p1 = 8, p2 = 3.2) by inverse CDF in float64."""
    grid = np.linspace(low, high, 100001)
    x = grid / 13000.0
    density = (1 - x) ** 8 / x**3.2
    cdf = np.concatenate([[0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return np.interp(rng.random(n) * cdf[-1], cdf, grid)


def toy_hunt_events(n_b, n_s, peak):
    """Dijet background and a 100 GeV-wide resonance at `peak`; 2-d Gaussian features, the
    signal's shifted by 2 sigma (seed 6)."""
    rng = np.random.default_rng(6)
    mjj = np.r_[dijet_mjj(rng, n_b), rng.normal(peak, 100.0, n_s)]
    labels = np.r_[np.zeros(n_b), np.ones(n_s)].astype(int)
    features = rng.normal(size=(n_b + n_s, 2)).astype(np.float32)
    features[labels == 1] += 2.0
    return mjj, labels, features


def test_layout_bins_and_windows():
    edges = LAYOUT.edges
    np.testing.assert_allclose(edges[1:-1] / edges[:-2], 1.04)
    assert edges[0] == 3500.0
    assert edges[-1] == 7000.0
    assert LAYOUT.n_windows == (LAYOUT.n_bins - 6) // 2 + 1
    mjj = np.array([3500.0, edges[2] + 1.0, edges[5] - 1.0, 6999.0, 7000.0])
    regions = LAYOUT.regions(mjj)
    # window 0: bins 0-1 SB, 2-3 SR, 4-5 SB
    np.testing.assert_array_equal(regions[0], [0, 1, 0, -1, -1])
    assert regions[:, -1].max() == -1  # 7000 is outside the last bin
    with pytest.raises(ValueError, match="no window"):
        HuntLayout((3500.0, 3600.0), 0.02)


def test_every_event_is_scored_by_models_that_never_saw_it():
    rng = np.random.default_rng(0)
    mjj = dijet_mjj(rng, 3000)
    regions = LAYOUT.regions(mjj)
    folds = assign_folds(len(mjj), 5, seed=1)
    assert np.ptp(np.bincount(folds)) <= 1
    plan = plan_folds(regions, folds, 5, n_seeds=2, seed=2)
    m = plan.members
    times_scored = np.zeros(regions.shape, int)
    for e in range(plan.window.size):
        seen = np.union1d(
            m.train_index[e][m.train_weight[e] > 0], m.val_index[e][m.val_weight[e] > 0]
        )
        scored = plan.score_index[e][plan.score_mask[e]]
        assert np.intersect1d(seen, scored).size == 0
        assert np.all(folds[seen] != plan.fold[e])
        assert np.all(folds[scored] == plan.fold[e])
        assert np.all(regions[plan.window[e], seen] >= 0)
        # training labels: SR = 1, SB = 0; classes balanced in weight
        train = m.train_index[e][m.train_weight[e] > 0]
        labels = m.train_label[e][m.train_weight[e] > 0]
        np.testing.assert_array_equal(labels, regions[plan.window[e], train] == 1)
        weights = m.train_weight[e][m.train_weight[e] > 0]
        np.testing.assert_allclose(
            weights[labels == 1].sum(), weights[labels == 0].sum(), rtol=1e-5
        )
        np.add.at(times_scored[plan.window[e]], scored, 1)
    # each window event is scored by exactly n_seeds members (its fold's), others never
    np.testing.assert_array_equal(times_scored, np.where(regions >= 0, 2, 0))


@pytest.mark.statistical
def test_toys_are_nested_and_follow_the_fit():
    mean = np.array([[[100.0, 80.0], [10.0, 8.0], [1.0, 0.4]]])  # 1 window, 3 eff, 2 bins
    toys = draw_toys(mean, (1.0, 0.1, 0.01), 4000, seed=0)
    assert np.all(toys[:, :, 1] <= toys[:, :, 0])
    assert np.all(toys[:, :, 2] <= toys[:, :, 1])
    # mean within 4 standard errors (Poisson variance) of the fitted expectation
    se = np.sqrt(mean / 4000)
    worst = np.max(np.abs(toys.mean(0) - mean) / se)
    record("|toy mean - fit| < 4 SE, worst of 6", worst, 4.0, 1.0, SAMPLING, above=False)
    assert np.all(np.abs(toys.mean(0) - mean) < 4 * se)


def test_search_on_counts_finds_a_bump():
    rng = np.random.default_rng(4)
    mjj = dijet_mjj(rng, 200000)
    w_signal = 6  # inject at the SR of window 6
    _, sr_first, sr_end, _ = LAYOUT.window(w_signal)
    peak = np.sqrt(LAYOUT.edges[sr_first] * LAYOUT.edges[sr_end])
    bump = rng.normal(peak, 0.02 * peak, 1500)
    counts = np.stack(
        [
            np.histogram(np.r_[mjj, bump], LAYOUT.edges[w * 2 : w * 2 + 7])[0]
            for w in range(LAYOUT.n_windows)
        ]
    )[:, None, :].astype(float)
    result = search(LAYOUT, counts, (1.0,), n_toys=100, seed=5)
    assert int(np.argmax(result.tests["z"][:, 0])) == w_signal
    assert result.max_z > 5
    assert result.global_p_value < 1 / 100
    assert not result.sculpting[w_signal, 0]


def test_sculpted_spectrum_is_flagged():
    """Low sideband scaled by 1.5 (a selection that depends on mjj): the sideband fit's
    goodness of fit fails where the statistics resolve it (the 5 lowest windows, 1.3e4 to
    1.2e5 events each); the unsculpted spectrum passes everywhere at this seed."""
    layout = HuntLayout((3500.0, 7000.0), 0.02, 4, 4, 4)
    mjj = dijet_mjj(np.random.default_rng(4), 200000)
    counts = np.stack(
        [np.histogram(mjj, layout.edges[w * 4 : w * 4 + 13])[0] for w in range(layout.n_windows)]
    )[:, None, :].astype(float)
    assert not search(layout, counts, (1.0,), n_toys=10).sculpting.any()
    counts[:, :, :4] = np.round(1.5 * counts[:, :, :4])
    assert search(layout, counts, (1.0,), n_toys=10).sculpting[:5].all()


def test_hunt_finds_an_injected_signal_in_the_right_window():
    """End to end on toy features: 2-d Gaussian background, signal shifted by 2 sigma."""
    n_b, n_s, peak = 20000, 250, 5000.0
    mjj, labels, features = toy_hunt_events(n_b, n_s, peak)
    layout = HuntLayout((3500.0, 7000.0), 0.04, 2, 2, 2)  # 7 windows, SRs side by side
    out = hunt(
        jax.random.key(0),
        features,
        mjj,
        layout,
        model=MLP(feature_widths=(16,), head_widths=(), standardise=True),
        train_config=TrainConfig(batch_size=256, max_epochs=12, patience=3),
        learning_rate=3e-3,
        k_folds=3,
        efficiencies=(1.0, 0.1),
        n_toys=200,
    )
    inside = layout.regions(mjj) >= 0
    assert np.all(np.isfinite(out.scores[inside]))
    assert np.all(np.isnan(out.scores[~inside]))
    z = out.result.tests["z"]
    best = int(np.argmax(z[:, 1]))
    _, sr_first, sr_end, _ = layout.window(best)
    assert layout.edges[sr_first] <= peak < layout.edges[sr_end] + 0.04 * peak
    assert z[best, 1] > z[best, 0] + 1.5  # the selection raises the significance
    truth = truth_significance(
        layout, mjj, out.scores, labels, out.thresholds, out.result.tests["background_uncertainty"]
    )
    assert truth["signal"][best, 1] > 0.5 * truth["signal"][best, 0]


def test_boosted_trees_train_on_other_folds_and_find_the_signal(monkeypatch):
    """`method.classifier=trees`: every member's trees see (fit and early stopping) only its
    window's events outside its fold, and the k-fold scores find the bump of
    `test_hunt_finds_an_injected_signal_in_the_right_window`'s toy (fewer windows here)."""
    import sklearn.ensemble

    from jaxws.methods.hunt.classifiers import tree_member_scores

    n_b, n_s, peak = 20000, 250, 5000.0
    mjj, _, features = toy_hunt_events(n_b, n_s, peak)
    row = {tuple(r): i for i, r in enumerate(features)}  # continuous features: rows are unique
    seen = []

    class Recording(sklearn.ensemble.HistGradientBoostingClassifier):
        def fit(self, X, y, sample_weight=None, **kwargs):
            rows = [row[tuple(r)] for r in np.r_[X, kwargs["X_val"]]]
            seen.append(np.asarray(rows))
            return super().fit(X, y, sample_weight, **kwargs)

    monkeypatch.setattr(sklearn.ensemble, "HistGradientBoostingClassifier", Recording)
    layout = HuntLayout((3500.0, 7000.0), 0.04, 2, 2, 2)
    member_scores, not_converged = tree_member_scores({"max_leaf_nodes": 8}, seed=0)
    out = hunt(
        jax.random.key(0),
        features,
        mjj,
        layout,
        member_scores=member_scores,
        k_folds=3,
        efficiencies=(1.0, 0.1),
        n_toys=50,
    )
    plan = out.plan
    assert len(seen) == plan.window.size
    regions = layout.regions(mjj)
    folds = assign_folds(len(mjj), 3, 0)
    for e, rows in enumerate(seen):
        assert np.all(folds[rows] != plan.fold[e])
        assert np.all(regions[plan.window[e], rows] >= 0)
        assert np.intersect1d(rows, plan.score_index[e][plan.score_mask[e]]).size == 0
    assert not not_converged
    z = out.result.tests["z"]
    best = int(np.argmax(z[:, 1]))
    _, sr_first, sr_end, _ = layout.window(best)
    assert layout.edges[sr_first] <= peak < layout.edges[sr_end] + 0.04 * peak
    assert z[best, 1] > z[best, 0] + 1.5


def _tilt_runs(rng, n_runs, slope, n_events=8000):
    """`sideband_tilt` of the selection of scores that depend on mjj by `slope` (0: not)."""
    from jaxws.methods.hunt.experiment import sideband_tilt
    from jaxws.methods.hunt.search import selected_spectra

    efficiencies = (1.0, 0.1, 0.02)
    runs = []
    for _ in range(n_runs):
        mjj = dijet_mjj(rng, n_events)
        scores = rng.random(n_events) + slope * np.log(mjj / 3500.0)
        counts, _ = selected_spectra(
            LAYOUT, mjj, np.tile(scores, (LAYOUT.n_windows, 1)), efficiencies
        )
        runs.append(sideband_tilt(LAYOUT, efficiencies, counts))
    return runs


@pytest.mark.statistical
def test_sideband_tilt_z_is_standard_normal_without_mjj_dependence_and_flags_a_tilt():
    """Scores independent of mjj: the tilt's z (a hypergeometric test per efficiency, on
    windows that share no bin) is standard normal, and the Bonferroni flag is raised in at
    most about 1 % of pseudo-experiments; scores that rise with mjj are flagged."""
    rng = np.random.default_rng(21)
    runs = _tilt_runs(rng, 300, 0.0)
    for eps in ("0.1", "0.02"):
        z = np.array([run[f"sideband_tilt_z_eff{eps}"] for run in runs])
        # z is the signed z of largest |z| over 3 sets of windows: not unit normal (each
        # set's z is: mean 0.00, sd 1.00, P(|z| > 3.14) 0.0018 against 0.0017 over 2000 runs,
        # flag rate 1.1 +- 0.2 %), but symmetric: its mean is checked, and the flag rate.
        se = z.std() / np.sqrt(z.size)
        record(f"|mean z| < 4 SE, eps {eps}", abs(z.mean()), 4 * se, se, SAMPLING, above=False)
        assert abs(z.mean()) < 4 * se
    flags = sum(run["selection_depends_on_mjj"] for run in runs)
    # 1 % family-wise at most (Bonferroni): 3 expected of 300; 9 or more has binomial
    # probability 0.004 at 1 %.
    record("flags in 300 null runs < 9", flags, 9, np.sqrt(300 * 0.01 * 0.99), SAMPLING, False)
    assert flags < 9
    # A selection that prefers high mjj is flagged: scores shifted by 0.5 per e-fold of mjj
    # (about 0.06 between a window's sidebands against a spread of 1; pass ratio upper /
    # lower about 2.0 at 10 %, sideband_tilt_eff0.1; smallest z of 20 runs about 6.5 against
    # the threshold 3.14, for another seed of the generator).
    tilted = _tilt_runs(rng, 20, 0.5)
    z = np.array([run["sideband_tilt_z_eff0.1"] for run in tilted])
    threshold = tilted[0]["sideband_tilt_z_threshold"]
    record("power: smallest tilted z > threshold", z.min(), threshold, 1.0, SAMPLING)
    assert all(run["selection_depends_on_mjj"] == 1 for run in tilted)
    assert np.all(z > threshold)
