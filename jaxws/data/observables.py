"""Jet observables and two-sample distances, for calibrating a source against another.

The observables are those that separate dark showers from QCD and that the CWoLa classifier
can see: per jet (leading 0, subleading 1) the constituent multiplicity, the jet mass, the jet
pT and the girth g = sum_i pT_i dR_i / pT_jet (dR relative to the jet axis), plus mjj.

The distance between two samples of one observable is the Wasserstein-1 distance divided by
the reference sample's interquartile range (`scaled_wasserstein`): 0 for equal
distributions, about |shift| / IQR for a shift, insensitive to the sample sizes once both
hold a few thousand events; the KS statistic is reported beside it.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from jaxws.data.events import JetEvents

#: observable name -> short description with unit
OBSERVABLES: dict[str, str] = {
    "multiplicity_0": "leading-jet constituent multiplicity",
    "multiplicity_1": "subleading-jet constituent multiplicity",
    "mass_0": "leading-jet mass [GeV]",
    "mass_1": "subleading-jet mass [GeV]",
    "pt_0": "leading-jet pT [GeV]",
    "pt_1": "subleading-jet pT [GeV]",
    "girth_0": "leading-jet girth",
    "girth_1": "subleading-jet girth",
    "mjj": "dijet invariant mass [GeV]",
}


def girth(constituents: np.ndarray, jet_pt: np.ndarray) -> np.ndarray:
    """Girth sum_i pT_i dR_i / pT_jet of jets given (..., C, 3) relative constituents.

    Args:
        constituents: (..., C, 3) pT, deta, dphi relative to the jet axis (zero padding).
        jet_pt: (...) jet pT.

    Returns:
        (...) girth; 0 for an empty jet.
    """
    pt = constituents[..., 0].astype(np.float64)
    radius = np.hypot(constituents[..., 1], constituents[..., 2]).astype(np.float64)
    return np.sum(pt * radius, axis=-1) / np.maximum(jet_pt, 1e-12)


def jet_observables(events: JetEvents) -> dict[str, np.ndarray]:
    """Every observable of `OBSERVABLES` for each event (float64 arrays of length N)."""
    jets = np.asarray(events.jets, np.float64)
    g = girth(np.asarray(events.constituents), jets[..., 0])
    out = {}
    for jet in range(2):
        out[f"multiplicity_{jet}"] = np.asarray(events.n_constituents[:, jet], np.float64)
        out[f"mass_{jet}"] = jets[:, jet, 3]
        out[f"pt_{jet}"] = jets[:, jet, 0]
        out[f"girth_{jet}"] = g[:, jet]
    out["mjj"] = np.asarray(events.mjj, np.float64)
    return out


def scaled_wasserstein(sample: np.ndarray, reference: np.ndarray) -> float:
    """Wasserstein-1 distance between two samples divided by the reference's IQR."""
    q75, q25 = np.percentile(reference, [75, 25])
    return float(stats.wasserstein_distance(sample, reference) / max(q75 - q25, 1e-12))


def compare(sample: JetEvents, reference: JetEvents) -> list[dict[str, float | str]]:
    """One row per observable: means, scaled Wasserstein distance and KS statistic."""
    ours, theirs = jet_observables(sample), jet_observables(reference)
    rows = []
    for name in OBSERVABLES:
        a, b = ours[name], theirs[name]
        rows.append(
            {
                "observable": name,
                "mean": float(np.mean(a)),
                "reference_mean": float(np.mean(b)),
                "wasserstein_iqr": scaled_wasserstein(a, b),
                "ks": float(stats.ks_2samp(a, b).statistic),
            }
        )
    return rows


def total_multiplicity(events: JetEvents) -> np.ndarray:
    """Constituent multiplicity of the two leading jets together, per event (float64).

    With `jaxws.stats.roc.auc_of_samples` this is the calibration's fixed classifier: it needs
    no training, so its AUC on two sources is comparable without training noise.
    """
    return np.sum(events.n_constituents, axis=1).astype(np.float64)
