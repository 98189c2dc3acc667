"""Bad inputs and faults through the real entry points (issue 13).

Each case feeds one mistake a careful user could make (or one fault of the machine) to a real
entry point: `python -m jaxws`, `python -m jaxws.simulate.generate`, the HDF5 loaders,
`weak_supervision`, NPLM `.npz` files, the tracker and the chunk checkpoints. A command-line
case must exit with code 2 (130 for Ctrl-C), print one line naming the culprit and no
traceback, and leave earlier files byte for byte as they were; an API case must raise
`ConfigError` naming the culprit. Command-line refusals happen before jax compiles anything;
the config cases run `jaxws.cli.main()` in this process (one of them also as a process start),
the others as processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from margins import TRAINED, member_auc_se, record
from shrunk import TINY_ANOMALY, TINY_CWOLA, TINY_NPLM

from jaxws.config import ConfigError
from jaxws.data.shards import ShardError, load_events, read_shard, write_shard

REPO = Path(__file__).resolve().parent.parent
TINY = TINY_CWOLA


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "JAXWS_JAX_CACHE": ""}


def _run(module: str, args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=240,
        **kwargs,
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def _assert_refused(result, *names: str, code: int = 2) -> None:
    text = result.stderr + result.stdout
    assert result.returncode == code, text
    assert "Traceback" not in text, text
    lines = [line for line in result.stderr.splitlines() if line.startswith("jaxws")]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])


def _finished_run(run_dir: Path) -> dict[str, bytes]:
    """A directory as a finished run leaves it (contents are placeholders)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (run_dir / "config.json").write_text(json.dumps({"seed": 0}))
    (run_dir / "results.json").write_text(json.dumps({"z": 1.0}))
    (run_dir / "metrics.jsonl").write_text('{"step": null, "z": 1.0}\n')
    return _snapshot(run_dir)


# ------------------------------------------------------------------ python -m jaxws: config

CONFIG_CASES = {
    "negative learning rate": (["training.learning_rate=-0.1"], ["training.learning_rate"]),
    "negative seed": (["seed=-1"], ["seed"]),
    "unknown top-level key": (["+colour=blue"], ["colour"]),
    "negative injection": (["study.injections=[0,-5]"], ["study.injections"]),
    "unknown signal model": (["data.signal=nosuch"], ["data.signal", "nosuch"]),
    "unknown method": (["method.name=nosuch"], ["method.name", "nosuch"]),
    "string batch size": (["training.batch_size=big"], ["training.batch_size"]),
    "too few simulated events": (["data.n_signal=100"], ["data.n_signal"]),
    "unknown tracking mode": (["tracking.mode=sometimes"], ["tracking.mode"]),
    "typo in a key": (["trainng.patience=3"], ["trainng"]),
    "key the training schema lacks": (["training.learning_rat=1"], ["training.learning_rat"]),
    "key forced past the schema": (["+training.learning_rat=1"], ["training.learning_rat"]),
    "MLP key under a CNN": (["model.hidden=3"], ["model.hidden", "JetCNNSection"]),
    "unknown config group option": (["model=resnet"], ["model", "resnet"]),
    "missing shard directory": (
        ["data=pythia", "data.paths=[/nonexistent/shards]"],
        ["data.paths", "/nonexistent/shards"],
    ),
    "negative max_events": (["data=pythia", "data.max_events=-3"], ["data.max_events"]),
}
PYTHIA_TINY = [o for o in TINY if not o.startswith("data.")]


def _main_in_process(
    args: list[str], cwd: Path, monkeypatch, capfd, module: str = "jaxws.cli"
) -> subprocess.CompletedProcess:
    """`python -m jaxws ARGS` (or another Hydra entry point's `module.main()`) in this
    process: its exit code (the `SystemExit` it ends with) and what it printed. The same code
    as a process start without the 2 s of starting Python and importing jax; `_run` keeps the
    process-level cases."""
    import importlib

    main = importlib.import_module(module).main
    monkeypatch.chdir(cwd)
    # Hydra's logging setup (`logging.config.dictConfig`) would close this process's existing
    # handlers, pytest's among them; the refusals do not depend on it.
    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", [module, *args, *quiet])
    capfd.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(args, ended.value.code, out, err)


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_cli_refuses_bad_config_before_writing(case, tmp_path, monkeypatch, capfd):
    overrides, names = CONFIG_CASES[case]
    run_dir = tmp_path / "run"
    base = PYTHIA_TINY if "data=pythia" in overrides else TINY
    args = [*base, *overrides, f"hydra.run.dir={run_dir}"]
    result = _main_in_process(args, tmp_path, monkeypatch, capfd)
    _assert_refused(result, *names)
    assert not run_dir.exists()  # nothing written, not even Hydra's record or the directory
    if case == "negative learning rate":  # one case as a real process start, too
        _assert_refused(_run("jaxws", args, tmp_path), *names)
        assert not run_dir.exists()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["experiment=nplm", "training.learning_rate=1"], "training.learning_rate"),
        (["experiment=anomaly", "model=mlp"], "model"),
    ],
)
def test_cli_refuses_sections_the_method_does_not_read(
    overrides, key, tmp_path, monkeypatch, capfd
):
    run_dir = tmp_path / "run"
    args = [*overrides, f"hydra.run.dir={run_dir}"]
    result = _main_in_process(args, tmp_path, monkeypatch, capfd)
    method = overrides[0].split("=")[1]
    _assert_refused(result, f"{key} does not apply to method={method}")
    assert not run_dir.exists()


