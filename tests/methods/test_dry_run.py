"""`dry_run=true` composes and validates every README command and the paper-scale script
completely (sections, model, method parts and the events the study design needs) without
training; a design the data cannot fill fails at once, naming the keys to raise."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from jaxws.cli import CONFIG_DIR
from jaxws.config import ConfigError, from_section
from jaxws.methods.dry_run import (
    STORED_SR_FRACTION,
    check_counts,
    generation_plan,
    validate,
)
from jaxws.methods.injection_study import StudyConfig

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
    user_files = [
        f for a in args for f in re.findall(r"[\w./-]+\.(?:h5|npz)", a) if not Path(f).exists()
    ]
    if user_files:
        # A recipe for the user's own files (qcd.h5, my.npz): validated completely, it names
        # the first missing file in one line.
        with pytest.raises(ConfigError, match=re.escape(user_files[0])):
            validate(config([*args, "tracking=none"]))
        return
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


def test_pythia_study_refuses_a_mistyped_override_before_generating(tmp_path):
    """experiments/pythia_study.sh with its source shards missing and a misspelt key: it stops
    at the compose check, before the generator starts (which would take minutes)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `python` as the script calls it: this interpreter (a wrapper, since a symlink to a
    # virtual environment's python leaves the environment)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    shards = tmp_path / "benchmarks"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "PYTHIA_BENCHMARKS": str(shards),
    }
    out = subprocess.run(
        ["bash", "experiments/pythia_study.sh", "study.n_pseudo_experimnts=3"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert out.returncode != 0
    assert "n_pseudo_experimnts" in out.stderr
    assert "generating" not in out.stdout
    assert not shards.exists()


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


def _expected_counts(stored: dict[str, float]) -> dict:
    """SR/SB counts of `stored` events at the measured SR shares, less 3 binomial sigmas."""
    out = {}
    for sample, n in stored.items():
        f = STORED_SR_FRACTION[sample]
        margin = 3.0 * (n * f * (1 - f)) ** 0.5
        out[sample] = {"SR": n * f - margin, "SB": n * (1 - f) - margin}
    out["fraction_sr_background"] = STORED_SR_FRACTION["background"]
    return out


def test_paper_scale_generation_plan_passes_the_studys_own_dry_run():
    cfg = config(["experiment=paper_pythia", "tracking=none"])
    study = from_section(StudyConfig, cfg.study, "study")
    extra = int(cfg.method.methods.MTL.source.n_background)  # the larger source sample
    plan = generation_plan(cfg)
    per_shard, shards = plan["qcd"]
    planned = _expected_counts({"background": per_shard * shards, "signal": plan["signal"]})
    assert check_counts(planned, study, "pythia", extra)
    # The recipe the script used to print (8 x 60k QCD, 25k per signal) leaves no source
    # background: its dry run refused after the generation.
    old = _expected_counts({"background": 8 * 60_000, "signal": 25_000})
    with pytest.raises(ConfigError, match="source background"):
        check_counts(old, study, "pythia", extra)
    # Not more than needed: 10% fewer QCD events fail.
    fewer = _expected_counts({"background": 0.9 * per_shard * shards, "signal": plan["signal"]})
    with pytest.raises(ConfigError, match="source background"):
        check_counts(fewer, study, "pythia", extra)


@pytest.mark.parametrize("experiment", ["paper_luminosity", "paper_gpu"])
def test_paper_luminosity_and_gpu_slice_validate(experiment):
    cfg = config([f"experiment={experiment}", "tracking=none"])
    lines = validate(cfg)
    assert any("background SR: need 45000" in line for line in lines)
    assert cfg.study.n_background_sr == 25000
    assert cfg.study.n_test_signal == cfg.study.n_test_background == 20000


def test_paper_scripts_dry_runs_pass():
    env = {**os.environ, "PYTHON": sys.executable, "DRY": "1", "JAX_PLATFORMS": "cpu"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    for script, args in (("paper_scale.sh", []), ("paper_gpu.sh", ["dry"])):
        out = subprocess.run(
            ["bash", str(REPO / "experiments" / script), *args],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        if script == "paper_scale.sh":
            assert out.stdout.splitlines()[0].startswith("models=[qcd] events=")
        else:
            assert (
                out.stdout.count("configuration is valid")
                + out.stderr.count("configuration is valid")
                + out.stderr.count("config valid")
                >= 2
            )


def test_pythia_paper_luminosity_without_its_generated_signals_names_the_generator(tmp_path):
    cfg = config(
        [
            "experiment=paper_luminosity_pythia",
            "tracking=none",
            f"data.paths=[../shared/data/hv-reference,../shared/data/qcd-extra,{tmp_path}]",
        ]
    )
    assert cfg.study.reserve_background_sr == 17000
    with pytest.raises(ConfigError, match=r"jaxws.simulate.generate"):
        validate(cfg)


def test_source_models_with_too_few_signal_region_events_are_refused_before_training():
    # A paper-luminosity Pythia run once trained CWoLa for 25 minutes and then stopped at
    # "source model id_lambda1: 1382 signal-region events available, 1400 needed".
    from types import SimpleNamespace

    from jaxws.methods.dry_run import check_source_models

    source = SimpleNamespace(
        config=SimpleNamespace(paths=["../shared/data/hv-reference"], signal="id_lambda10"),
        model_names=lambda: ["id_lambda10", "dd_lambda10"],
    )
    assert "1 found" in check_source_models(source, 4267)  # hv-reference: 4,267 DD SR events
    with pytest.raises(ConfigError, match=r"'dd_lambda10': 4267"):
        check_source_models(source, 4268)


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("nplm", ["the NPLM toys of one chunk"]),
        ("anomaly", ["simulated events", "the toys of one compiled call"]),
        ("hunt", ["the events and the members' data", "the toys"]),
    ],
)
def test_dry_run_reports_the_memory_estimates_it_checked(experiment, expected):
    """The memory estimates that refuse an oversized run are also what the dry run reports."""
    lines = validate(config([f"experiment={experiment}", "tracking=none"]))
    assert len(lines) == len(expected), lines
    for line, what in zip(lines, expected, strict=True):
        assert what in line, line
        assert re.search(r"about \d+\.\d\d GiB \(\d+\.\d free\)", line), line
