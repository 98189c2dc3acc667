"""Tracker: atomic local files and a real offline W&B run (no network)."""

import json

import matplotlib.pyplot as plt
import pytest

from jaxws.config import ConfigError
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
    assert (tmp_path / "figures" / "line.pdf").read_bytes()[:5] == b"%PDF-"  # the default
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("*.wandb"))


def test_figure_formats_choose_the_files_and_bad_ones_are_named(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    for formats, files in (
        (("png",), ["line.png"]),
        (("png", "svg", "pdf"), ["line.pdf", "line.png", "line.svg"]),
    ):
        run_dir = tmp_path / "-".join(formats)
        tracker = Tracker(run_dir, tracking=TrackingConfig(wandb=False, figure_formats=formats))
        assert tracker.save_figure("line", fig) == run_dir / "figures" / "line.png"
        assert sorted(p.name for p in (run_dir / "figures").iterdir()) == files
    assert (tmp_path / "png-svg-pdf" / "figures" / "line.svg").read_text().count("<svg") == 1
    plt.close(fig)
    for bad in (("pdf",), ("png", "jpg"), ("png", "png")):
        with pytest.raises(ConfigError, match=r"tracking\.figure_formats must list png"):
            TrackingConfig(figure_formats=bad)


def test_atomic_write_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
