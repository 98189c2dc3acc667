"""The null of the anomaly-aware test, checked the way it is used (jaxws.methods.anomaly).

The whole pipeline at CI size: simulate the TPC toy, train the VAE and the classifier, score
a reference sample (f_0), a toy bank of about 1000 data sets' worth of background (a bank of
100 data sets still gave 2.5-3.5% of p below 0.01 at B = 1000, see docs/anomaly.md) and 150
background-only data sets simulated afresh, and
test each data set at R = 0, 10 and 100 exactly as the analysis tests data. Their p-values
must be uniform. With 150 data sets the KS test at the 1% level rejects a deviation D = 0.13
with power > 0.9 (the former setup's 26% of p below 0.05 is D > 0.2); the fractions below
0.05 and 0.01 must lie within 3 binomial standard errors (0.053, 0.024) of nominal.
"""

import jax
import pytest
from margins import TRAINED, record, record_p

from jaxws.methods import anomaly
from jaxws.simulate import tpc

B = 100.0


@pytest.fixture(scope="module")
def calibration():
    key = jax.random.key(0)
    data = tpc.TPCConfig(
        n_background_train=4000,
        n_background_null=10000,
        n_background_bank=120000,  # about 1000 data sets: toys nearly as fresh as data
        n_signal_train=3000,
        n_signal_benchmark=600,
    )
    test = anomaly.AnomalyTestConfig(
        wimp_masses=(50.0,),
        sensitivity_mass=50.0,
        mismatch_template_mass=50.0,
        mismatch_signal_mass=50.0,
        expected_background=B,
        n_null_toys=500,
        n_signal_toys=50,
        null_check_r=(0.0, 10.0, 100.0),
        n_null_check_sets=150,
    )
    samples = anomaly.simulate_samples(key, data, test.wimp_masses)
    scorer, _ = anomaly.train_scorer(
        key,
        samples,
        anomaly.VAEConfig(hidden=(32, 32), max_epochs=3, score_samples=4),
        anomaly.ClassifierConfig(feature_widths=(32,), head_widths=(16,), max_epochs=3),
    )
    score_key = jax.random.fold_in(key, 3)
    reference = scorer(samples["background_null"], jax.random.fold_in(score_key, 0))
    bank = scorer(samples["background_bank"], jax.random.fold_in(score_key, 1))
    template = scorer(samples["benchmarks"][0], jax.random.fold_in(score_key, 2))
    events, counts = anomaly.fresh_background_sets(
        jax.random.fold_in(key, 6), data, B, test.n_null_check_sets
    )
    observed = scorer(events, jax.random.fold_in(score_key, 3))
    return anomaly.null_calibration(
        jax.random.fold_in(key, 7), observed, counts, reference, bank, template, test
    )


@pytest.mark.statistical
@pytest.mark.parametrize("r", [0.0, 10.0, 100.0])
def test_fresh_background_gives_uniform_p_values(calibration, r):
    for statistic in ("gof", "q0"):
        summary = calibration[r][statistic]
        assert summary["n"] == 150
        record_p(f"KS {statistic} p-values vs uniform", summary["ks_pvalue"], 0.01, TRAINED)
        for level, name in ((0.05, "05"), (0.01, "01")):
            error = summary[f"error_{name}"]
            deviation = abs(summary[f"fraction_below_{name}"] - level)
            quantity = f"|{statistic} fraction p < {level} - {level}| < 3 SE"
            record(quantity, deviation, 3 * error, error, TRAINED, above=False)
        assert summary["ks_pvalue"] > 0.01, (statistic, summary)
        assert abs(summary["fraction_below_05"] - 0.05) < 3 * summary["error_05"], (
            statistic,
            summary,
        )
        assert abs(summary["fraction_below_01"] - 0.01) < 3 * summary["error_01"], (
            statistic,
            summary,
        )


def test_signal_count_fits_at_their_step_limit_are_reported(capsys):
    from jaxws.methods.anomaly.pipeline import warn_not_converged

    warn_not_converged({"toy_fits_not_converged": 0.0})
    assert capsys.readouterr().err == ""
    warn_not_converged({"toy_fits_not_converged": 3.0})
    err = capsys.readouterr().err
    assert "anomaly test: 3 signal-count fits stopped at their step limit" in err
    assert "toy_fits_not_converged" in err
