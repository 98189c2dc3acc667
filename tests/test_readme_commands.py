"""Every `python -m jaxws` command of README.md runs as written (shrunk by appended overrides:
later overrides of a key win, so the command's own arguments all take effect), and the README's
API snippet runs as shown.

Commands the test does not run are named in NOT_RUN_HERE with the test that covers them, or in
RUN_IN_TEST_CLI when tests/test_cli.py already runs exactly their shrunk config end to end, and
the test fails if the README gains a command that is neither run nor named.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from shrunk import TINY_ANOMALY, TINY_CWOLA, TINY_NPLM
from test_cli import SHRUNK_RUNS

from jaxws.cli import CONFIG_DIR, execute

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()

#: the reference Pythia sample the README's `data.paths=[../shared/data/hv-reference]` means
SHARED = next(
    (p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()),
    REPO.parent / "shared",
)


def _pretraining(prefix):
    return [
        f"{prefix}.source.n_background=400",
        f"{prefix}.source.n_signal_per_model=40",
        f"{prefix}.pretrain.n_signal=300",
        f"{prefix}.pretrain.n_background=300",
        f"{prefix}.pretrain.max_epochs=2",
    ]


SHRINK = {
    "hunt": [
        "method.n_background=4000",
        "method.n_signal=60",
        "method.k_folds=2",
        "method.max_epochs=2",
        "method.n_toys=10",
        "method.efficiencies=[1.0,0.1]",
        "tracking=none",
        "tracking.figure_formats=[png]",
    ],
    "cwola": TINY_CWOLA,
    "quickstart": [
        *TINY_CWOLA,
        *_pretraining("method.methods.Transfer"),
        *_pretraining("method.methods.MTL"),
        "method.methods.MTL.tasks.n_signal=20",
        "method.methods.MTL.tasks.n_background=20",
        "method.methods.MTL.meta.max_episodes=2",
    ],
    "transfer": [*TINY_CWOLA, *_pretraining("method")],
    "pythia": [
        *[o for o in TINY_CWOLA if not o.startswith("data.")],
        "data.resolution=8",
        "data.max_events=4000",  # per model: about 2k SR QCD, 3.4k SR signal, enough here
        "study.n_test_signal=500",
        "study.n_test_background=500",
    ],
    "nplm": TINY_NPLM,
    "anomaly": TINY_ANOMALY,
}

#: README commands not run here, and where they are covered; each still composes
#: (test_commands_not_run_here_compose), so a typo in one fails here
NOT_RUN_HERE = {
    # paper scale (GPU, days on a CPU): tests/methods/test_dry_run.py validates them completely
    "python -m jaxws experiment=paper_compare dry_run=true",
    "python -m jaxws experiment=paper_compare",
    "python -m jaxws experiment=paper",
    # your own HDF5 files: tests/data/test_readers.py writes such files and runs a shrunk
    # CWoLa study with data=events
    "python -m jaxws data=events data.background=qcd.h5 +data.signals={my_signal:signal.h5} "
    "data.signal=my_signal",
    # joblib launcher, SLURM and Optuna: tests/track/test_sweep.py composes them, and runs a
    # real two-job sweep through the submitit plugin's local executor
    "python -m jaxws -m hydra/launcher=local training.learning_rate=1e-4,1e-3 seed=0,1",
    "python -m jaxws -m hydra/launcher=slurm hydra.launcher.partition=gpu experiment=paper "
    "seed=0,1,2",
    "python -m jaxws -m experiment=optuna_sweep",
    # the seed's scale (30-60 min): tests/methods/test_dry_run.py validates it completely, and
    # tests/stats/test_anomaly_test.py tests its tabulated toys and Poisson sampler at B = 2.4e5
    "python -m jaxws experiment=anomaly_benchmark",
}


def readme_commands() -> list[str]:
    """`python -m jaxws ...` lines of the README's bash blocks, comments stripped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("python -m jaxws ") or line == "python -m jaxws":
                commands.append(line)
    return commands


def kind(args: list[str]) -> str:
    if "experiment=hunt" in args:
        return "hunt"
    if "experiment=quickstart" in args:
        return "quickstart"
    if "experiment=nplm" in args:
        return "nplm"
    if "method=anomaly" in args or "experiment=anomaly" in args:
        return "anomaly"
    if "method=transfer" in args:
        return "transfer"
    if "data=pythia" in args:
        return "pythia"
    return "cwola"


