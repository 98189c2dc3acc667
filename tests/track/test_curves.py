"""Learning curves from an ensemble fit: per-epoch lines, per-member rows, stopping epochs."""

import json

import numpy as np

from jaxws.track import Tracker
from jaxws.track.curves import curve_rows, epoch_summaries, log_learning_curves
from jaxws.train import FitResult

NAN = np.nan
TRAIN = np.array([[0.7, 0.6, 0.5, NAN], [0.8, 0.7, NAN, NAN], [0.9, 0.8, 0.7, 0.6]])
VAL = np.array([[0.69, 0.65, 0.66, NAN], [0.75, 0.72, NAN, NAN], [0.9, 0.85, 0.8, 0.79]])
EPOCHS = np.array([3, 2, 4])


def test_rows_cover_exactly_the_epochs_each_member_ran():
    rows = curve_rows(TRAIN, VAL, EPOCHS)
    assert len(rows) == EPOCHS.sum()
    assert [(r["member"], r["epoch"]) for r in rows if r["member"] == 1] == [(1, 0), (1, 1)]
    assert all(np.isfinite(r["val_loss"]) for r in rows)


def test_epoch_lines_summarise_the_members_still_training():
    lines = epoch_summaries(TRAIN, VAL, EPOCHS, "cwola")
    assert [line["cwola/members_training"] for line in lines] == [3, 3, 2, 1]
    np.testing.assert_allclose(lines[2]["cwola/val_loss_mean"], (0.66 + 0.8) / 2)
    assert lines[1]["cwola/val_loss_min"] == 0.65
    assert lines[1]["cwola/val_loss_max"] == 0.85
    np.testing.assert_allclose(lines[3]["cwola/train_loss_mean"], 0.6)


def test_logged_to_metrics_jsonl_and_a_table(tmp_path):
    fit = FitResult(
        variables={},
        train_loss=TRAIN,
        val_loss=VAL,
        best_epoch=np.array([1, 1, 3]),
        best_val_loss=np.array([0.65, 0.72, 0.79]),
        epochs=EPOCHS,
    )
    tracker = Tracker(tmp_path, {"seed": 0})
    log_learning_curves(tracker, "cwola", fit, fit_seconds=1.5)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    per_epoch = [line for line in lines if "cwola/epoch" in line]
    assert [line["cwola/epoch"] for line in per_epoch] == [0, 1, 2, 3]
    assert lines[-1]["cwola/stop_epoch_max"] == 4
    assert lines[-1]["cwola/fit_seconds"] == 1.5
    table = (tmp_path / "learning_curves_cwola.csv").read_text().splitlines()
    assert table[0] == "member,epoch,train_loss,val_loss"
    assert len(table) == 1 + EPOCHS.sum()
