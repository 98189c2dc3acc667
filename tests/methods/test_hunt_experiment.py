"""`experiment=hunt` on your events (`data=events`), its refusals, and the pretrained classifiers.

The events files are built with numpy (a dijet spectrum over 3.5-7 TeV, Gaussian jet
features, signal at 5 TeV with heavier jets and more constituents), so no simulator runs here.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from test_hunt import dijet_mjj

from jaxws.cli import CONFIG_DIR, execute
from jaxws.config import ConfigError
from jaxws.data import readers
from jaxws.methods import transfer
from jaxws.methods.hunt import HuntLayout, assign_folds, plan_folds
from jaxws.methods.hunt.classifiers import hunt_view
from jaxws.methods.hunt.experiment import HuntConfig, check_coverage
from jaxws.methods.pretrain import source_sample

REPO = Path(__file__).resolve().parents[2]
#: the shapes of tests/test_readme_commands.py's shrunk `experiment=hunt` (4000 + 60 events,
#: 2 folds, 2 epochs): its compiled programs are reused
SHRUNK = [
    "method.n_signal=60",
    "method.k_folds=2",
    "method.max_epochs=2",
    "method.n_toys=10",
    "method.efficiencies=[1.0,0.1]",
    "tracking=none",
    "tracking.figure_formats=[png]",
]


def write_events(path: Path, n: int, label: int, seed: int, low=3500.0, high=7000.0) -> Path:
    rng = np.random.default_rng(seed)
    mjj = rng.normal(5000.0, 100.0, n) if label else dijet_mjj(rng, n, low, high)
    pt = np.repeat(mjj[:, None] / 2, 2, axis=1)
    mass = rng.normal(300.0 if label else 100.0, 30.0, (n, 2)).clip(5.0)
    jets = np.stack([pt, np.zeros_like(pt), np.zeros_like(pt), mass], axis=-1)
    constituents = np.zeros((n, 2, 1, 3), np.float32)
    constituents[:, :, 0, 0] = pt
    arrays = {
        "constituents": constituents,
        "jets": jets.astype(np.float32),
        "mjj": mjj.astype(np.float32),
        "region": np.where((mjj >= 4700) & (mjj < 5500), 0, -1),
        "n_constituents": rng.poisson(150 if label else 60, (n, 2)) + 1,
        "label": np.full(n, label),
    }
    return readers.write_hdf5(path, readers.events_from_arrays(arrays, label=label))


def compose_hunt(tmp_path: Path, *overrides: str):
    background = write_events(tmp_path / "bkg.h5", 4600, 0, seed=1)
    signal = write_events(tmp_path / "sig.h5", 200, 1, seed=2)
    other = write_events(tmp_path / "other.h5", 200, 1, seed=4)
    third = write_events(tmp_path / "third.h5", 200, 1, seed=5)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "experiment=hunt",
                "data=events",
                f"data.background={background}",
                f"+data.signals={{bump:{signal},other:{other},third:{third}}}",
                "data.signal=bump",
                "data.resolution=8",
                "method.n_background=4000",  # the file's last 600 are the source background
                # 4000 events leave the default range's last bin (6.86-7 TeV) empty
                "method.mjj_range=[3500,6500]",
                *SHRUNK,
                *overrides,
            ],
        )


@pytest.mark.parametrize("classifier", ["transfer", "mtl"])
def test_hunt_runs_on_user_events_with_pretrained_classifiers(tmp_path, monkeypatch, classifier):
    """`python -m jaxws experiment=hunt data=events method.features=images
    method.classifier=transfer|mtl ...` end to end, shrunk, in one process. Fine-tuning
    trains exactly the k-fold plan's members, so the plan's guarantee holds
    (`test_every_event_is_scored_by_models_that_never_saw_it`); pretraining never sees the
    hunt's events (`test_pretraining_never_sees_an_event_of_the_hunt`)."""
    from jaxws.methods import fine_tune as fine_tune_module
    from jaxws.methods.meta import study as meta_study

    seen = []
    original = fine_tune_module.fine_tune

    def spy(keys, model, pool, members, *args, **kwargs):
        seen.append(jax.tree.map(np.asarray, members))
        return original(keys, model, pool, members, *args, **kwargs)

    monkeypatch.setattr(fine_tune_module, "fine_tune", spy)
    monkeypatch.setattr(meta_study, "fine_tune", spy)
    pretrain = [
        "+method.pretrained.source.n_background=50",
        "+method.pretrained.source.n_signal_per_model=20",
        "+method.pretrained.pretrain.n_signal=40",
        "+method.pretrained.pretrain.n_background=50",
        "+method.pretrained.pretrain.max_epochs=2",
        "+method.pretrained.tasks.n_signal=10",
        "+method.pretrained.tasks.n_background=10",
        "+method.pretrained.meta.max_episodes=1",
    ]
    if classifier == "transfer":  # the MLP (cheap to compile); MTL needs the CNN's S, S-bar
        pretrain = [*pretrain[:5], "model=mlp", "model.feature_widths=[8]", "model.head_widths=[8]"]
    cfg = compose_hunt(
        tmp_path, "method.features=images", f"method.classifier={classifier}", *pretrain
    )
    run = tmp_path / "run"
    metrics = execute(cfg, run)
    assert metrics["classifier"] == classifier
    assert metrics["n_background_events"] == 4000
    assert metrics["n_windows"] == 5
    assert metrics["signal_window"] == 3  # the window whose SR holds the 5 TeV events
    assert np.isfinite(metrics["sideband_tilt_eff0.1"])
    assert (run / "hunt_spectra.csv").read_text().count("\n") == 1 + 5 * 2 * 12
    rows = (run / "hunt_table.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * 2
    assert (run / "figures" / "hunt.png").is_file()
    # the members fine-tuned are the k-fold plan's (seed as in experiment.run)
    assert len(seen) == 1
    mjj = np.r_[
        readers.read_hdf5(tmp_path / "bkg.h5").mjj[:4000],
        readers.read_hdf5(tmp_path / "sig.h5").mjj[:60],
    ]
    seed = int(jax.random.randint(jax.random.fold_in(jax.random.key(0), 0), (), 0, 2**31 - 1))
    seed %= 2**30
    layout = HuntConfig(mjj_range=(3500.0, 6500.0)).layout()
    plan = plan_folds(layout.regions(mjj), assign_folds(len(mjj), 2, seed), 2, 1, 0.2, seed + 1)
    for name in ("train_index", "train_weight", "val_index", "val_weight"):
        np.testing.assert_array_equal(getattr(seen[0], name), getattr(plan.members, name))


def test_events_that_do_not_cover_the_windows_are_refused(tmp_path):
    """A file selected at 4.4-5.8 TeV against the default 3.5-7 TeV windows: one line, exit 2."""
    narrow = write_events(tmp_path / "narrow.h5", 1500, 0, seed=3, low=4400.0, high=5800.0)
    layout = HuntConfig().layout()
    mjj = readers.read_hdf5(narrow).mjj
    with pytest.raises(ConfigError, match=r"span mjj 4400-5[78]\d\d GeV, which does not cover"):
        check_coverage(layout, mjj)
    check_coverage(HuntLayout((4400.0, 5800.0), 0.02, 2, 3, 1), mjj)  # the Pythia layout fits
    signal = write_events(tmp_path / "sig.h5", 200, 1, seed=2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxws",
            "experiment=hunt",
            "data=events",
            f"data.background={narrow}",
            f"+data.signals={{bump:{signal}}}",
            "data.signal=bump",
            "method.n_background=null",
            "tracking=none",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "JAXWS_JAX_CACHE": ""},
        timeout=240,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert re.search(r"method.mjj_range=\[4400,5[78]\d\d\]", lines[0]), lines[0]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"method.classifier=trees needs feature vectors"):
        execute(
            compose_hunt(tmp_path, "method.features=images", "method.classifier=trees"),
            tmp_path / "x",
        )
    with pytest.raises(ConfigError, match=r"method.classifier=mtl pretrains a jet-image"):
        execute(compose_hunt(tmp_path, "method.classifier=mtl"), tmp_path / "x")


