"""Pythia 8 event generation for the dark-shower benchmark: jets, cuts, optional smearing.

Follows arXiv:2312.06152 section 2 and table 1(b): anti-kT R = 0.8 jets on visible final-state
particles, at least two jets, both leading jets pT > 750 GeV and |eta| < 2, signal region
mjj in [4700, 5500) GeV, sidebands [4400, 4700) U [5500, 5800) GeV. The paper used MadGraph +
Pythia 8.307 + Delphes; here Pythia 8.317 (`pythia8mc`) generates both signal and background and
there is no Delphes: `Smearing` is a parametric stand-in (off by default, see its docstring).

Jets come from Pythia's SlowJet (C++, fjcore inside), which measured faster than pulling all
particles into Python for scikit-hep fastjet (bench/generation.py, docs/pythia.md); particles
are read one by one only for the constituents of the two leading jets of stored events.

Needs the physics extra (`pip install -e '.[physics]'` in a checkout, or `make venv`); Pythia
is imported lazily so that the rest of jaxws imports without it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np

from jaxws.data.samples import benchmark_names, canonical_name, model_id_of
from jaxws.simulate.hidden_valley import HiddenValleyPoint, Model, parse_model

#: Settings every sample shares: 13 TeV pp and a quiet generator.
COMMON_SETTINGS = (
    "Beams:eCM = 13000.0",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowInfo = 0",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showProcesses = off",
    "Init:showMultipartonInteractions = off",
)
MAX_PYTHIA_SEED = 900_000_000
_INSTALL_HINT = "install the physics extra: pip install -e '.[physics]' (or `make venv`)"


class PythiaSettingError(ValueError):
    """Pythia refused a setting string (unknown name or value out of range)."""


def import_pythia() -> ModuleType:
    """The `pythia8mc` module, or an ImportError that says how to install it."""
    try:
        import pythia8mc
    except ImportError as err:
        raise ImportError(f"Pythia 8 generation needs pythia8mc; {_INSTALL_HINT}") from err
    return pythia8mc


@dataclasses.dataclass(frozen=True)
class Selection:
    """Jet definition and the paper's cuts (GeV); mass windows are half-open [low, high)."""

    jet_radius: float = 0.8
    jet_pt_min: float = 20.0
    lead_pt_min: float = 750.0
    eta_max: float = 2.0
    signal_region: tuple[float, float] = (4700.0, 5500.0)
    sidebands: tuple[tuple[float, float], ...] = ((4400.0, 4700.0), (5500.0, 5800.0))
    max_constituents: int = 256

    def __post_init__(self):
        object.__setattr__(self, "signal_region", tuple(float(x) for x in self.signal_region))
        object.__setattr__(
            self, "sidebands", tuple(tuple(float(x) for x in band) for band in self.sidebands)
        )
        if not 0 < self.jet_radius < 2:
            raise ValueError(f"Selection.jet_radius must be in (0, 2), got {self.jet_radius}")
        if self.max_constituents < 1:
            raise ValueError(
                f"Selection.max_constituents must be >= 1, got {self.max_constituents}"
            )
        for lo, hi in (self.signal_region, *self.sidebands):
            if not lo < hi:
                raise ValueError(f"Selection: mass window [{lo}, {hi}) is empty")

    def region(self, mjj: np.ndarray) -> np.ndarray:
        """0 signal region, 1 sideband, -1 neither (int8)."""
        mjj = np.asarray(mjj, dtype=np.float64)
        out = np.full(mjj.shape, -1, dtype=np.int8)
        for lo, hi in self.sidebands:
            out[(mjj >= lo) & (mjj < hi)] = 1
        lo, hi = self.signal_region
        out[(mjj >= lo) & (mjj < hi)] = 0
        return out

    def jet_definition(self) -> str:
        """The jet algorithm and its Pythia SlowJet settings, as a readable line."""
        return (
            f"anti-kT R = {self.jet_radius:g}, Pythia SlowJet(power=-1, R={self.jet_radius:g}, "
            f"pTjetMin={self.jet_pt_min:g} GeV, etaMax=10, select=2 (visible final-state "
            "particles), massSet=2 (true masses), useFJcore=True), E-scheme"
        )

    def description(self) -> str:
        """The jet cuts and the signal-region and sideband windows, as a readable line."""
        sr = self.signal_region
        sb = " or ".join(f"{lo:g} <= mjj < {hi:g}" for lo, hi in self.sidebands)
        return (
            f"at least 2 jets with pT > {self.jet_pt_min:g} GeV; leading and subleading jet "
            f"pT > {self.lead_pt_min:g} GeV and |eta| < {self.eta_max:g}; region 0 (SR): "
            f"{sr[0]:g} <= mjj < {sr[1]:g} GeV; region 1 (SB): {sb} GeV; other mjj dropped"
        )