#: README commands whose shrunk config is exactly one that tests/test_cli.py runs end to end
#: (results.json, figures, metrics), given as that run's overrides: running them here too would
#: train the same studies twice (about 200 s on a loaded 2-core CPU). The test
#: test_readme_command_matches_test_cli proves that each composes to that config, so it runs
#: as written; a README edit to one of them makes it a new command, which is then run here.
RUN_IN_TEST_CLI = {
    # tests/test_cli.py::test_every_method_runs_end_to_end_through_hydra[...]
    "python -m jaxws experiment=quickstart": SHRUNK_RUNS["transfer_and_mtl"],
    "python -m jaxws experiment=anomaly": SHRUNK_RUNS["anomaly"],
    "python -m jaxws experiment=nplm": SHRUNK_RUNS["nplm"],
    # the GPU recipe's chunk and toy counts are shrunk away: the same config as the line above
    "python -m jaxws experiment=nplm method.chunk_size=256 method.n_toys=1024": SHRUNK_RUNS["nplm"],
    "python -m jaxws method=cwola data=pythia data.paths=[../shared/data/hv-reference]": (
        SHRUNK_RUNS["cwola_on_pythia_events"]
    ),
}

COMMANDS = [c for c in readme_commands() if c not in NOT_RUN_HERE and c not in RUN_IN_TEST_CLI]


def test_every_readme_command_is_run_or_named():
    commands = readme_commands()
    assert len(commands) >= 7
    named = NOT_RUN_HERE | set(RUN_IN_TEST_CLI)
    assert set(commands) >= named, named - set(commands)


@pytest.mark.parametrize("command", sorted(RUN_IN_TEST_CLI))
def test_readme_command_matches_test_cli(command):
    """The README command, shrunk as here, composes to the config test_cli runs: the same
    resolved values in every key but `run_name`, which only names the run (its tracker name and
    default output directory; `experiment=quickstart` sets it to "quickstart")."""
    args = shlex.split(command)[3:]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        readme = compose(config_name="config", overrides=[*args, *SHRINK[kind(args)]])
        tested = compose(config_name="config", overrides=list(RUN_IN_TEST_CLI[command]))
    readme, tested = (OmegaConf.to_container(c, resolve=True) for c in (readme, tested))
    readme.pop("run_name")
    tested.pop("run_name")
    # Data paths as the run would open them: the README's relative ones from a checkout beside
    # SHARED (as test_readme_command_runs_as_written lays it out), test_cli's absolute ones.
    checkout = SHARED.parent / "jaxws"
    for cfg, base in ((readme, checkout), (tested, Path("/"))):
        if cfg["data"].get("paths"):
            cfg["data"]["paths"] = [os.path.realpath(base / p) for p in cfg["data"]["paths"]]
    assert readme == tested


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_written(command, tmp_path, monkeypatch):
    """Single runs compose the command's overrides (Hydra's own parser) and execute in this
    process (the `python -m jaxws` entry itself is tested in test_cli); a multirun runs as a
    subprocess and must end with its sweep summary."""
    args = shlex.split(command)[3:]
    # the README's ../shared/... paths resolve as in a checkout beside ../shared
    workdir = tmp_path / "jaxws"
    workdir.mkdir()
    (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(workdir)
    out = tmp_path / "out"
    if "data.observed_file=my.npz" in args:  # the user's arrays of the NPLM recipe
        rng = np.random.default_rng(0)
        np.savez(
            workdir / "my.npz",
            data=rng.exponential(size=(200, 1)),
            reference=rng.exponential(size=(2000, 1)),
        )
    if "-m" not in args:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*args, *SHRINK[kind(args)]])
        metrics = execute(cfg, out)
        assert metrics
        assert (out / "results.json").is_file()
        return
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "jaxws", *args, *SHRINK[kind(args)], f"hydra.sweep.dir={out}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert (
        last == f"jaxws: sweep summary: {out / 'sweep_summary.csv'} and {out / 'sweep_summary.png'}"
    )


@pytest.mark.parametrize("command", sorted(NOT_RUN_HERE))
def test_commands_not_run_here_compose(command):
    """The commands not run here compose as written (Hydra's own parser; with the hydra
    section for multiruns, so the launcher and sweeper groups are resolved too); a swept key
    composes at each of its values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = []
    for override in OverridesParser.create().parse_overrides(
        [a for a in shlex.split(command)[3:] if a != "-m"]
    ):
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
            assert len(values) > 1, override.input_line
            args.append(f"{override.get_key_element()}={values[-1]}")
        else:
            args.append(override.input_line)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=args, return_hydra_config=True)
    assert cfg.method.name
    if "hydra/launcher=slurm" in args:
        assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")


def test_readme_api_snippet_runs_as_shown():
    (snippet,) = re.findall(
        r"```python\n(.*?)```", README.split("**Your own events.**")[1], flags=re.S
    )[:1]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    scores, per_member = namespace["scores"], namespace["per_member"]
    assert scores.shape == (500,)
    assert per_member.shape == (5, 500)