def test_pretraining_never_sees_an_event_of_the_hunt(tmp_path):
    """File sources: the leave-one-out source background comes after the hunt's events."""
    layout = HuntLayout((3500.0, 7000.0), 0.04, 2, 2, 2)
    mjj = dijet_mjj(np.random.default_rng(0), 1000)
    plan = plan_folds(layout.regions(mjj), assign_folds(1000, 3, 1), 3)
    view = hunt_view(np.zeros((1000, 1)), plan, 800, None, None, "bump", None)
    assert view.experiments.members is plan.members  # fine-tuning trains the plan's members
    used = transfer._used_background(view)
    assert np.isin(np.arange(800), used).all()
    # through the real source sample of a data=events source
    section = {
        "source": "events",
        "background": str(write_events(tmp_path / "bkg.h5", 1500, 0, seed=1)),
        "signals": {
            "bump": str(write_events(tmp_path / "sig.h5", 200, 1, seed=2)),
            "other": str(write_events(tmp_path / "other.h5", 200, 1, seed=4)),
        },
        "signal": "bump",
    }
    from jaxws.simulate.sources import make_source

    source = make_source(section)
    sample = source_sample(
        source, "bump", 50, 10, lambda e: np.asarray(e.mjj)[:, None], exclude_background=used
    )
    hunt_mjj = np.asarray(source.background().mjj)[:800]
    assert not np.isin(sample.images[sample.model_index == -1, 0], hunt_mjj).any()


