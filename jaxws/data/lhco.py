"""The LHC Olympics 2020 R&D signal-region features (CATHODE preprocessing), checksummed.

Data: ../shared/data/lhco-rnd-sr (Zenodo 4536377 / 5759087, CC-BY 4.0), reduced to
3.3 < mjj < 3.7 TeV as in Hallin et al., arXiv:2109.00546. Each file is a float64 array with
columns mjj [TeV], mj1 [TeV], delta mj = mj2 - mj1 [TeV], tau21_1, tau21_2, label (1 signal).
Classifiers use the four substructure features (mjj is the resonant variable and is constant
to ~10% inside the signal region). Every file's sha256 is checked against the values
published with the data before it is used; arrays are read with allow_pickle=False.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from jaxws.config import ConfigError

COLUMNS = ("mjj", "mj1", "delta_mj", "tau21_1", "tau21_2", "label")
FEATURES = ("mj1", "delta_mj", "tau21_1", "tau21_2")

#: sha256 of every file, from the data set's README.
SHA256 = {
    "sr_train": "8396ee7d5ced347cf533bd382ff4b0e5cdba8a02a5eb7273a96af0b819045bd2",
    "sr_val": "c5609908798654f1d9d9210f5fbd6aeb3fa1b7110c9e4a277c58c0b4557b089e",
    "sr_test": "413159262fd166ced866414cb7b9702152ceda35ae0f08f269182e07389e1755",
    "sr_extrasig_train": "3756386db6a21fb1234e6496ce530d4d4ea2fcfe30c022cfb71b8e94cf038829",
    "sr_extrasig_val": "de1ab800b2b6a99a8f9f04207be4f15d2671b9a0c153e5d20ffe3fcfd3e55ca1",
}


def default_directory() -> Path:
    """$JAXWS_LHCO_DIR, else the shared data directory next to the repository."""
    if "JAXWS_LHCO_DIR" in os.environ:
        return Path(os.environ["JAXWS_LHCO_DIR"])
    shared = Path("/work/shared/data/lhco-rnd-sr")
    if shared.exists():
        return shared
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "lhco-rnd-sr"


@dataclasses.dataclass(frozen=True)
class LHCOSplit:
    """One file: features (N, F) float32 in the order of `names`, labels (N,) int8, mjj [TeV]."""

    features: np.ndarray
    labels: np.ndarray
    mjj: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


_VERIFIED: dict[tuple[str, int, float], str] = {}


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED:
        _VERIFIED[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _VERIFIED[key]


def load_split(
    name: str,
    directory: str | os.PathLike | None = None,
    features: tuple[str, ...] = FEATURES,
    verify: bool = True,
) -> LHCOSplit:
    """Load one file (`sr_train`, `sr_val`, `sr_test`, `sr_extrasig_train`, `sr_extrasig_val`).

    Args:
        name: file stem.
        directory: data directory (default: default_directory()).
        features: columns to return as features (names from COLUMNS, not "label").
        verify: check the file's sha256 against SHA256 first.

    Raises:
        ValueError: unknown name or feature, checksum mismatch, or a malformed array (naming
            the file).
        FileNotFoundError: the file is missing.
    """
    if name not in SHA256:
        raise ConfigError(f"unknown LHCO split {name!r}; known: {sorted(SHA256)}")
    unknown = [f for f in features if f not in COLUMNS[:-1]]
    if unknown or not features:
        raise ConfigError(f"unknown LHCO features {unknown}; choose from {COLUMNS[:-1]}")
    path = Path(directory or default_directory()) / f"{name}.npy"
    if not path.is_file():
        raise ConfigError(f"{path}: LHCO R&D file not found")
    if verify:
        digest = _sha256(path)
        if digest != SHA256[name]:
            raise ConfigError(
                f"{path}: sha256 {digest} does not match the published {SHA256[name]}; "
                "the file is corrupted or a different version"
            )
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ConfigError(f"{path}: not a plain numpy array: {err}") from err
    if data.ndim != 2 or data.shape[1] != len(COLUMNS):
        raise ConfigError(f"{path}: expected shape (N, {len(COLUMNS)}), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ConfigError(f"{path}: contains non-finite values")
    labels = data[:, -1]
    if not np.all((labels == 0) | (labels == 1)):
        raise ConfigError(f"{path}: label column holds values other than 0 and 1")
    columns = [COLUMNS.index(f) for f in features]
    return LHCOSplit(
        features=data[:, columns].astype(np.float32),
        labels=labels.astype(np.int8),
        mjj=data[:, 0].copy(),
        names=tuple(features),
    )


def load_lhco(
    directory: str | os.PathLike | None = None,
    splits: tuple[str, ...] = tuple(SHA256),
    features: tuple[str, ...] = FEATURES,
    verify: bool = True,
) -> dict[str, LHCOSplit]:
    """All (or the named) splits as {name: LHCOSplit}; see load_split."""
    return {s: load_split(s, directory, features, verify) for s in splits}


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-feature (x - mean) / std, fitted on training data only."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, weights: np.ndarray | None = None) -> Standardizer:
        """Fit on (N, F) features (optionally weighted; weight-0 rows are ignored).

        Raises:
            ValueError: no events, or a feature with zero spread.
        """
        x = np.asarray(x, dtype=np.float64)
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(w) or w.sum() <= 0:
            raise ValueError(f"Standardizer.fit needs (N, F) features and weights, got {x.shape}")
        mean = np.average(x, axis=0, weights=w)
        std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
        if np.any(std <= 0):
            raise ValueError(f"features {np.flatnonzero(std <= 0).tolist()} have zero spread")
        return Standardizer(mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardized float32 features (x - mean) / std."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Features in their original units from standardized ones (inverse of `transform`)."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean
