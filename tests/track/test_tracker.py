"""Tracker: atomic local files and a real offline W&B run (no network)."""

import json

import matplotlib.pyplot as plt
import pytest

from jaxws.files import atomic_write_json
from jaxws.track import Tracker, TrackingConfig


def test_tracker_writes_local_files_and_an_offline_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = Tracker(
        tmp_path, {"seed": 3}, TrackingConfig(mode="offline", group="sweep-1"), name="unit"
    )
    tracker.log_metrics({"auc": 0.75}, step=0)
    tracker.save_table("study", [{"injection": 0, "z": 0.0}, {"injection": 10, "z": 1.5}])
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = tracker.save_figure("line", fig)
    run = tracker.wandb_run
    assert run.group == "sweep-1"
    tracker.finish()
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"auc": 0.75}
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 3}
    assert (tmp_path / "study.csv").read_text().splitlines()[0] == "injection,z"
    assert png.read_bytes()[:4] == b"\x89PNG"
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("*.wandb"))


def test_atomic_write_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
