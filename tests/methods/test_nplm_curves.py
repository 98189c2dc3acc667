"""NPLM learning curves: t at the recorded epochs over toys, and the observed fit's curve.

That `run` logs them (null, signal and observed fits) is checked in
`tests/stats/test_nplm.py::test_run_end_to_end`.
"""

import json

import numpy as np

from jaxws.methods.nplm.curves import (
    log_observed_curve,
    log_toy_curves,
    observed_curve,
    toy_curve_rows,
    toy_curve_summaries,
)
from jaxws.track import Tracker

CHECKPOINTS = (10, 100, 1000)
T_HISTORY = np.array(
    [[1.0, 5.0, 9.0], [2.0, 6.0, 14.0], [0.5, 4.0, 11.0], [3.0, 8.0, 20.0], [1.5, 7.0, 12.0]]
)


def _lines(path):
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def test_summaries_are_numpy_statistics_per_recorded_epoch():
    lines = toy_curve_summaries(CHECKPOINTS, T_HISTORY, "nplm_null")
    assert [line["nplm_null/epoch"] for line in lines] == list(CHECKPOINTS)
    for column, line in enumerate(lines):
        t = T_HISTORY[:, column]
        assert line["nplm_null/n_toys"] == 5
        assert line["nplm_null/t_median"] == np.median(t)
        np.testing.assert_allclose(line["nplm_null/t_mean"], t.mean())
        np.testing.assert_allclose(line["nplm_null/t_q16"], np.quantile(t, 0.16))
        np.testing.assert_allclose(line["nplm_null/t_q84"], np.quantile(t, 0.84))
        assert (line["nplm_null/t_min"], line["nplm_null/t_max"]) == (t.min(), t.max())


def test_rows_cover_every_toy_and_recorded_epoch():
    rows = toy_curve_rows(CHECKPOINTS, T_HISTORY)
    assert len(rows) == T_HISTORY.size
    assert rows[4] == {"toy": 1, "epoch": 100, "t": 6.0}


def test_observed_loss_is_minus_half_t():
    lines = observed_curve(CHECKPOINTS, T_HISTORY[0], "observed_curve")
    assert [line["observed_curve/loss"] for line in lines] == [-0.5, -2.5, -4.5]


def test_logged_to_metrics_jsonl_and_a_table(tmp_path):
    tracker = Tracker(tmp_path, {"seed": 0})
    log_toy_curves(tracker, "nplm_null", CHECKPOINTS, T_HISTORY, fit_seconds=2.5)
    log_observed_curve(tracker, "observed_curve", CHECKPOINTS, T_HISTORY[3])
    lines = _lines(tmp_path)
    assert [line["nplm_null/epoch"] for line in lines if "nplm_null/epoch" in line] == [
        10,
        100,
        1000,
    ]
    assert any(line.get("nplm_null/fit_seconds") == 2.5 for line in lines)
    assert [line["observed_curve/t"] for line in lines if "observed_curve/t" in line] == [
        3.0,
        8.0,
        20.0,
    ]
    table = (tmp_path / "t_curves_nplm_null.csv").read_text().splitlines()
    assert table[0] == "toy,epoch,t"
    assert len(table) == 1 + T_HISTORY.size
