"""LHCO R&D loader: published checksums, counts from the data README, refusal of bad files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from margins import TRAINED, auc_se, record

from jaxws.data import lhco


@pytest.fixture(scope="module")
def data():
    return lhco.load_lhco()


def test_counts_match_readme(data):
    # README: rows and signal rows per file
    expected = {
        "sr_train": (60000, 395),
        "sr_val": (60000, 369),
        "sr_test": (60000, 20000),
        "sr_extrasig_train": (27263, 27263),
        "sr_extrasig_val": (27264, 27264),
    }
    for name, (rows, signal) in expected.items():
        assert len(data[name]) == rows, name
        assert int(data[name].labels.sum()) == signal, name
    mjj = data["sr_test"].mjj
    assert mjj.min() >= 3.3
    assert mjj.max() <= 3.7
    assert data["sr_test"].features.shape == (60000, 4)


def test_checksum_mismatch_is_refused(tmp_path):
    shutil.copy(lhco.default_directory() / "sr_val.npy", tmp_path / "sr_val.npy")
    array = np.load(tmp_path / "sr_val.npy")
    array[0, 1] += 1e-6
    np.save(tmp_path / "sr_val.npy", array)
    with pytest.raises(ValueError, match=r"sr_val.npy: sha256 .* does not match"):
        lhco.load_split("sr_val", tmp_path)
    # without verification the malformed-content checks still apply
    np.save(tmp_path / "sr_val.npy", array[:, :5])
    with pytest.raises(ValueError, match=r"expected shape \(N, 6\)"):
        lhco.load_split("sr_val", tmp_path, verify=False)
    with pytest.raises(ValueError, match="unknown LHCO split"):
        lhco.load_split("sr_sideband")
    with pytest.raises(ValueError, match="unknown LHCO features"):
        lhco.load_split("sr_val", features=("pt",))


def test_standardizer_matches_numpy(data):
    x = data["sr_train"].features
    scaler = lhco.Standardizer.fit(x)
    z = scaler.transform(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(scaler.inverse(z), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler.std, np.std(x.astype(np.float64), axis=0), rtol=1e-12)
    weights = np.r_[np.ones(100), np.zeros(len(x) - 100)]
    np.testing.assert_allclose(lhco.Standardizer.fit(x, weights).mean, x[:100].mean(0), rtol=1e-6)
    with pytest.raises(ValueError, match="zero spread"):
        lhco.Standardizer.fit(np.ones((10, 2)))


@pytest.mark.statistical
def test_lhco_method_end_to_end(tmp_path):
    """Shrunk run of method=lhco: both ensembles train and the supervised one beats random."""
    import jax

    from jaxws.methods import lhco as method
    from jaxws.track import Tracker

    cfg = {
        "method": {
            "name": "lhco",
            "members": 1,
            "feature_widths": [16, 16],
            "head_widths": [16],
            "max_epochs": 3,
            "patience": 3,
            "max_events_per_file": 3000,
        }
    }
    metrics = method.run(cfg, jax.random.key(0), tmp_path, Tracker(tmp_path))
    assert metrics["n_test_background"] == 1500
    # truth-labelled signal vs background on 4 substructure features: far from random (0.5)
    # Test-sample error with as many signal as background test events (approximate; one
    # member, so no seed spread).
    se = auc_se(metrics["supervised/auc"], 1500, 1500)
    record(
        "supervised AUC > 0.85", metrics["supervised/auc"], 0.85, se, TRAINED, se_from="test sample"
    )
    assert metrics["supervised/auc"] > 0.85
    assert metrics["supervised/max_sic"] > 2.0
    assert 0.0 <= metrics["idealised/auc"] <= 1.0
    assert (tmp_path / "lhco_sic_curves.json").exists()
    assert list((tmp_path / "figures").glob("lhco_sic*"))
    with pytest.raises(Exception, match="unknown key"):
        method.run({"method": {"name": "lhco", "epochs": 3}}, jax.random.key(0), tmp_path, None)
