"""The built-in simulator against an independent Pythia 8 sample (../shared/data/hv-reference).

Stated bounds (docs/simulator.md): for QCD and the Lambda_D = 10 ID and DD signals, in the
signal region and in the sidebands, the Wasserstein-1 distance between simulated and Pythia
distributions, in units of Pythia's interquartile range, stays below
  multiplicity 0.2, jet pT 0.2, mjj 0.25, girth 0.35, jet mass 0.55 (leading and subleading);
and the AUC of one fixed classifier (total constituent multiplicity) matches Pythia's within
0.03. With 2-5k events per sample the distance's statistical noise is about 0.03-0.05.
"""

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from jaxws.data.events import SIDEBAND, SIGNAL_REGION
from jaxws.data.observables import compare, total_multiplicity
from jaxws.data.samples import benchmark_names
from jaxws.data.shards import load_events
from jaxws.simulate.jets import simulate_events
from jaxws.stats.roc import auc_of_samples

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "hv-reference"
BOUNDS = {"multiplicity": 0.2, "pt": 0.2, "mjj": 0.25, "girth": 0.35, "mass": 0.55}
SAMPLES = {"qcd": "qcd.h5", "id_lambda10": "hv_id_lambda10.h5", "dd_lambda10": "hv_dd_lambda10.h5"}


def _multiplicity_auc(signal, background) -> float:
    return auc_of_samples(total_multiplicity(signal), total_multiplicity(background))


@cache
def reference(sample):
    return load_events([REFERENCE / SAMPLES[sample]], models=[sample])


@cache
def simulated():
    return simulate_events(2024, 9000, {"id_lambda10": 3500, "dd_lambda10": 3500}, chunk_size=4096)


def simulated_sample(sample):
    events = simulated()
    if sample == "qcd":
        return events.take(events.label == 0)
    return events.take(events.model_id == benchmark_names().index(sample))


@pytest.mark.parametrize("region", [SIGNAL_REGION, SIDEBAND], ids=["SR", "SB"])
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_jet_observables_agree_with_pythia_within_the_stated_bounds(sample, region):
    ours, theirs = simulated_sample(sample), reference(sample)
    rows = compare(ours.take(ours.region == region), theirs.take(theirs.region == region))
    too_far = [
        (row["observable"], round(row["wasserstein_iqr"], 3))
        for row in rows
        if row["wasserstein_iqr"] > BOUNDS[row["observable"].rsplit("_", 1)[0]]
    ]
    assert not too_far, f"{sample}: distances above the bounds {BOUNDS}: {too_far}"


@pytest.mark.parametrize("signal", ["id_lambda10", "dd_lambda10"])
def test_fixed_classifier_auc_matches_pythia(signal):
    def auc(get):
        s, b = get(signal), get("qcd")
        return _multiplicity_auc(
            s.take(s.region == SIGNAL_REGION), b.take(b.region == SIGNAL_REGION)
        )

    ours, theirs = auc(simulated_sample), auc(reference)
    assert abs(ours - theirs) < 0.03, (ours, theirs)
    assert theirs > 0.9  # dark showers are almost trivially separable by multiplicity


def test_signal_region_fractions_match_pythia():
    for sample in SAMPLES:
        ours = np.mean(simulated_sample(sample).region == SIGNAL_REGION)
        theirs = np.mean(reference(sample).region == SIGNAL_REGION)
        assert abs(ours - theirs) < 0.04, (sample, ours, theirs)
