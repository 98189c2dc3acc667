"""`dry_run=true` composes and validates every README command and the paper-scale script
completely (sections, model, method parts and the events the study design needs) without
training; a design the data cannot fill fails at once, naming the keys to raise."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from jaxws.cli import CONFIG_DIR
from jaxws.config import ConfigError
from jaxws.methods.dry_run import validate

REPO = Path(__file__).resolve().parents[2]


def config(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def readme_commands() -> list[list[str]]:
    """The overrides of every single-run `python -m jaxws ...` command in the README."""
    commands = []
    for line in (REPO / "README.md").read_text().splitlines():
        match = re.match(r"^python -m jaxws(?:\s+(.*?))?\s*(?:#.*)?$", line.strip())
        if match is None:
            continue
        args = shlex.split(match.group(1) or "")
        if "-m" in args or any(a.startswith("hydra.") for a in args):
            continue  # multiruns: their single runs are the commands above them
        commands.append(args)
    return commands


def paper_scale_overrides() -> list[str]:
    """The overrides experiments/paper_scale.sh passes to `python -m jaxws`."""
    text = (REPO / "experiments" / "paper_scale.sh").read_text()
    block = re.search(r"python -m jaxws (.*?) dry_run=true", text, flags=re.S).group(1)
    block = block.replace("\\\n", " ").replace("${RESOLUTION:-25}", "25")
    return shlex.split(block)


def test_readme_lists_commands():
    assert len(readme_commands()) >= 6


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a) or "default")
def test_every_readme_command_validates_completely(args):
    if any(a.startswith("data=pythia") for a in args):
        args = [a for a in args if not a.startswith("data.paths")]
        args.append("data.paths=[../shared/data/hv-reference]")
    lines = validate(config([*args, "tracking=none"]))
    assert lines


def test_paper_scale_script_validates_on_the_reference_sample_shape():
    overrides = paper_scale_overrides()
    assert "experiment=paper_pythia" in overrides
    cfg = config([*overrides, "tracking=none"])
    # The script's own data path holds no shards in a fresh clone: the dry run says how to
    # make them.
    with pytest.raises(ConfigError, match=r"jaxws.simulate.generate"):
        validate(cfg)


def test_pythia_study_without_its_source_shards_names_the_generator(tmp_path):
    cfg = config(
        [
            "experiment=pythia",
            "tracking=none",
            f"data.paths=[../shared/data/hv-reference,{tmp_path}]",
        ]
    )
    with pytest.raises(ConfigError, match=r"python -m jaxws.simulate.generate"):
        validate(cfg)


def test_a_design_the_data_cannot_fill_fails_naming_the_keys():
    cfg = config(["tracking=none", "study=paper"])
    with pytest.raises(ConfigError, match=r"data\.n_background.*data\.n_signal"):
        validate(cfg)


def test_cli_dry_run_writes_nothing_and_exits_zero(tmp_path):
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxws",
            "experiment=paper_compare",
            "dry_run=true",
            "tracking=none",
            f"hydra.run.dir={run_dir}",
            "hydra.output_subdir=null",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "dry run: the configuration is valid" in out.stdout
    assert not (run_dir / "config.json").exists()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxws",
            "study=paper",
            "dry_run=true",
            "tracking=none",
            f"hydra.run.dir={tmp_path / 'bad'}",
            "hydra.output_subdir=null",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "n_background" in bad.stderr
    assert "Traceback" not in bad.stderr