def test_cli_leaves_a_finished_run_and_its_hydra_record_untouched(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    before = _finished_run(run_dir)
    for overrides in (["seed=7"], ["training.learning_rate=-1"]):
        args = [*TINY, *overrides, f"hydra.run.dir={run_dir}"]
        result = _main_in_process(args, tmp_path, monkeypatch, capfd)
        _assert_refused(result, str(run_dir))
        assert _snapshot(run_dir) == before


def test_cli_resumes_only_with_the_interrupted_runs_config(tmp_path, monkeypatch, capfd):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"seed": 5}))
    before = _snapshot(run_dir)
    args = [*TINY, f"hydra.run.dir={run_dir}"]
    result = _main_in_process(args, tmp_path, monkeypatch, capfd)
    _assert_refused(result, "interrupted run with another config", "seed")
    assert _snapshot(run_dir) == before


def test_resume_accepts_the_interrupted_runs_own_config(tmp_path):
    """The config.json the tracker wrote for a run is accepted again (tracking may differ)."""
    from hydra import compose, initialize_config_dir

    from jaxws.cli import CONFIG_DIR, _resolved, check_run_directory
    from jaxws.track import Tracker

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        first = compose(config_name="config", overrides=TINY)
        other_tracking = compose(config_name="config", overrides=[*TINY, "tracking=wandb"])
    Tracker(tmp_path, _resolved(first))  # what an interrupted run leaves
    check_run_directory(tmp_path, _resolved(first))
    check_run_directory(tmp_path, _resolved(other_tracking))


def test_cli_refuses_a_directory_that_another_run_holds(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".jaxws.lock", "w") as lock:  # what a running jaxws holds
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = _run("jaxws", [*TINY, f"hydra.run.dir={run_dir}"], tmp_path)
    _assert_refused(result, "in use by another running jaxws run")
    assert sorted(p.name for p in run_dir.iterdir()) == [".jaxws.lock"]


