"""A multirun summarises itself: the Hydra callback writes sweep_summary.csv/.png into the sweep
directory (one row per job) and names them; the launcher and sweeper configs compose."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from shrunk import TINY_NPLM

from jaxws.cli import CONFIG_DIR
from jaxws.track import sweep

REPO = Path(__file__).resolve().parents[2]

NPLM_TINY = ["experiment=nplm", *TINY_NPLM]


def test_a_real_multirun_leaves_a_summary_with_one_row_per_job(tmp_path):
    """Through the submitit plugin's local executor (`hydra/launcher=submitit_local`): the
    plugin `hydra/launcher=slurm` uses, each job a separate process started by submitit, so
    the cluster recipe is tested end to end apart from the scheduler itself. (The basic
    launcher's sweep runs in tests/test_readme_commands.py.)"""
    env = {
        **os.environ,
        "JAXWS_CACHE_DIR": str(tmp_path / "cache"),
        "JAXWS_JAX_CACHE": str(REPO / ".cache" / "jax-compilation"),
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxws",
            "-m",
            "hydra/launcher=submitit_local",
            *NPLM_TINY,
            "seed=0,1",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table, image = tmp_path / "sweep_summary.csv", tmp_path / "sweep_summary.png"
    assert result.stdout.strip().splitlines()[-1] == f"jaxws: sweep summary: {table} and {image}"
    rows = list(csv.DictReader(table.open()))
    assert [(r["job"], r["seed"], r["status"]) for r in rows] == [
        ("0", "0", "finished"),
        ("1", "1", "finished"),
    ]
    for row in rows:  # every scalar of each job's results.json is in its row, unchanged
        results = json.loads((tmp_path / row["job"] / "results.json").read_text())
        assert float(row["null/ks_pvalue"]) == results["null/ks_pvalue"]
    assert image.stat().st_size > 10_000
    assert "Unable to initialize backend" not in result.stdout + result.stderr
    # submitit ran the two jobs: one log directory each, both ended successfully
    logs = sorted((tmp_path / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2
    for log in logs:
        assert "Job completed successfully" in log.read_text()


def fake_job(sweep_dir, number, overrides, results=None, metrics=None):
    job = sweep_dir / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results is not None:
        (job / "results.json").write_text(json.dumps(results))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_summary_marks_unfinished_jobs_and_finds_the_swept_keys(tmp_path):
    common = ["tracking=none", "model=mlp"]
    fake_job(
        tmp_path,
        0,
        [*common, "training.learning_rate=1e-4"],
        {"cwola/signal_for_5sigma": 300.0, "figure": "x.png"},
    )
    fake_job(
        tmp_path,
        1,
        [*common, "training.learning_rate=1e-3"],
        metrics={"cwola/signal_for_5sigma": 250.0},
    )
    fake_job(tmp_path, 10, [*common, "training.learning_rate=1e-2"])
    rows = sweep.collect(tmp_path)
    assert [r["job"] for r in rows] == [0, 1, 10]
    assert [r["status"] for r in rows] == ["finished", "partial", "missing"]
    assert sweep.swept_keys(rows) == ["training.learning_rate"]
    assert sweep.key_metrics(rows) == ["cwola/signal_for_5sigma"]
    table, image = sweep.summarise_sweep(tmp_path)
    lines = list(csv.reader(table.open()))
    assert lines[0] == [
        "job",
        "status",
        "tracking",
        "model",
        "training.learning_rate",
        "cwola/signal_for_5sigma",
    ]
    assert lines[3] == ["10", "missing", "none", "mlp", "1e-2", ""]
    assert image.is_file()
    assert sweep.summarise_sweep(tmp_path / "empty") is None


@pytest.mark.parametrize(
    "overrides",
    [
        ["hydra/launcher=local"],
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
        ["experiment=optuna_sweep"],
    ],
)
def test_launcher_and_sweeper_configs_compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    launcher, sweeper = cfg.hydra.launcher, cfg.hydra.sweeper
    if "hydra/launcher=local" in overrides:
        assert launcher._target_.endswith("JoblibLauncher")
        assert launcher.n_jobs == 2
    elif "hydra/launcher=slurm" in overrides:
        assert launcher._target_.endswith("SlurmLauncher")
        assert (launcher.gpus_per_task, launcher.tasks_per_node, launcher.partition) == (
            1,
            1,
            "gpu",
        )
    else:
        assert sweeper._target_.endswith("OptunaSweeper")
        assert cfg.objective == "cwola/signal_for_5sigma"
        assert sweeper.direction == "minimize"
    assert cfg.hydra.callbacks.sweep_summary._target_ == "jaxws.track.sweep.SweepSummary"
    assert Path(cfg.paths.artifact_dir).is_absolute()


def test_the_generator_composes_with_the_projects_launchers():
    """`python -m jaxws.simulate.generate -m hydra/launcher=slurm ...` (README, docs/pythia.md):
    the generator's config (conf/generate.yaml, what its entry point loads) sees
    conf/hydra/launcher."""
    import inspect

    from jaxws.simulate import generate

    assert 'config_name="generate"' in inspect.getsource(generate.main)
    overrides = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=cpu",
        "hydra.launcher.gpus_per_task=null",
        "models=[qcd]",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="generate", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "cpu"
    assert cfg.hydra.launcher.gpus_per_task is None
    assert list(cfg.models) == ["qcd"]
    assert "data" not in cfg  # the generator's own config, not the studies'


def test_objective_and_verbose_are_checked_before_the_run(tmp_path):
    from jaxws.cli import execute
    from jaxws.config import ConfigError

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        bad_objective = compose(config_name="config", overrides=["objective=3"])
        bad_verbose = compose(config_name="config", overrides=["verbose=loud"])
    with pytest.raises(ConfigError, match="objective must be a metric name or null, got 3"):
        execute(bad_objective, tmp_path)
    with pytest.raises(ConfigError, match="verbose must be true or false, got 'loud'"):
        execute(bad_verbose, tmp_path)
    assert not list(tmp_path.iterdir())
