"""Every meta-learning variant end to end through the real Hydra config, shrunk to seconds.

All variants share one pretraining artifact (same source and pretraining sections), so after
the first run each costs its meta-training, fine-tuning and evaluation only. The command line
refuses a flag that means nothing for a variant with one line naming the key and exit code 2.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from shrunk import TINY_CWOLA

from jaxws.cli import CONFIG_DIR, execute
from jaxws.methods import meta

REPO = Path(__file__).resolve().parents[2]

TINY_META = [
    *TINY_CWOLA,
    "method.source.n_background=400",
    "method.source.n_signal_per_model=40",
    "method.pretrain.n_signal=300",
    "method.pretrain.n_background=300",
    "method.pretrain.max_epochs=2",
    "method.tasks.n_signal=20",
    "method.tasks.n_background=20",
    "method.meta.inner_epochs=1",
    "method.meta.max_episodes=2",
]


def config(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("name", meta.available())
def test_every_variant_runs_end_to_end_through_hydra(name, tmp_path):
    cfg = config([f"method={name}", *TINY_META])
    assert cfg.method.name == name
    metrics = execute(cfg, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved.keys() == metrics.keys()
    assert metrics
    assert list((tmp_path / "figures").glob("*.png"))


def test_command_line_refuses_a_flag_that_means_nothing(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxws",
            "method=reptile",
            *TINY_META,
            "method.meta.first_order=true",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "meta.first_order means nothing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results.json").exists()
