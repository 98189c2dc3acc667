"""Learning threshold and signal for 5 sigma with bootstrap errors (jaxws.stats.thresholds)."""

import numpy as np
import pytest
from margins import SAMPLING, record

from jaxws.methods.injection_study import StudyResult, threshold_table
from jaxws.stats.thresholds import bootstrap_thresholds, learning_threshold


def test_learning_threshold_is_the_last_upward_crossing_of_the_slope_one_line():
    initial = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    final = np.array([0.5, 1.5, 2.8, 4.6, 6.0])  # excess -0.5, -0.5, -0.2, 0.6, 1.0
    assert learning_threshold(initial, final) == pytest.approx(3.0 + 0.2 / 0.8)
    # A dip back below the line moves the threshold to the last crossing.
    final = np.array([1.5, 1.5, 3.5, 3.0, 6.0])  # excess 0.5, -0.5, 0.5, -1.0, 1.0
    assert learning_threshold(initial, final) == pytest.approx(4.5)
    assert np.isnan(learning_threshold(initial, initial - 0.1))
    assert learning_threshold(initial, initial + 0.1) == 1.0


def test_bootstrap_of_identical_pseudo_experiments_has_no_spread():
    injections = np.array([50.0, 100.0, 200.0, 400.0])
    initial = np.array([1.0, 2.0, 4.0, 8.0])
    final = np.repeat(np.array([[0.5], [1.5], [5.0], [12.0]]), 6, axis=1)
    out = bootstrap_thresholds(injections, initial, final, n_bootstrap=50)
    assert out["threshold_z"] == pytest.approx(2.0 + 2.0 * 0.5 / 1.5)
    assert out["threshold_z_std"] == pytest.approx(0.0, abs=1e-12)
    assert out["signal_for_5sigma"] == pytest.approx(200.0)
    assert out["signal_for_5sigma_std"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.statistical
def test_bootstrap_spread_matches_the_standard_error_of_a_linear_crossing():
    # final Z = 2 * initial - 3 + noise at two points around the crossing (initial 3);
    # the crossing of the mean moves by about sigma_mean / slope(excess) = sigma / sqrt(n).
    # 400 runs (was 40): the spread's own relative standard error is then 0.03, so the 15%
    # tolerance is 5 standard errors (at 40 runs it was 0.08 and the seed sat 0.3 SE inside).
    rng = np.random.default_rng(0)
    n_runs, sigma = 400, 0.4
    initial = np.array([2.0, 4.0])
    final = (2.0 * initial - 3.0)[:, None] + sigma * rng.standard_normal((2, n_runs))
    out = bootstrap_thresholds(np.array([10.0, 20.0]), initial, final, n_bootstrap=2000, seed=1)
    # Excess slope 1; each end point's mean moves by sigma/sqrt(n); the crossing is their
    # average shift (weights 1/2): std = sigma / sqrt(2 n).
    expected = sigma / np.sqrt(2 * n_runs)
    # The bootstrap's spread estimates sigma from 2 x n runs (relative standard error about
    # 1 / sqrt(2 (2 n - 2))) and from 2000 resamples (1 / sqrt(2 x 2000)).
    relative_se = np.sqrt(1 / (2 * (2 * n_runs - 2)) + 1 / (2 * 2000))
    deviation = abs(out["threshold_z_std"] / expected - 1)
    record(
        "|bootstrap sd / (sigma / sqrt(2 n)) - 1| < 0.15",
        deviation,
        0.15,
        relative_se,
        SAMPLING,
        False,
    )
    assert out["threshold_z_std"] == pytest.approx(expected, rel=0.15)


def _result(final_by_injection, injections, initial):
    n_runs = final_by_injection.shape[1]
    inj = np.repeat(injections, n_runs)
    return StudyResult(
        injection=inj,
        experiment=np.tile(np.arange(n_runs), len(injections)),
        initial_z=np.repeat(initial, n_runs),
        auc=np.full(inj.shape, 0.7),
        background_efficiencies=np.array([0.1]),
        signal_efficiencies=np.full((len(inj), 1), 0.2),
        final_z=final_by_injection.reshape(-1, 1),
        best_z=final_by_injection.reshape(-1),
        epochs=np.zeros(len(inj), int),
    )


def test_threshold_table_ratio_to_cwola_and_columns():
    injections = np.array([0.0, 100.0, 200.0, 400.0])
    initial = np.array([0.0, 2.0, 4.0, 8.0])
    cwola = _result(np.array([[0.0] * 3, [1.0] * 3, [3.0] * 3, [10.0] * 3]), injections, initial)
    better = _result(np.array([[0.0] * 3, [3.0] * 3, [6.0] * 3, [12.0] * 3]), injections, initial)
    rows = threshold_table({"CWoLa": cwola, "Transfer": better})
    assert list(rows[0])[:7] == [
        "method",
        "threshold_z",
        "threshold_z_std",
        "signal_for_5sigma",
        "signal_for_5sigma_std",
        "ratio_to_cwola",
        "threshold_kind",
    ]
    by = {r["method"]: r for r in rows}
    assert by["CWoLa"]["signal_for_5sigma"] == pytest.approx(200 + 200 * 2 / 7)
    assert by["Transfer"]["signal_for_5sigma"] == pytest.approx(100 + 100 * 2 / 3)
    assert by["CWoLa"]["ratio_to_cwola"] == 1.0
    assert by["Transfer"]["ratio_to_cwola"] == pytest.approx(
        by["Transfer"]["signal_for_5sigma"] / by["CWoLa"]["signal_for_5sigma"]
    )
    # CWoLa crosses the slope-1 line between initial 4 (excess -1) and 8 (excess +2).
    assert by["CWoLa"]["threshold_z"] == pytest.approx(4 + 4 / 3)
    assert by["CWoLa"]["threshold_kind"] == "crossing"
    assert by["Transfer"]["threshold_kind"] == "below range"  # above the line everywhere
