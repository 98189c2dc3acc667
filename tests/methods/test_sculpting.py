"""The mjj sculpting check: no pull for a classifier blind to mjj, a large one otherwise."""

import numpy as np
import pytest
from margins import SAMPLING, record

from jaxws.methods.sculpting import sculpting_check


def _background(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    mjj = rng.uniform(4400, 5800, n)
    region = np.where((mjj >= 4700) & (mjj < 5500), 0, 1)
    return rng, mjj, region


def _record_pulls(pulls):
    """Mean within 0.35 of 0 and s.d. within 0.25 of 1 (standard errors 1 / sqrt(n) and
    1 / sqrt(2 n) for standard normal pulls)."""
    n = len(pulls)
    record("|mean pull| < 0.35", abs(pulls.mean()), 0.35, 1 / np.sqrt(n), SAMPLING, False)
    record(
        "|sd of pulls - 1| < 0.25", abs(pulls.std() - 1), 0.25, 1 / np.sqrt(2 * n), SAMPLING, False
    )


@pytest.mark.statistical
def test_scores_independent_of_mjj_give_standard_normal_pulls():
    rng, mjj, region = _background()
    scores = rng.normal(size=(200, len(mjj)))
    out = sculpting_check(scores, mjj, region, efficiencies=(0.1,))
    pulls = out.pull[:, 0]
    # 200 independent classifiers: mean 0 +- 0.07, std 1 +- 0.05 (5 sigma bounds below).
    _record_pulls(pulls)
    assert abs(pulls.mean()) < 0.35
    assert 0.75 < pulls.std() < 1.25
    np.testing.assert_allclose(out.efficiency_sr[:, 0], 0.1, atol=1e-3)
    # Efficiency in every mjj bin consistent with flat.
    assert np.nanmax(np.abs(out.efficiency_by_mjj.mean(axis=0)[0] - 0.1)) < 0.01


@pytest.mark.statistical
def test_scores_that_follow_mjj_are_flagged():
    rng, mjj, region = _background(seed=1)
    # The low sideband looks SR-like. A shift of 0.7 (was 0.5, whose smallest pull, 5.3, sat
    # 0.3 standard errors above the flag) gives pulls of 12 and more: 7 SE above it.
    scores = rng.normal(size=(3, len(mjj))) + 0.7 * (mjj < 4700)
    out = sculpting_check(scores, mjj, region)
    record("power: smallest pull > 5", out.pull.min(), 5.0, 1.0, SAMPLING)
    assert np.all(out.pull > 5)
    with pytest.raises(ValueError, match="SR and SB"):
        sculpting_check(scores, mjj, np.zeros_like(region))


@pytest.mark.statistical
def test_a_classifier_is_checked_only_on_events_it_never_trained_on():
    # A classifier that memorised its training events (SR ones score higher: "SR = 1") and is
    # blind to mjj elsewhere. On all events its cut keeps SR training events first, so the SB
    # efficiency falls below the SR one (a false sculpting flag); on held-out events the pulls
    # are standard normal.
    rng, mjj, region = _background(seed=2)
    n_members = 100
    trained = rng.random((n_members, len(mjj))) < 0.5
    scores = rng.normal(size=trained.shape) + 1.0 * (trained & (region == 0))
    everything = sculpting_check(scores, mjj, region, efficiencies=(0.1,))
    record("power: largest pull < -5", everything.pull[:, 0].max(), -5.0, 1.0, SAMPLING, False)
    assert np.all(everything.pull[:, 0] < -5)
    held_out = sculpting_check(scores, mjj, region, efficiencies=(0.1,), usable=~trained)
    pulls = held_out.pull[:, 0]
    # 100 classifiers: mean 0 +- 0.1, s.d. 1 +- 0.07; bounds at 3.5 and 3.5 standard errors.
    _record_pulls(pulls)
    assert abs(pulls.mean()) < 0.35
    assert 0.75 < pulls.std() < 1.25