@dataclasses.dataclass(frozen=True)
class Smearing:
    """Parametric detector response applied to the constituents of the two leading jets.

    NOT a detector simulation: each constituent's pT is scaled by 1 + N(0, 1) sigma/pT with
    sigma/pT = sqrt(stochastic^2 / pT + constant^2) (pT in GeV), eta and phi are snapped to the
    centres of a square grid of side `cell` (0: no snapping) and constituents in one cell are
    merged (pT-weighted), like calorimeter towers. Jets are rebuilt as the E-scheme sum of the
    smeared (massless) constituents and the cuts applied to them. Only events whose truth jets
    pass loose pre-cuts (pT > 0.7 x threshold, |eta| < eta_max + 0.3, mjj within 30% of the
    windows) are smeared; the rest cannot pass at these resolutions.

    Off by default: the paper's Delphes response cannot be reproduced here, the independent
    hv-reference sample is particle level, and truth-level data keep every comparison exact;
    turn it on to study how a coarser, noisier input changes a method. Smearing draws from
    numpy's PCG64 seeded by (shard seed, event index), so resumed shards are identical.
    """

    enabled: bool = False
    stochastic: float = 0.5
    constant: float = 0.05
    cell: float = 0.087

    def __post_init__(self):
        for name in ("stochastic", "constant", "cell"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Smearing.{name} must be finite and >= 0, got {value}")


@dataclasses.dataclass
class ShardResult:
    """Arrays in the shard schema (see jaxws.data.shards) and the metadata to store with them."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]


def make_pythia(settings: list[str]) -> Any:
    """An initialised Pythia with every setting checked.

    Args:
        settings: Pythia setting strings, applied in order with `readString`.

    Returns:
        The initialised `pythia8mc.Pythia` instance.

    Raises:
        PythiaSettingError: a setting that `readString` rejected (named).
        RuntimeError: `init()` failed.
    """
    pythia8mc = import_pythia()
    pythia = pythia8mc.Pythia("", False)
    for setting in settings:
        if not pythia.readString(setting):
            raise PythiaSettingError(
                f"Pythia rejected the setting {setting!r} (unknown name or value out of range); "
                "refusing to run a different physics model than asked"
            )
    if not pythia.init():
        raise RuntimeError(f"Pythia init() failed with settings {settings}")
    return pythia


def model_settings(model: Model, seed: int) -> list[str]:
    """The full, ordered settings list for one shard."""
    if not (isinstance(seed, int | np.integer) and 0 <= seed <= MAX_PYTHIA_SEED):
        raise ValueError(f"seed must be an integer in [0, {MAX_PYTHIA_SEED}], got {seed!r}")
    return [
        *COMMON_SETTINGS,
        *model.settings(),
        "Random:setSeed = on",
        f"Random:seed = {int(seed)}",
    ]


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Angles into [-pi, pi)."""
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _jet_constituents(event: Any, indices: Iterable[int]) -> np.ndarray:
    """(n, 3) float64 pT, eta, phi of particles at `indices` (one Python call per particle)."""
    rows = []
    for i in indices:
        particle = event[i]
        rows.append((particle.pT(), particle.eta(), particle.phi()))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _four_vector(pt_eta_phi: np.ndarray) -> np.ndarray:
    """Summed massless four-vector (px, py, pz, E) of constituents (pT, eta, phi)."""
    pt, eta, phi = pt_eta_phi.T
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.array([px.sum(), py.sum(), pz.sum(), (pt * np.cosh(eta)).sum()])


def _jet_kinematics(p: np.ndarray) -> np.ndarray:
    """(pT, eta, phi, mass) of a four-vector (px, py, pz, E)."""
    px, py, pz, e = p
    pt = math.hypot(px, py)
    eta = math.asinh(pz / pt) if pt > 0 else math.copysign(1e9, pz)
    mass = math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
    return np.array([pt, eta, math.atan2(py, px), mass])


def _smear(constituents: np.ndarray, smearing: Smearing, rng: np.random.Generator) -> np.ndarray:
    """Smear pT, snap (eta, phi) to cell centres and merge constituents sharing a cell."""
    pt, eta, phi = constituents.T
    sigma = np.sqrt(smearing.stochastic**2 / np.maximum(pt, 1e-9) + smearing.constant**2)
    pt = pt * np.maximum(1.0 + sigma * rng.standard_normal(len(pt)), 0.0)
    keep = pt > 0
    pt, eta, phi = pt[keep], eta[keep], phi[keep]
    if smearing.cell > 0 and len(pt):
        ieta = np.floor(eta / smearing.cell).astype(np.int64)
        iphi = np.floor(phi / smearing.cell).astype(np.int64)
        cells, inverse = np.unique(np.stack([ieta, iphi], axis=1), axis=0, return_inverse=True)
        pt = np.bincount(inverse.ravel(), weights=pt, minlength=len(cells))
        eta = (cells[:, 0] + 0.5) * smearing.cell
        phi = _wrap_phi((cells[:, 1] + 0.5) * smearing.cell)
    return np.stack([pt, eta, phi], axis=1)


def _pack_jet(constituents: np.ndarray, jet: np.ndarray, width: int) -> tuple:
    """Sort by pT, make eta/phi relative to the jet axis, truncate to `width`."""
    order = np.argsort(-constituents[:, 0], kind="stable")
    c = constituents[order]
    rel = np.stack([c[:, 0], c[:, 1] - jet[1], _wrap_phi(c[:, 2] - jet[2])], axis=1)
    out = np.zeros((width, 3), dtype=np.float64)
    kept = min(len(rel), width)
    out[:kept] = rel[:kept]
    return out, len(rel), float(rel[kept:, 0].sum())


def generate_shard(
    model_name: str,
    seed: int,
    n_target: int,
    selection: Selection | None = None,
    smearing: Smearing | None = None,
    max_generated: int | None = None,
    model_list: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShardResult:
    """Generate events of one model with one seed until `n_target` land in SR or SB.

    All events that pass the cuts among the first `n_generated` calls of `pythia.next()` are
    kept, in generation order, so a shard is a deterministic function of its arguments.

    Args:
        model_name: "qcd", a benchmark such as "id_lambda10", or a parametrised point
            (see jaxws.simulate.hidden_valley.parse_model).
        seed: Pythia `Random:seed` in [0, 900000000].
        n_target: number of SR+SB events to store.
        selection: jets and cuts (default: the paper's).
        smearing: parametric detector response (default: off).
        max_generated: stop after this many `next()` calls even if short of the target
            (default 100 x n_target + 1000); the stop reason is recorded.
        model_list: names that define model_id (default: the 14 benchmarks).
        progress: called as progress(n_generated, n_stored) every 100 events.

    Returns:
        ShardResult with the schema's arrays and the generator metadata.
    """
    selection = selection or Selection()
    smearing = smearing or Smearing()
    if not (isinstance(n_target, int | np.integer) and n_target >= 1):
        raise ValueError(f"n_target must be a positive integer, got {n_target!r}")
    max_generated = 100 * n_target + 1000 if max_generated is None else max_generated
    model = parse_model(model_name)
    name = canonical_name(model_name)
    label = 1 if isinstance(model, HiddenValleyPoint) else 0
    model_id = model_id_of(name, model_list) if (label == 0 or model_list) else _default_id(name)
    settings = model_settings(model, seed)
    pythia8mc = import_pythia()

    start = time.time()
    pythia = make_pythia(settings)
    slow_jet = pythia8mc.SlowJet(
        -1, selection.jet_radius, selection.jet_pt_min, 10.0, 2, 2, None, True
    )
    width = selection.max_constituents
    rows: dict[str, list] = {
        k: []
        for k in ("constituents", "n_constituents", "pt_truncated", "jets", "mjj", "event_index")
    }
    counts = dict(n_generated=0, n_failed=0, n_ge2jets=0, n_pass_jetcuts=0, n_SR=0, n_SB=0)
    pre_pt = 0.7 * selection.lead_pt_min if smearing.enabled else selection.lead_pt_min
    pre_eta = selection.eta_max + 0.3 if smearing.enabled else selection.eta_max
    windows = [selection.signal_region, *selection.sidebands]
    m_lo, m_hi = min(w[0] for w in windows), max(w[1] for w in windows)
    if smearing.enabled:
        m_lo, m_hi = 0.7 * m_lo, 1.3 * m_hi
    stored = 0
    stop_reason = "max_generated"
    while counts["n_generated"] < max_generated:
        index = counts["n_generated"]
        counts["n_generated"] += 1
        if progress is not None and index % 100 == 0:
            progress(index, stored)
        if not pythia.next():
            counts["n_failed"] += 1
            continue
        event = pythia.event
        slow_jet.analyze(event)
        if slow_jet.sizeJet() < 2:
            continue
        counts["n_ge2jets"] += 1
        p0, p1 = slow_jet.p(0), slow_jet.p(1)
        if not (
            p0.pT() > pre_pt
            and p1.pT() > pre_pt
            and abs(p0.eta()) < pre_eta
            and abs(p1.eta()) < pre_eta
        ):
            continue
        mjj = (p0 + p1).mCalc()
        if not smearing.enabled:
            counts["n_pass_jetcuts"] += 1
            region = int(selection.region(mjj))
            if region < 0:
                continue
            jets = np.array([[p.pT(), p.eta(), p.phi(), p.mCalc()] for p in (p0, p1)])
            parts = [_jet_constituents(event, slow_jet.constituents(k)) for k in (0, 1)]
        else:
            if not m_lo <= mjj < m_hi:
                continue
            rng = np.random.default_rng([int(seed), index])
            parts = [
                _smear(_jet_constituents(event, slow_jet.constituents(k)), smearing, rng)
                for k in (0, 1)
            ]
            vectors = [_four_vector(c) for c in parts]
            jets = np.array([_jet_kinematics(v) for v in vectors])
            if jets[1, 0] > jets[0, 0]:
                jets, parts, vectors = jets[::-1], parts[::-1], vectors[::-1]
            if not (
                np.all(jets[:, 0] > selection.lead_pt_min)
                and np.all(np.abs(jets[:, 1]) < selection.eta_max)
            ):
                continue
            counts["n_pass_jetcuts"] += 1
            mjj = _jet_kinematics(vectors[0] + vectors[1])[3]
            region = int(selection.region(mjj))
            if region < 0:
                continue
        packed = [_pack_jet(c, jet, width) for c, jet in zip(parts, jets, strict=True)]
        rows["constituents"].append(np.stack([p[0] for p in packed]))
        rows["n_constituents"].append([p[1] for p in packed])
        rows["pt_truncated"].append([p[2] for p in packed])
        rows["jets"].append(jets)
        rows["mjj"].append(mjj)
        rows["event_index"].append(index)
        counts["n_SR" if region == 0 else "n_SB"] += 1
        stored += 1
        if stored >= n_target:
            stop_reason = "target"
            break
    if progress is not None:
        progress(counts["n_generated"], stored)
    wall = time.time() - start
    sigma_gen_mb = float(pythia.infoPython().sigmaGen())

    n = stored
    mjj = np.asarray(rows["mjj"], dtype=np.float64)
    arrays = {
        "constituents": np.asarray(rows["constituents"], dtype=np.float64).reshape(n, 2, width, 3),
        "n_constituents": np.asarray(rows["n_constituents"], dtype=np.int64).reshape(n, 2),
        "pt_truncated": np.asarray(rows["pt_truncated"], dtype=np.float64).reshape(n, 2),
        "jets": np.asarray(rows["jets"], dtype=np.float64).reshape(n, 2, 4),
        "mjj": mjj,
        "region": selection.region(mjj),
        "label": np.full(n, label, dtype=np.int8),
        "model_id": np.full(n, model_id, dtype=np.int16),
        "seed": np.full(n, seed, dtype=np.int32),
        "event_index": np.asarray(rows["event_index"], dtype=np.int32),
    }
    generated = max(counts["n_generated"], 1)
    attrs = {
        "sample": name,
        "model": name,
        "description": model.description(),
        "label": label,
        "model_id": model_id,
        "seed": int(seed),
        "n_target": int(n_target),
        "max_generated": int(max_generated),
        "stop_reason": stop_reason,
        "pythia_settings": settings,
        "generator_cuts": model.generator_cuts(),
        "jet_definition": selection.jet_definition(),
        "selection": selection.description(),
        "selection_json": json.dumps(dataclasses.asdict(selection)),
        "smearing_json": json.dumps(dataclasses.asdict(smearing)),
        "detector": "parametric smearing (see jaxws.simulate.pythia.Smearing)"
        if smearing.enabled
        else "none (particle level)",
        **counts,
        "n_stored": n,
        "frac_pass_jetcuts": counts["n_pass_jetcuts"] / generated,
        "frac_SR": counts["n_SR"] / generated,
        "frac_SB": counts["n_SB"] / generated,
        "sigma_gen_mb": sigma_gen_mb,
        "wall_s": wall,
        "pythia8mc_version": _version("pythia8mc"),
    }
    return ShardResult(arrays=arrays, attrs=attrs)


def _default_id(name: str) -> int:
    """Benchmark index, or -2 for a signal point outside the benchmark list."""
    names = benchmark_names()
    return names.index(name) if name in names else -2


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
