"""The shard schema: datasets, their dtypes and meanings, and the error every reader raises."""

from __future__ import annotations

import numpy as np

from jaxws.config import ConfigError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHUNK_EVENTS = 512

#: dataset -> (dtype on disk, shape after the event axis; None = any width)
SCHEMA: dict[str, tuple[type, tuple | None]] = {
    "constituents": (np.float16, None),
    "n_constituents": (np.int16, (2,)),
    "pt_truncated": (np.float32, (2,)),
    "jets": (np.float32, (2, 4)),
    "mjj": (np.float32, ()),
    "region": (np.int8, ()),
    "label": (np.int8, ()),
    "model_id": (np.int16, ()),
    "seed": (np.int32, ()),
    "event_index": (np.int32, ()),
}
#: datasets hv-reference files lack (derived on read)
OPTIONAL = ("model_id",)

_DESCRIPTIONS = {
    "constituents": "constituents of the two leading jets, sorted by pT descending, zero-padded; "
    "columns pT [GeV], deta = eta - jet_eta, dphi = phi - jet_phi wrapped to [-pi, pi)",
    "n_constituents": "number of constituents before truncation",
    "pt_truncated": "scalar pT sum [GeV] of the constituents dropped by the truncation",
    "jets": "jet pT [GeV], eta, phi [rad], mass [GeV] (E-scheme)",
    "mjj": "dijet invariant mass [GeV]",
    "region": "0 = signal region, 1 = sidebands",
    "label": "0 = QCD, 1 = signal",
    "model_id": "index into the benchmark list (jaxws.data.samples.benchmark_names); "
    "-1 QCD, -2 signal outside the list",
    "seed": "Pythia Random:seed of the shard",
    "event_index": "0-based index of the pythia.next() call within the shard",
}


class ShardError(ConfigError):
    """A shard or manifest that is missing, incomplete, corrupted or inconsistent."""
