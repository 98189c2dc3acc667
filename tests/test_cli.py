"""Config composition and validation, the entry point, and the run directory's outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from shrunk import TINY_ANOMALY, TINY_CWOLA, TINY_NPLM

from jaxws.cli import CONFIG_DIR, execute
from jaxws.config import ConfigError, from_section
from jaxws.methods.injection_study import StudyConfig, StudyTrainingConfig

REPO = Path(__file__).resolve().parent.parent

TINY = TINY_CWOLA


def config(overrides=()):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_unknown_keys_and_bad_values_are_named():
    cfg = config()
    with pytest.raises(
        ConfigError,
        match=r"unknown key\(s\) \['learning_rat'\] in config "
        "section 'training'",
    ):
        from_section(StudyTrainingConfig, {**cfg.training, "learning_rat": 1.0}, "training")
    with pytest.raises(ConfigError, match=r"training.learning_rate must be > 0"):
        from_section(StudyTrainingConfig, {**cfg.training, "learning_rate": -1.0}, "training")
    with pytest.raises(ConfigError, match=r"study.injections must be >= 0"):
        from_section(StudyConfig, {**cfg.study, "injections": [10, -5]}, "study")
    with pytest.raises(ConfigError, match=r"training.batch_size must be an integer"):
        from_section(StudyTrainingConfig, {**cfg.training, "batch_size": "big"}, "training")


def test_experiment_runs_end_to_end_and_refuses_to_overwrite(tmp_path):
    cfg = config(TINY)
    metrics = execute(cfg, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["cwola/runs_reaching_5sigma"] == metrics["cwola/runs_reaching_5sigma"]
    for name in (
        "config.json",
        "metrics.json",
        "study.csv",
        "working_points.csv",
        "figures/significance.png",
        "figures/significance_no_signal_control.png",
    ):
        assert (tmp_path / name).is_file(), name
    before = (tmp_path / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds a finished run"):
        execute(cfg, tmp_path)
    assert (tmp_path / "results.json").read_bytes() == before


def test_command_line_exits_nonzero_naming_the_bad_value(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxws",
            *TINY,
            "training.learning_rate=-0.1",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2
    assert "training.learning_rate must be > 0" in result.stderr
    assert not (tmp_path / "results.json").exists()
    result = subprocess.run(
        [sys.executable, "-m", "jaxws", "trainng.patience=3", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2
    assert "trainng" in result.stderr


SHRUNK_RUNS = {
    "transfer_and_mtl": [
        *TINY,
        "method=compare",
        "+method@method.methods.Transfer=transfer",
        "+method@method.methods.MTL=mtl",
        "method.methods.Transfer.source.n_background=400",
        "method.methods.Transfer.source.n_signal_per_model=40",
        "method.methods.Transfer.pretrain.n_signal=300",
        "method.methods.Transfer.pretrain.n_background=300",
        "method.methods.Transfer.pretrain.max_epochs=2",
        "method.methods.MTL.source.n_background=400",
        "method.methods.MTL.source.n_signal_per_model=40",
        "method.methods.MTL.pretrain.n_signal=300",
        "method.methods.MTL.pretrain.n_background=300",
        "method.methods.MTL.pretrain.max_epochs=2",
        "method.methods.MTL.tasks.n_signal=20",
        "method.methods.MTL.tasks.n_background=20",
        "method.methods.MTL.meta.max_episodes=2",
    ],
    "anomaly": ["experiment=anomaly", *TINY_ANOMALY],
    "cwola_on_pythia_events": [
        *[o for o in TINY if not o.startswith("data.")],
        "data=pythia",
        f"data.paths=[{REPO.parent / 'shared' / 'data' / 'hv-reference'}]",
        "data.resolution=8",
        # as tests/test_readme_commands.py shrinks the README's Pythia command, which relies on
        # this run: per model about 2k SR QCD and 3.4k SR signal events, enough here
        "data.max_events=4000",
        "study.n_test_signal=500",
        "study.n_test_background=500",
    ],
    # The README's `python -m jaxws experiment=nplm` as tests/test_readme_commands.py shrinks
    # it: that test relies on this run instead of training it again.
    "nplm": ["experiment=nplm", *TINY_NPLM],
}


@pytest.mark.parametrize("name", sorted(SHRUNK_RUNS))
def test_every_method_runs_end_to_end_through_hydra(name, tmp_path, monkeypatch):
    """The real composed configs, shrunk to seconds: every method writes results and figures."""
    monkeypatch.chdir(tmp_path)  # pretraining artifacts land in this test's directory
    cfg = config(SHRUNK_RUNS[name])
    metrics = execute(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "results.json").is_file()
    assert list((tmp_path / "run" / "figures").glob("*.png"))
    assert metrics