def test_sideband_tilt_is_the_ratio_of_upper_to_lower_pass_fractions():
    from jaxws.methods.hunt.experiment import sideband_tilt

    layout = HuntLayout((3500.0, 7000.0), 0.04, 2, 2, 2)
    counts = np.zeros((layout.n_windows, 2, layout.window_bins))
    counts[:, 0] = 100.0  # efficiency 1: every bin
    counts[:, 1, :2] = 5.0  # lower sidebands: 5 % pass
    counts[:, 1, 2:4] = 10.0
    counts[:, 1, 4:] = 15.0  # upper sidebands: 15 % pass
    tilt = sideband_tilt(layout, (1.0, 0.1), counts)
    assert set(tilt) == {
        "sideband_tilt_eff0.1",
        "sideband_tilt_z_eff0.1",
        "sideband_tilt_z_threshold",
        "selection_depends_on_mjj",
    }
    assert tilt["sideband_tilt_eff0.1"] == pytest.approx(3.0, rel=1e-12)
    # Per window 30 of the sidebands' 40 passing events are upper (hypergeometric mean 20,
    # variance 40 x 360 / 4 / 399); every stride-th window shares no bin with the next.
    stride = -(-layout.window_bins // layout.step_bins)
    n_set = len(range(0, layout.n_windows, stride))
    z = n_set * 10.0 / np.sqrt(n_set * 40 * 360 / 4 / 399)
    assert tilt["sideband_tilt_z_eff0.1"] == pytest.approx(z, rel=1e-12)
    assert tilt["selection_depends_on_mjj"] == 1
    assert sideband_tilt(layout, (0.5, 0.1), counts) == {}


def test_early_stopping_reaches_the_cwola_members_and_is_refused_where_it_means_nothing():
    """`method.early_stopping` sets the engine's rule for the members trained from scratch
    (`TrainConfig.early_stopping`, tested in tests/train/test_engine.py); with the trees or the
    pretrained classifiers it would mean nothing and is refused by name."""
    from jaxws.methods.hunt.experiment import member_training

    assert member_training(HuntConfig()).early_stopping is True
    fixed = member_training(HuntConfig(early_stopping=False, max_epochs=40, patience=7))
    assert (fixed.early_stopping, fixed.max_epochs, fixed.patience) == (False, 40, 7)
    for classifier in ("trees", "transfer"):
        with pytest.raises(ConfigError, match=r"method\.early_stopping=false applies to"):
            HuntConfig(classifier=classifier, early_stopping=False)
    with pytest.raises(ConfigError, match=r"method\.early_stopping must be true or false"):
        HuntConfig(early_stopping="no")
