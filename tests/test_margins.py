"""The margin records of the statistical tests (tests/margins.py) and their table."""

import json

import pytest
from margins import SAMPLING, TRAINED, member_auc_se, record, record_p
from margins_table import table
from scipy import stats


def test_records_margins_in_standard_errors_only_when_asked(tmp_path, monkeypatch):
    path = tmp_path / "native.jsonl"
    monkeypatch.delenv("JAXWS_MARGINS", raising=False)
    record("nothing written", 1.0, 0.0, 1.0, SAMPLING)
    assert not path.exists()
    monkeypatch.setenv("JAXWS_MARGINS", str(path))
    record("mean < 0.35", 0.05, 0.35, 0.1, SAMPLING, above=False)
    record("AUC > 0.65", 0.6, 0.65, 0.01, TRAINED, se_from="seeds")
    record_p("KS p > 0.01", 0.5, 0.01, SAMPLING)
    record_p("power p < 0.01", 1e-6, 0.01, SAMPLING, power=True)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [round(line["margin_se"], 6) for line in lines] == [
        3.0,
        -5.0,
        round(stats.norm.isf(0.01), 6),
        round(stats.norm.isf(1e-6) - stats.norm.isf(0.01), 6),
    ]
    assert lines[1]["se_from"] == "seeds"
    assert lines[2]["p"] == 0.5
    with pytest.raises(ValueError, match="kind"):
        record("bad kind", 1.0, 0.0, 1.0, "guessed")
    # The table marks margins under 2 SE (the failing AUC row) and shows the p-value.
    (tmp_path / "second.jsonl").write_text(path.read_text())
    text = table(tmp_path)
    assert "| AUC > 0.65 | trained (seeds) | 0.6 | **-5.0** | 0.6 | **-5.0** |" in text
    assert "p = 0.5" in text


def test_ensemble_auc_error_is_the_members_seed_spread():
    labels = [1, 1, 0, 0]
    members = [[0.9, 0.8, 0.1, 0.2], [0.9, 0.1, 0.8, 0.2], [0.9, 0.8, 0.85, 0.2]]
    # Member AUCs 1.0, 0.5, 0.75: spread 0.25, / sqrt(3) for the ensemble.
    assert member_auc_se(members, labels, same_events=True) == pytest.approx(0.25 / 3**0.5)
    assert member_auc_se(members, labels) > 0.25 / 3**0.5
