"""The one event container every jet source fills: the built-in simulator and Pythia alike.

The layout follows the HDF5 schema of ../shared/data/hv-reference (and jaxws' own shards), so
that a method never needs to know where its events came from:

| field            | shape        | dtype   | meaning                                             |
| ---------------- | ------------ | ------- | --------------------------------------------------- |
| constituents     | (N, 2, C, 3) | float32 | leading [0] and subleading [1] jet; per constituent |
|                  |              |         | pT [GeV], deta, dphi relative to the jet axis;      |
|                  |              |         | sorted by pT descending, zero pT = padding          |
| n_constituents   | (N, 2)       | int32   | constituent count before truncation to C            |
| jets             | (N, 2, 4)    | float32 | jet pT [GeV], eta, phi, mass [GeV]                  |
| mjj              | (N,)         | float32 | dijet invariant mass [GeV]                          |
| region           | (N,)         | int8    | 0 signal region, 1 sideband, -1 neither             |
| label            | (N,)         | int8    | 0 background, 1 signal (truth; never used by CWoLa) |
| model_id         | (N,)         | int16   | which signal model (index into a model list);       |
|                  |              |         | -1 for background                                   |
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

SIGNAL_REGION = 0
SIDEBAND = 1
OUTSIDE = -1

_FIELDS = ("constituents", "n_constituents", "jets", "mjj", "region", "label", "model_id")


@dataclasses.dataclass(frozen=True)
class JetEvents:
    """Events with the two leading jets as padded constituent sets (see module docstring)."""

    constituents: np.ndarray
    n_constituents: np.ndarray
    jets: np.ndarray
    mjj: np.ndarray
    region: np.ndarray
    label: np.ndarray
    model_id: np.ndarray

    def __post_init__(self):
        n = len(self.mjj)
        for name in _FIELDS:
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(f"JetEvents.{name} has {len(value)} events, mjj has {n}")
        if (
            self.constituents.ndim != 4
            or self.constituents.shape[1:2] != (2,)
            or (self.constituents.shape[3] != 3)
        ):
            raise ValueError(
                "JetEvents.constituents must have shape (N, 2, C, 3), "
                f"got {self.constituents.shape}"
            )
        if self.jets.shape[1:] != (2, 4):
            raise ValueError(f"JetEvents.jets must have shape (N, 2, 4), got {self.jets.shape}")

    def __len__(self) -> int:
        return len(self.mjj)

    def take(self, index: ArrayLike) -> JetEvents:
        """Events at `index` (an integer array or boolean mask)."""
        return JetEvents(**{name: np.asarray(getattr(self, name))[index] for name in _FIELDS})

    @staticmethod
    def concatenate(parts: list[JetEvents]) -> JetEvents:
        """Concatenate along the event axis; constituent axes are padded to the widest part."""
        if not parts:
            raise ValueError("JetEvents.concatenate needs at least one part")
        width = max(p.constituents.shape[2] for p in parts)
        fields = {}
        for name in _FIELDS:
            arrays = [np.asarray(getattr(p, name)) for p in parts]
            if name == "constituents":
                arrays = [
                    np.pad(a, ((0, 0), (0, 0), (0, width - a.shape[2]), (0, 0))) for a in arrays
                ]
            fields[name] = np.concatenate(arrays, axis=0)
        return JetEvents(**fields)

    def to_numpy(self) -> JetEvents:
        """A copy whose fields are host numpy arrays with the schema's dtypes."""
        dtypes = {
            "constituents": np.float32,
            "n_constituents": np.int32,
            "jets": np.float32,
            "mjj": np.float32,
            "region": np.int8,
            "label": np.int8,
            "model_id": np.int16,
        }
        return JetEvents(**{k: np.asarray(getattr(self, k), dtype=v) for k, v in dtypes.items()})
