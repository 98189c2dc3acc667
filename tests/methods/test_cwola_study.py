"""A reduced CWoLa study on the calibrated simulator: above its learning threshold the
classifier cut raises the significance beyond the initial one (the slope-1 line)."""

import csv

import pytest
from hydra import compose, initialize_config_dir
from margins import TRAINED, record

from jaxws.cli import CONFIG_DIR, execute

REDUCED = [
    "tracking=none",
    "tracking.figure_formats=[png]",
    "method=cwola",
    "data.n_background=6000",
    "data.n_signal=2500",
    "study.n_background_sr=1000",
    "study.injections=[0,1000]",
    "study.n_pseudo_experiments=3",
    "study.n_test_signal=600",
    "study.n_test_background=1500",
]


@pytest.mark.numerical
@pytest.mark.statistical
def test_cwola_ends_above_the_slope_one_line_at_a_high_injection(tmp_path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=REDUCED)
    metrics = execute(cfg, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "study.csv").open()))
    high = next(r for r in rows if int(r["injection"]) == 1000)
    # Initial Z = 27.8 (1000 signal on 1000 SR background); a classifier that learned the signal
    # keeps most of it while cutting the background: the mean final Z of the 3
    # pseudo-experiments lies more than 2 standard errors above the initial one. Measured
    # (docs/testing.md): mean 34.30 (SE 1.39) natively, 34.53 (SE 1.65) with AVX2, 2.7 and
    # 2.1 SE beyond the asserted line. At the former injection of 600 (AUC about 0.75) the
    # cushion was 0.16 SE here and -0.03 SE on an AVX2 machine (issue 21).
    standard_error = float(high["final_z_std"]) / 3**0.5
    excess = (float(high["final_z_mean"]) - float(high["initial_z"])) / standard_error
    seeds = "3 pseudo-experiments"
    record("(mean final Z - initial Z) / SE > 2", excess, 2.0, 1.0, TRAINED, se_from=seeds)
    auc_error = float(high["auc_std"]) / 3**0.5 if "auc_std" in high else float("nan")
    record("mean AUC > 0.7", float(high["auc_mean"]), 0.7, auc_error, TRAINED, se_from=seeds)
    assert float(high["final_z_mean"]) - 2 * standard_error > float(high["initial_z"])
    assert float(high["auc_mean"]) > 0.7
    thresholds = list(csv.DictReader((tmp_path / "run" / "thresholds.csv").open()))
    assert thresholds[0]["method"] == "CWoLa"
    assert (tmp_path / "run" / "sculpting.csv").exists()
    assert "cwola/sculpting_max_abs_pull" in metrics