def test_cli_names_an_unusable_run_directory(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    result = _run("jaxws", [*TINY, f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"], tmp_path)
    _assert_refused(result, str(tmp_path / "a_file" / "run"), "Not a directory")


def test_cli_names_the_file_when_the_disk_is_full(tmp_path):
    """RLIMIT_FSIZE makes every write past 64 bytes fail with EFBIG, as a full quota does."""
    import resource

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    run_dir = tmp_path / "run"
    result = _run("jaxws", [*TINY, f"hydra.run.dir={run_dir}"], tmp_path, preexec_fn=small_files)
    _assert_refused(result, str(run_dir / ".hydra" / "config.yaml"), "File too large")
    leftovers = [p.name for p in run_dir.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers  # no temporary or half-written file


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    # Long enough that the run is still training when the signal arrives, however fast the
    # machine: a run that finished first would (rightly) not be interrupted.
    long_run = [*TINY, "training.max_epochs=500", "training.patience=500"]
    process = subprocess.Popen(
        [sys.executable, "-m", "jaxws", *long_run, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell's background job would inherit SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    while not (run_dir / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # Into the training, when XLA's threads are busy: leaving the interpreter under them used
    # to crash (exit -11), and an interrupt caught in a finalizer used to be lost.
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    _assert_refused(result, "interrupted", f"hydra.run.dir={run_dir}", code=130)
    assert not (run_dir / "results.json").exists()


# ------------------------------------------------------------------ python -m jaxws: data


def _arrays(n=400, width=8, seed=0, label=0):
    rng = np.random.default_rng(seed)
    pt = np.sort(rng.exponential(20.0, (n, 2, width)), axis=-1)[..., ::-1]
    const = np.stack([pt, rng.normal(0, 0.3, pt.shape), rng.normal(0, 0.3, pt.shape)], -1)
    mjj = rng.uniform(4400, 5800, n)
    return dict(
        constituents=const,
        n_constituents=np.full((n, 2), width),
        pt_truncated=np.zeros((n, 2)),
        jets=np.abs(rng.normal(size=(n, 2, 4))),
        mjj=mjj,
        region=np.where((mjj >= 4700) & (mjj < 5500), 0, 1),
        label=np.full(n, label),
        model_id=np.full(n, -1 if label == 0 else 2),
        seed=np.full(n, 7),
        event_index=np.arange(n),
    )


def _raw_shard(path: Path, arrays: dict, sample: str) -> Path:
    """Write a shard without the writer's checks, as another tool might."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, array in arrays.items():
            f.create_dataset(name, data=array)
        f.attrs["sample"] = sample
    return path


def _spoiled(kind: str) -> dict:
    arrays = _arrays()
    if kind == "nan_pt":
        arrays["constituents"][:, :, :, 0] = np.nan
    elif kind == "inf_mjj":
        arrays["mjj"][5] = np.inf
    elif kind == "region_7":
        arrays["region"][3] = 7
    elif kind == "label_3":
        arrays["label"][9] = 3
    elif kind == "negative_count":
        arrays["n_constituents"][4, 0] = -1
    elif kind == "string_mjj":
        arrays["mjj"] = np.array([b"heavy"] * len(arrays["mjj"]))
    elif kind == "nan_jets":
        arrays["jets"][11, 1, 2] = np.nan
    return arrays


SHARD_CASES = {
    "nan_pt": ["'constituents'", "NaN or inf", "400 of 400", "first at event 0"],
    "inf_mjj": ["'mjj'", "1 of 400", "first at event 5"],
    "region_7": ["'region'", "outside [0, 1]", "first at event 3"],
    "label_3": ["'label'", "outside [0, 1]", "first at event 9"],
    "negative_count": ["'n_constituents'", "negative", "first at event 4"],
    "string_mjj": ["'mjj'", "dtype", "floating-point"],
    "nan_jets": ["'jets'", "first at event 11"],
}


@pytest.mark.parametrize("kind", sorted(SHARD_CASES))
def test_hdf5_loader_refuses_bad_values_naming_file_dataset_and_index(kind, tmp_path):
    path = _raw_shard(tmp_path / "bad" / "qcd.h5", _spoiled(kind), "qcd")
    with pytest.raises(ShardError) as error:
        load_events(tmp_path / "bad")
    assert str(path) in str(error.value)
    for name in SHARD_CASES[kind]:
        assert name in str(error.value)
    with pytest.raises(ShardError):  # the writer refuses the same numbers
        write_shard(tmp_path / "out.h5", _spoiled(kind), {})
    assert not (tmp_path / "out.h5").exists()


def test_cli_refuses_a_shard_with_nan_before_writing(tmp_path):
    good = _arrays(n=600)
    _raw_shard(tmp_path / "shards" / "qcd.h5", good, "qcd")
    bad = _raw_shard(tmp_path / "shards" / "sig.h5", _spoiled("nan_pt"), "id_lambda10")
    run_dir = tmp_path / "run"
    result = _run(
        "jaxws",
        [
            *PYTHIA_TINY,
            "data=pythia",
            f"data.paths=[{tmp_path / 'shards'}]",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    _assert_refused(result, str(bad), "'constituents'", "NaN or inf")
    assert not run_dir.exists()


def test_hdf5_loader_names_empty_shards_and_bad_arguments(tmp_path):
    empty = {k: v[:0] for k, v in _arrays().items()}
    write_shard(tmp_path / "empty" / "qcd.h5", empty, {"sample": "qcd"})
    with pytest.raises(ShardError, match="hold no events"):
        load_events(tmp_path / "empty", models=["qcd"])
    write_shard(tmp_path / "ok" / "qcd.h5", _arrays(), {"sample": "qcd"})
    for max_events in (-1, 0):
        with pytest.raises(ShardError, match="max_events for 'qcd' must be a positive integer"):
            load_events(tmp_path / "ok", max_events=max_events)
    with pytest.raises(ShardError, match=r"regions must be 0 \(SR\) and/or 1 \(SB\), got \[2\]"):
        load_events(tmp_path / "ok", regions=[0, 2])
    text = tmp_path / "text" / "qcd.h5"
    text.parent.mkdir()
    text.write_text("not hdf5")
    with pytest.raises(ShardError, match=f"{text}: not a readable HDF5 file"):
        read_shard(text)


# ------------------------------------------------------------------ generation CLI

GENERATE_CASES = {
    "unknown model": (["models=[nosuch]"], ["models", "nosuch"]),
    "zero events": (["events=0"], ["events must be a positive integer"]),
    "negative seed": (["seeds=[-1]"], ["seeds", "-1"]),
    "unknown selection key": (["+selection.foo=1"], ["foo", "selection"]),
    "impossible decay": (["models=[id_lambda10_ratio99]"], ["id_lambda10_ratio99", "m_pi"]),
    "jet radius": (["selection.jet_radius=5"], ["jet_radius"]),
    "zero processes": (["processes=0"], ["processes"]),
    "negative smearing": (["smearing.cell=-1"], ["smearing", "cell"]),
}


@pytest.mark.parametrize("case", sorted(GENERATE_CASES))
def test_generate_cli_refuses_bad_config_before_generating(case, tmp_path, monkeypatch, capfd):
    overrides, names = GENERATE_CASES[case]
    out = tmp_path / "shards"
    args = [*overrides, f"out={out}", "progress=false"]
    module = "jaxws.simulate.generate"
    if case == "zero events":  # one case as a real process start (with Hydra's logging)
        result = _run(module, args, tmp_path)
    else:
        result = _main_in_process(args, tmp_path, monkeypatch, capfd, module)
    _assert_refused(result, *names)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no Hydra outputs either


def test_generate_cli_refuses_an_output_path_that_is_a_file(tmp_path):
    (tmp_path / "shards").write_text("a file")
    result = _run("jaxws.simulate.generate", [f"out={tmp_path / 'shards'}"], tmp_path)
    _assert_refused(result, "is not a directory")
    assert (tmp_path / "shards").read_text() == "a file"


# ------------------------------------------------------------------ weak_supervision


def _mixed(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 1, (n, d)), rng.normal(0, 1, (n, d))


def _ws_case(kind: str):
    a, b = _mixed()
    kwargs = {}
    if kind == "nan_lr":
        kwargs["learning_rate"] = float("nan")
    elif kind == "zero_lr":
        kwargs["learning_rate"] = 0.0
    elif kind == "negative_lr":
        kwargs["learning_rate"] = -1e-3
    elif kind == "negative_seed":
        kwargs["seed"] = -1
    elif kind == "zero_members":
        kwargs["n_members"] = 0
    elif kind == "validation_fraction":
        kwargs["validation_fraction"] = 1.5
    elif kind == "nan_event":
        a[17, 1] = np.nan
    elif kind == "strings":
        a = np.array([["x", "y", "z"]] * 60)
    elif kind == "one_dimensional":
        a = a[:, 0]
    elif kind == "too_few":
        a = a[:5]
    elif kind == "feature_mismatch":
        b = b[:, :2]
    return a, b, kwargs


WS_CASES = {
    "nan_lr": ["learning_rate", "nan"],
    "zero_lr": ["learning_rate", "0.0"],
    "negative_lr": ["learning_rate", "-0.001"],
    "negative_seed": ["seed", "-1"],
    "zero_members": ["n_members"],
    "validation_fraction": ["validation_fraction", "1.5"],
    "nan_event": ["mixed_a", "1 of 60 events", "first at index 17"],
    "strings": ["mixed_a", "numbers"],
    "one_dimensional": ["mixed_a", "shape"],
    "too_few": ["mixed_a", "5 events"],
    "feature_mismatch": ["mixed_b", "feature shapes"],
}


@pytest.mark.parametrize("kind", sorted(WS_CASES))
def test_weak_supervision_refuses_bad_arguments_naming_them(kind):
    from jaxws.methods.cwola import weak_supervision

    a, b, kwargs = _ws_case(kind)
    with pytest.raises(ConfigError) as error:
        weak_supervision(a, b, **kwargs)
    for name in WS_CASES[kind]:
        assert name in str(error.value), (name, str(error.value))


# ------------------------------------------------------------------ NPLM observed files


def _nplm_cfg(observed: Path, test: str = "nplm"):
    from hydra import compose, initialize_config_dir

    from jaxws.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "experiment=nplm",
                "tracking=none",
                f"method.test={test}",
                "data.n_expected=50",
                f"data.observed_file={observed}",
            ],
        )


def _npz_case(kind: str, path: Path) -> list[str]:
    rng = np.random.default_rng(1)
    reference = rng.exponential(size=500)
    if kind == "text":
        path.write_text("data,reference\n1,2\n")
        return ["not a readable .npz", "pickle"]
    if kind == "missing_array":
        np.savez(path, data=reference[:50])
        return ["lacks arrays ['reference']"]
    if kind == "one_event":
        np.savez(path, data=reference[:1], reference=reference[:1])
        return ["array 'data' has 1 event", "at least"]
    if kind == "nan":
        data = reference[:50].copy()
        data[7] = np.nan
        np.savez(path, data=data, reference=reference)
        return ["'data'", "NaN or inf", "first at index 7"]
    if kind == "strings":
        np.savez(path, data=np.array(["a"] * 50), reference=reference)
        return ["array 'data'", "not a numeric array"]
    if kind == "outside_support":
        big = rng.exponential(size=12000)  # enough reference events to draw null toys from
        np.savez(path, data=-big[:50], reference=big)
        return ["outside the reference support"]
    if kind == "small_reference":
        np.savez(path, data=reference[:50], reference=reference[:100])
        return ["the reference holds 100 effective events", "5 x N(R)"]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["text", "missing_array", "one_event", "nan", "strings", "small_reference", "outside_support"],
)
def test_nplm_observed_file_is_checked_before_any_toy(kind, tmp_path):
    from jaxws import methods

    path = tmp_path / "observed.npz"
    names = _npz_case(kind, path)
    module = methods.load("nplm")
    with pytest.raises(ConfigError) as error:
        methods.validate(module, _nplm_cfg(path))
    assert str(path) in str(error.value)
    for name in names:
        assert name in str(error.value), (name, str(error.value))


# ------------------------------------------------------------------ faults


def test_truncated_chunk_checkpoint_is_named_set_aside_and_recomputed(tmp_path):
    from jaxws.train import resume

    tree = {"w": np.arange(6.0).reshape(2, 3)}
    path = resume.save_chunk(tmp_path, 0, "tag", tree)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(UserWarning, match=f"checkpoint {path} is unreadable"):
        assert resume.load_chunk(tmp_path, 0, "tag", tree) is None
    assert (tmp_path / "chunk_00000.npz.corrupt").is_file()
    assert not path.exists()
    resume.save_chunk(tmp_path, 0, "tag", tree)
    np.testing.assert_array_equal(resume.load_chunk(tmp_path, 0, "tag", tree)["w"], tree["w"])


def test_unwritable_checkpoint_directory_is_named(tmp_path):
    from jaxws.train import resume

    (tmp_path / "checkpoints").write_text("a file where a directory should be")
    with pytest.raises(OSError, match=f"cannot create directory {tmp_path / 'checkpoints'}"):
        resume.save_chunk(tmp_path / "checkpoints" / "cwola", 0, "tag", {"w": np.zeros(2)})


def test_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    from jaxws.files import atomic_write_json

    path = atomic_write_json(tmp_path / "results.json", {"z": 1})
    (tmp_path / "figures").write_text("in the way")
    with pytest.raises(OSError, match=f"{tmp_path / 'figures' / 'a.png'}"):
        atomic_write_json(tmp_path / "figures" / "a.png", {})
    assert json.loads(path.read_text()) == {"z": 1}


def test_wandb_failure_is_reported_once_and_local_files_continue(tmp_path, capsys):
    from jaxws.track import Tracker, TrackingConfig

    (tmp_path / "wandb").write_text("a file where W&B wants its directory")
    tracker = Tracker(tmp_path, {"seed": 1}, TrackingConfig(mode="offline"), name="unit")
    tracker.log_metrics({"auc": 0.7})
    tracker.save_table("study", [{"injection": 0, "z": 0.0}])
    tracker.finish()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "W&B failed" in line]
    assert len(warnings) == 1
    assert "continuing with local files" in warnings[0]
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"auc": 0.7}
    assert (tmp_path / "study.csv").is_file()


def test_resumed_tracker_does_not_duplicate_metric_lines(tmp_path):
    from jaxws.track import Tracker

    for _ in range(2):  # an interrupted run, then its resumption
        tracker = Tracker(tmp_path, {"seed": 1})
        tracker.log_metrics({"auc": 0.7}, step=0)
        tracker.log_metrics({"z": 2.0})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 0, "auc": 0.7},
        {"step": None, "z": 2.0},
    ]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_get_the_umask_permissions(umask, tmp_path):
    from jaxws.data.shards import write_json_atomic
    from jaxws.files import atomic_write_bytes

    old = os.umask(umask)
    try:
        written = [
            atomic_write_bytes(tmp_path / "a.bin", b"x"),
            tmp_path / "b.json",
            tmp_path / "qcd.h5",
        ]
        write_json_atomic(written[1], {"a": 1})
        write_shard(written[2], _arrays(n=10), {"sample": "qcd"})
    finally:
        os.umask(old)
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


# ------------------------------------------------------------------ diverged members


def _ensemble(rates):
    import jax
    import jax.numpy as jnp

    from jaxws.models.mlp import MLP
    from jaxws.train import Hparams, MemberData, TrainConfig, fit_ensemble

    a, b = _mixed(n=200, d=4, seed=3)
    pool = np.concatenate([a, b]).astype(np.float32)
    labels = np.concatenate([np.ones(len(a)), np.zeros(len(b))]).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(pool))
    val, train = order[:80], order[80:]
    member = MemberData.from_arrays(train, labels[train], val, labels[val])
    members = jax.tree.map(lambda *x: np.stack(x), *[member] * len(rates))
    keys = jax.random.split(jax.random.key(0), len(rates))
    config = TrainConfig(batch_size=64, max_epochs=4, patience=4)
    rates = jnp.asarray(rates, jnp.float32)
    return fit_ensemble(keys, MLP(), pool, members, Hparams(rates), config)


def test_diverged_members_are_flagged_and_neighbours_are_bitwise_unchanged():
    import jax

    from jaxws.methods.injection_study import diverged_members

    healthy = _ensemble([3e-3, 3e-3, 3e-3, 3e-3])
    broken = _ensemble([3e-3, float("nan"), 1e7, 3e-3])
    reasons = diverged_members(broken)
    assert reasons[0] == reasons[3] == ""
    assert reasons[1] == "loss not finite from epoch 0"
    assert reasons[2].startswith("never improved") or reasons[2].startswith("loss not finite")
    assert diverged_members(healthy) == [""] * 4
    for member in (0, 3):
        for got, want in zip(
            jax.tree.leaves(jax.tree.map(lambda v, m=member: np.asarray(v[m]), broken.variables)),
            jax.tree.leaves(jax.tree.map(lambda v, m=member: np.asarray(v[m]), healthy.variables)),
            strict=True,
        ):
            assert np.array_equal(got, want)


def test_study_means_leave_diverged_members_out_and_count_them(capsys):
    from jaxws.methods.injection_study import StudyResult, report_diverged, summarise

    injection = np.array([0, 0, 0, 100, 100, 100])
    best_z = np.array([0.1, 0.2, 9e9, 5.5, 6.0, 5.0])
    result = StudyResult(
        injection=injection,
        experiment=np.array([0, 1, 2, 0, 1, 2]),
        initial_z=injection / 20.0,
        auc=np.array([0.5, 0.5, 0.1, 0.7, 0.8, 0.9]),
        background_efficiencies=np.array([0.1]),
        signal_efficiencies=np.full((6, 1), 0.1),
        final_z=best_z[:, None],
        best_z=best_z,
        epochs=np.full(6, 3),
        diverged=["", "", "loss not finite from epoch 2", "", "", ""],
    )
    metrics, rows = summarise({"CWoLa": result})
    assert metrics["cwola/n_diverged"] == 1
    assert rows[0]["final_z_mean"] == pytest.approx(0.15)
    assert rows[0]["n_diverged"] == 1
    assert rows[0]["final_z_std"] == pytest.approx(np.std([0.1, 0.2], ddof=1))
    assert rows[1]["final_z_mean"] == pytest.approx(5.5)
    assert rows[1]["n_diverged"] == 0
    assert metrics["cwola/no_signal_auc_mean"] == pytest.approx(0.5)
    # Runs 0 and 1 have no diverged member and reach 5 sigma; run 2 is left out.
    assert metrics["cwola/runs_reaching_5sigma"] == 2
    flagged = report_diverged({"CWoLa": result})
    assert [row["member"] for row in flagged] == [2]
    err = capsys.readouterr().err
    assert "CWoLa: 1 of 6 members diverged" in err
    assert "member 2 (injection 0" in err


# ------------------------------------------------------------------ reproducibility


@pytest.mark.statistical
def test_last_bit_changes_move_numbers_only_within_tolerance():
    """What another machine's rounding does, on this machine: every input moved by one float32
    ulp. The scores no longer agree bit for bit (so neither can two machines be expected to),
    but the classifier's quality agrees within 0.02 in AUC (the README's tolerance statement).
    Same inputs, same bits: tests/methods/test_cwola.py, test_weak_supervision_is_deterministic.
    """
    from jaxws.methods.cwola import weak_supervision
    from jaxws.stats import roc
    from jaxws.train import TrainConfig

    rng = np.random.default_rng(5)
    a = np.concatenate([rng.normal(1.0, 1, (150, 4)), rng.normal(0, 1, (150, 4))])
    b = rng.normal(0, 1, (300, 4))
    a, b = a.astype(np.float32), b.astype(np.float32)
    test = np.concatenate([rng.normal(1.0, 1, (500, 4)), rng.normal(0, 1, (500, 4))])
    truth = np.concatenate([np.ones(500), np.zeros(500)])
    config = TrainConfig(batch_size=100, max_epochs=4, patience=4)

    def fit(x_a, x_b):
        # inputs="raw" (the default today): the rank-based inputs="quantile" absorbs most of
        # the nudge (scores then differ by at most 7e-7 here), hiding what rounding does.
        return weak_supervision(
            x_a, x_b, n_members=3, seed=1, learning_rate=3e-3, config=config, inputs="raw"
        )

    first = fit(a, b)
    nudged = fit(np.nextafter(a, np.inf), np.nextafter(b, np.inf))
    scores = [s(test.astype(np.float32)) for s in (first, nudged)]
    assert not np.array_equal(scores[0], scores[1])
    auc = [roc.area_under_curve(roc.roc_curve(s, truth)) for s in scores]
    # The ensembles' seed spread (members' spread / sqrt(3)): with the test sample's error for
    # the AUC itself, without it for the difference of two AUCs on the same events.
    members = [s.member_scores(test.astype(np.float32)) for s in (first, nudged)]
    record(
        "AUC > 0.65",
        auc[0],
        0.65,
        member_auc_se(members[0], truth),
        TRAINED,
        se_from="3 member seeds / sqrt(3) + test sample",
    )
    se_difference = np.hypot(*(member_auc_se(m, truth, same_events=True) for m in members))
    record(
        "|AUC - nudged AUC| < 0.02",
        abs(auc[0] - auc[1]),
        0.02,
        se_difference,
        TRAINED,
        False,
        "3 member seeds / sqrt(3), both runs",
    )
    assert auc[0] > 0.65
    assert abs(auc[0] - auc[1]) < 0.02, auc


# ------------------------------------------------- issue 21: inputs that still escaped


def _events_file(path: Path, n: int, n_signal_region: int, drop: str = "") -> Path:
    """A tiny HDF5 events file: n events, the first n_signal_region of them in the SR."""
    import h5py

    rng = np.random.default_rng(0)
    constituents = np.zeros((n, 2, 4, 3), np.float32)
    constituents[..., 0] = rng.uniform(1.0, 10.0, (n, 2, 4))
    arrays = {
        "constituents": constituents,
        "jets": rng.uniform(1.0, 2.0, (n, 2, 4)).astype(np.float32),
        "mjj": rng.uniform(3000.0, 4000.0, n).astype(np.float32),
        "region": np.where(np.arange(n) < n_signal_region, 0, 1).astype(np.int8),
    }
    with h5py.File(path, "w") as file:
        for name, value in arrays.items():
            if name != drop:
                file[name] = value
    return path


def _events_overrides(background: Path, signals: dict[str, Path], target: str) -> list[str]:
    listed = ",".join(f"{name}:{path}" for name, path in signals.items())
    return [
        "tracking=none",
        "data=events",
        f"data.background={background}",
        f"+data.signals={{{listed}}}",
        f"data.signal={target}",
        "data.resolution=8",
        "study.n_background_sr=200",
        "study.injections=[0,50]",
        "study.n_pseudo_experiments=1",
        "study.n_test_signal=100",
        "study.n_test_background=100",
    ]


@pytest.mark.parametrize("fault", ["missing background", "missing signal", "no jets dataset"])
def test_cli_refuses_events_files_it_cannot_use(fault, tmp_path, monkeypatch, capfd):
    background = _events_file(tmp_path / "bkg.h5", 800, 400)
    signal = _events_file(tmp_path / "sig.h5", 300, 250)
    name = "bkg.h5"
    if fault == "missing background":
        background, name = tmp_path / "nosuch_bkg.h5", "nosuch_bkg.h5"
    elif fault == "missing signal":
        signal, name = tmp_path / "nosuch_sig.h5", "nosuch_sig.h5"
    else:
        _events_file(background, 800, 400, drop="jets")
    run_dir = tmp_path / "run"
    overrides = _events_overrides(background, {"sig": signal}, "sig")
    args = [*overrides, f"hydra.run.dir={run_dir}"]
    result = _main_in_process(args, tmp_path, monkeypatch, capfd)
    _assert_refused(result, name, *(["jets"] if fault == "no jets dataset" else []))
    assert not (run_dir / "results.json").exists()


def test_events_with_too_few_source_background_are_refused_by_the_dry_run(
    tmp_path, monkeypatch, capfd
):
    # 700 SR background events: the study takes 300 (test 100 + 200), transfer's source
    # sample asks for 3000 more (the run trained CWoLa for minutes before failing).
    background = _events_file(tmp_path / "bkg.h5", 900, 700)
    signals = {
        "target": _events_file(tmp_path / "target.h5", 300, 250),
        "other": _events_file(tmp_path / "other.h5", 600, 500),
    }
    overrides = _events_overrides(background, signals, "target")
    for extra in (["dry_run=true"], []):
        run_dir = tmp_path / f"run{len(extra)}"
        args = [*overrides, "method=transfer", *extra, f"hydra.run.dir={run_dir}"]
        result = _main_in_process(args, tmp_path, monkeypatch, capfd)
        _assert_refused(result, "source background", "3000")
        assert not (run_dir / "results.json").exists()


def test_events_source_model_with_too_few_signal_region_events_is_refused(tmp_path):
    from omegaconf import OmegaConf

    from jaxws.methods.dry_run import check_source_signals
    from jaxws.simulate.sources import make_source

    background = _events_file(tmp_path / "bkg.h5", 900, 700)
    signals = {
        "target": _events_file(tmp_path / "target.h5", 300, 250),
        "other": _events_file(tmp_path / "other.h5", 300, 20),
    }
    data = OmegaConf.create(
        {
            "_target_": "jaxws.data.readers.EventsSource",
            "background": str(background),
            "signals": {k: str(v) for k, v in signals.items()},
            "signal": "target",
            "resolution": 8,
        }
    )
    config = make_source(data).config
    assert config.region_counts()["signal:other"] == {"all": 300, "SR": 20, "SB": 280}
    with pytest.raises(ConfigError, match=r"'other'.*20 signal-region events"):
        check_source_signals(config, 300)
    assert check_source_signals(config, 20)


def test_cli_refuses_jet_images_larger_than_memory_before_anything_runs(
    tmp_path, monkeypatch, capfd
):
    run_dir = tmp_path / "run"
    args = [*TINY, "data.resolution=4000", f"hydra.run.dir={run_dir}"]
    result = _main_in_process(args, tmp_path, monkeypatch, capfd)
    _assert_refused(result, "data.resolution=4000", "GiB")
    assert not (run_dir / "results.json").exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["experiment=nplm", *TINY_NPLM, "data.n_reference=2000000000"], ["data.n_reference"]),
        (
            ["experiment=anomaly", *TINY_ANOMALY, "data.n_background_bank=20000000000"],
            ["data.n_background_bank"],
        ),
        (["experiment=hunt", "tracking=none", "method.n_toys=100000000000"], ["method.n_toys"]),
    ],
    ids=["nplm", "anomaly", "hunt"],
)
def test_cli_refuses_toys_and_samples_larger_than_memory_before_anything_runs(
    tmp_path, args, names, monkeypatch, capfd
):
    run_dir = tmp_path / "run"
    result = _main_in_process([*args, f"hydra.run.dir={run_dir}"], tmp_path, monkeypatch, capfd)
    _assert_refused(result, *names, "GiB")
    assert not (run_dir / "results.json").exists()


def test_memory_estimates_of_toys_samples_and_hunts_refuse_at_their_size():
    """NPLM's estimate passes with twice its bytes free and is refused with one byte less; the
    anomaly method's and the hunt's name the size that does not fit."""
    import dataclasses

    from jaxws.methods.anomaly.settings import AnomalyTestConfig
    from jaxws.methods.anomaly.settings import check_memory as anomaly_memory
    from jaxws.methods.hunt.experiment import HuntConfig
    from jaxws.methods.hunt.experiment import check_memory as hunt_memory
    from jaxws.methods.nplm import ExponentialToyConfig, NPLMConfig
    from jaxws.methods.nplm.observation import check_toy_memory, toy_chunk_bytes
    from jaxws.simulate.tpc import TPCConfig

    data, settings = ExponentialToyConfig(n_reference=1000, n_expected=100.0), NPLMConfig()
    need, keys = toy_chunk_bytes(data, settings)
    # 16 toys x (1000 + buffer of Poisson(100 x 1.02)) events x (1 + 3) floats, and at this
    # size the 16 toys train vmapped: 4 floats per hidden unit (4) each.
    assert need == 4 * (1000 + 199) * (16 * 4 + 16 * 4 * 4)
    assert "data.n_reference=1000" in keys
    assert "method.chunk_size=16" in keys
    assert "GiB" in check_toy_memory(data, settings, available=int(2 * need))
    with pytest.raises(ConfigError, match=r"data\.n_reference=1000"):
        check_toy_memory(data, settings, available=int(2 * need) - 1)
    symmetrized = NPLMConfig(test="symmetrized")
    with pytest.raises(ConfigError, match=r"data\.n_a=2000"):
        check_toy_memory(data, symmetrized, available=1)

    tpc_data, test = TPCConfig(n_background_bank=10_000), AnomalyTestConfig()
    # The samples are checked first, then the toys (B = 2000 by default).
    assert len(anomaly_memory(tpc_data, test, available=10**15)) == 2
    with pytest.raises(ConfigError, match=r"data\.n_background_bank=10000"):
        anomaly_memory(tpc_data, test, available=1)
    huge_b = AnomalyTestConfig(expected_background=1e9)
    with pytest.raises(ConfigError, match=r"method\.test\.n_signal_toys=200"):
        anomaly_memory(tpc_data, huge_b, available=10**12)
    from_exposure = AnomalyTestConfig(expected_background=None)
    assert len(anomaly_memory(tpc_data, from_exposure, available=10**15)) == 1
    hunt = HuntConfig()
    assert len(hunt_memory(hunt, available=10**15)) == 2
    with pytest.raises(ConfigError, match=r"method\.n_background=20000"):
        hunt_memory(hunt, available=1)
    with pytest.raises(ConfigError, match=r"method\.n_toys=10000000000"):
        hunt_memory(dataclasses.replace(hunt, n_toys=10**10), available=10**12)


def test_image_memory_estimate_counts_every_pool_event():
    from jaxws.methods.injection_study.inputs import check_image_memory
    from jaxws.simulate.sources import SimulatorConfig

    config = SimulatorConfig(n_background=3000, n_signal=1000, resolution=25)
    need = 4000 * 2 * 25 * 25 * 4  # float32 (N, 2, R, R)
    assert "GiB" in check_image_memory(config, available=2 * need)
    with pytest.raises(ConfigError, match=r"data\.resolution=25"):
        check_image_memory(config, available=2 * need - 1)


def test_nplm_observation_below_every_toy_has_a_finite_z():
    from jaxws.stats import nplm

    result = nplm.significance(-1.0, np.array([1.0, 2.0, 3.0]), 3.0)
    assert result["p_toys"] == 1.0
    assert result["p_chi2"] == 1.0
    assert result["z_toys"] == 0.0
    assert result["z_chi2"] == 0.0
    assert "inf" not in nplm.format_significance(result)
    # Above the median the one-sided Z is unchanged.
    assert nplm.significance(5.0, np.zeros(99), 3.0)["z_toys"] == pytest.approx(2.326, abs=1e-3)
