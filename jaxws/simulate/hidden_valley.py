"""Hidden Valley dark-shower models and the QCD background as named generator models.

Follows Beauchesne, Chen, Chiang, "Improving the performance of weak supervision searches
using transfer and meta-learning" (arXiv:2312.06152), section 2: pp -> Z' -> q_D q_Dbar with
Pythia's Hidden Valley module, dark-hadron masses from their eq. (1)

    m_pi / Lambda = 5.5 sqrt(m_q / Lambda),   m_rho / Lambda = sqrt(5.76 + 1.5 (m_pi / Lambda)^2),
    m_qconst = m_q + Lambda,

with m_q the current and m_qconst the constituent dark-quark mass (Pythia's HV quark mass is the
constituent one). Two decay scenarios: indirect (ID: rho_D -> pi_D pi_D, pi_D -> d dbar; needs
m_rho > 2 m_pi, i.e. m_pi/Lambda < 1.5179) and direct (DD: rho_D and pi_D -> d dbar; the paper
takes m_rho < 2 m_pi so that rho_D -> pi_D pi_D is closed). The 14 benchmarks are
Lambda in {1, 5, 10, 20, 30, 40, 50} GeV with m_pi/Lambda = 1 (ID) and 1.8 (DD).

Pythia 8.313+ removed the paper's `bmqv2`, `rFactqv`, `sigmamqv`; they map to
bLund = 1.9 / m_qconst^2, rFact = 1 and sigmaLund = 0.5 m_qconst (needs `setabsigma = 2`), as
measured in ../shared/science/event-generation.md. This module only builds setting strings; it
needs no Pythia installation.
"""

from __future__ import annotations

import dataclasses
import math
import re

from jaxws.data.samples import benchmark_names

#: Largest m_pi/Lambda for which rho_D -> pi_D pi_D is open: 5.76 + 1.5 r^2 = 4 r^2.
RHO_TO_PIPI_MAX_RATIO = math.sqrt(5.76 / 2.5)

SCENARIO_PION_RATIO = {"id": 1.0, "dd": 1.8}

# Dark pions (all degenerate) and dark vector mesons of the 3-flavour HV spectrum.
DARK_PIONS = (4900111, 4900221, 4900331, 4900211, 4900311, 4900321)
DARK_RHOS = (4900113, 4900223, 4900333, 4900213, 4900313, 4900323)
DARK_QUARKS = (4900101, 4900102, 4900103)
# ID decays rho_D -> pi_D pi_D; all pions are degenerate and go to d dbar, so the flavour
# labels of the daughters do not change any observable.
_ID_RHO_DAUGHTERS = {
    4900113: "4900211 -4900211",
    4900223: "4900211 -4900211",
    4900333: "4900211 -4900211",
    4900213: "4900211 4900111",
    4900313: "4900311 4900111",
    4900323: "4900321 4900221",
}
_D_DBAR = "91 1 -1"  # meMode 91: isotropic decay into a colour-connected q qbar pair

ZPRIME_ID = 4900023


def _fmt(x: float) -> str:
    """Shortest exact decimal for a setting value (repr keeps every digit of a float)."""
    return repr(float(x))


@dataclasses.dataclass(frozen=True)
class HiddenValleyPoint:
    """One Hidden Valley dark-shower model (masses in GeV).

    Attributes:
        scenario: "id" (indirect decay) or "dd" (direct decay).
        lambda_d: dark confinement scale Lambda_D > 0.
        pion_ratio: m_pi / Lambda_D.
        zprime_mass: Z' pole mass.
        zprime_width: Z' width.
        zprime_mass_min: generator cut on the Z' Breit-Wigner (Pythia's default 100 GeV would
            put ~97% of events far off shell).
    """

    scenario: str
    lambda_d: float
    pion_ratio: float
    zprime_mass: float = 5500.0
    zprime_width: float = 10.0
    zprime_mass_min: float = 4000.0

    def __post_init__(self):
        if self.scenario not in SCENARIO_PION_RATIO:
            raise ValueError(f"scenario must be 'id' or 'dd', got {self.scenario!r}")
        for name in ("lambda_d", "pion_ratio", "zprime_mass", "zprime_width"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"HiddenValleyPoint.{name} must be finite and > 0, got {value}")
        r = self.pion_ratio
        if self.scenario == "id" and not r < RHO_TO_PIPI_MAX_RATIO:
            raise ValueError(
                f"indirect decay needs rho_D -> pi_D pi_D open, m_rho > 2 m_pi, i.e. "
                f"m_pi/Lambda < {RHO_TO_PIPI_MAX_RATIO:.4f}; got m_pi/Lambda = {r} "
                f"(m_rho = {self.m_rho:.4g} GeV <= 2 m_pi = {2 * self.m_pi:.4g} GeV)"
            )
        if self.scenario == "dd" and not r > RHO_TO_PIPI_MAX_RATIO:
            raise ValueError(
                f"direct decay assumes rho_D -> pi_D pi_D closed, m_rho < 2 m_pi, i.e. "
                f"m_pi/Lambda > {RHO_TO_PIPI_MAX_RATIO:.4f}; got m_pi/Lambda = {r} "
                f"(m_rho = {self.m_rho:.4g} GeV > 2 m_pi = {2 * self.m_pi:.4g} GeV, so rho_D "
                f"would decay to dark pions)"
            )
        if not 0 <= self.zprime_mass_min < self.zprime_mass:
            raise ValueError(
                f"zprime_mass_min must be in [0, zprime_mass = {self.zprime_mass}), "
                f"got {self.zprime_mass_min}"
            )
        if 2 * self.m_qconst >= self.zprime_mass:
            raise ValueError(
                f"Z' of {self.zprime_mass} GeV cannot decay to two dark quarks of constituent "
                f"mass {self.m_qconst:.4g} GeV"
            )

    @property
    def m_pi(self) -> float:
        """Dark pion mass."""
        return self.pion_ratio * self.lambda_d

    @property
    def m_q(self) -> float:
        """Current dark-quark mass, inverted from m_pi/Lambda = 5.5 sqrt(m_q/Lambda)."""
        return self.lambda_d * (self.pion_ratio / 5.5) ** 2

    @property
    def m_qconst(self) -> float:
        """Constituent dark-quark mass m_q + Lambda: what Pythia calls the HV quark mass."""
        return self.m_q + self.lambda_d

    @property
    def m_rho(self) -> float:
        """Dark vector-meson mass from eq. (1)."""
        return self.lambda_d * math.sqrt(5.76 + 1.5 * self.pion_ratio**2)

    def description(self) -> str:
        """One line describing the process, spectrum and decay scenario."""
        decay = (
            "indirect decay (rho_D -> pi_D pi_D, pi_D -> d dbar)"
            if self.scenario == "id"
            else "direct decay (rho_D, pi_D -> d dbar)"
        )
        return (
            f"pp -> Z'({self.zprime_mass:g} GeV, width {self.zprime_width:g} GeV) -> q_D q_Dbar, "
            f"Hidden Valley SU(3), 3 flavours, Lambda_D = {self.lambda_d:g} GeV, "
            f"m_pi/Lambda = {self.pion_ratio:g}, {decay}"
        )

    def settings(self) -> list[str]:
        """Pythia setting strings for this point (process, HV shower, spectrum, decays)."""
        mq = self.m_qconst
        s = [
            "HiddenValley:ffbar2Zv = on",
            f"{ZPRIME_ID}:m0 = {_fmt(self.zprime_mass)}",
            f"{ZPRIME_ID}:mWidth = {_fmt(self.zprime_width)}",
            f"{ZPRIME_ID}:mMin = {_fmt(self.zprime_mass_min)}",
            f"{ZPRIME_ID}:onMode = off",
            f"{ZPRIME_ID}:onIfAny = " + " ".join(str(q) for q in DARK_QUARKS),
            "HiddenValley:Ngauge = 3",
            "HiddenValley:nFlav = 3",
            "HiddenValley:spinFv = 0",
            "HiddenValley:FSR = on",
            "HiddenValley:fragment = on",
            "HiddenValley:alphaOrder = 1",
            "HiddenValley:setLambda = on",
            f"HiddenValley:Lambda = {_fmt(self.lambda_d)}",
            f"HiddenValley:pTminFSR = {_fmt(1.1 * self.lambda_d)}",
            "HiddenValley:separateFlav = on",
            "HiddenValley:probVector = 0.75",
            "HiddenValley:setabsigma = 2",
            "HiddenValley:aLund = 0.1",
            f"HiddenValley:bLund = {_fmt(1.9 / mq**2)}",
            f"HiddenValley:sigmaLund = {_fmt(0.5 * mq)}",
            "HiddenValley:rFact = {1.,1.,1.,1.,1.,1.,1.,1.}",
        ]
        s += [f"{q}:m0 = {_fmt(mq)}" for q in DARK_QUARKS]
        for pion in DARK_PIONS:
            s += [
                f"{pion}:m0 = {_fmt(self.m_pi)}",
                f"{pion}:mayDecay = on",
                f"{pion}:oneChannel = 1 1.0 {_D_DBAR}",
            ]
        for rho in DARK_RHOS:
            channel = (
                f"1 1.0 0 {_ID_RHO_DAUGHTERS[rho]}" if self.scenario == "id" else f"1 1.0 {_D_DBAR}"
            )
            s += [
                f"{rho}:m0 = {_fmt(self.m_rho)}",
                f"{rho}:mayDecay = on",
                f"{rho}:oneChannel = {channel}",
            ]
        return s

    def generator_cuts(self) -> str:
        """The generator-level cut applied to this point, as a readable line."""
        return f"{ZPRIME_ID}:mMin = {self.zprime_mass_min:g} GeV"


@dataclasses.dataclass(frozen=True)
class QCDDijets:
    """QCD 2 -> 2 background with generator cuts on the hard process (GeV).

    mHatMin alone is useless (events go forward); with 4000/600 the cut loses about 5% of SR and
    4% of SB events relative to a looser cut (event-generation.md), recorded with the data.
    """

    m_hat_min: float = 4000.0
    pt_hat_min: float = 600.0

    def __post_init__(self):
        for name in ("m_hat_min", "pt_hat_min"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"QCDDijets.{name} must be finite and >= 0, got {value}")

    def description(self) -> str:
        """One line describing the background process."""
        return "QCD dijets, pp -> 2 partons (HardQCD:all = on), 13 TeV"

    def settings(self) -> list[str]:
        """Pythia setting strings for the QCD 2 -> 2 process with its phase-space cuts."""
        return [
            "HardQCD:all = on",
            f"PhaseSpace:mHatMin = {_fmt(self.m_hat_min)}",
            f"PhaseSpace:pTHatMin = {_fmt(self.pt_hat_min)}",
        ]

    def generator_cuts(self) -> str:
        """The generator-level cuts, with their measured loss for the default values."""
        loss = ""
        if (self.m_hat_min, self.pt_hat_min) == (4000.0, 600.0):
            loss = (
                "; measured loss against a looser cut: about 5% of SR and 4% of SB events "
                "(jet mjj can exceed mHat; event-generation.md)"
            )
        return (
            f"PhaseSpace:mHatMin = {self.m_hat_min:g} GeV, "
            f"PhaseSpace:pTHatMin = {self.pt_hat_min:g} GeV{loss}"
        )


Model = HiddenValleyPoint | QCDDijets


_NAME = re.compile(
    r"^(?:hv_)?(?P<scenario>id|dd)_lambda(?P<lam>[0-9.eE+-]+)"
    r"(?:_ratio(?P<ratio>[0-9.eE+-]+))?(?:_mz(?P<mz>[0-9.eE+-]+))?"
    r"(?:_width(?P<width>[0-9.eE+-]+))?(?:_mzmin(?P<mzmin>[0-9.eE+-]+))?$"
)
_QCD = re.compile(r"^qcd(?:_mhat(?P<mhat>[0-9.eE+-]+))?(?:_pthat(?P<pthat>[0-9.eE+-]+))?$")


def parse_model(name: str) -> Model:
    """The model behind a name.

    Grammar: `qcd[_mhat<GeV>][_pthat<GeV>]` or
    `[hv_]<id|dd>_lambda<GeV>[_ratio<m_pi/Lambda>][_mz<GeV>][_width<GeV>][_mzmin<GeV>]`; omitted
    parts take the paper's values (ratio 1 for ID, 1.8 for DD; Z' 5500 GeV, width 10, mMin 4000);
    with another Z' mass the default mMin keeps the paper's ratio, mMin = (4000/5500) m_Z'.

    Raises:
        ValueError: unknown name, or a point that fails HiddenValleyPoint's checks.
    """
    m = _QCD.match(name)
    if m:
        return QCDDijets(
            m_hat_min=float(m["mhat"]) if m["mhat"] else 4000.0,
            pt_hat_min=float(m["pthat"]) if m["pthat"] else 600.0,
        )
    m = _NAME.match(name)
    if not m:
        raise ValueError(
            f"unknown model {name!r}: expected 'qcd', a benchmark ({', '.join(benchmark_names())}) "
            "or '<id|dd>_lambda<GeV>[_ratio<r>][_mz<GeV>][_width<GeV>][_mzmin<GeV>]'"
        )
    try:
        scenario = m["scenario"]
        mz = float(m["mz"]) if m["mz"] else 5500.0
        return HiddenValleyPoint(
            scenario=scenario,
            lambda_d=float(m["lam"]),
            pion_ratio=float(m["ratio"]) if m["ratio"] else SCENARIO_PION_RATIO[scenario],
            zprime_mass=mz,
            zprime_width=float(m["width"]) if m["width"] else 10.0,
            zprime_mass_min=float(m["mzmin"]) if m["mzmin"] else mz * 4000.0 / 5500.0,
        )
    except ValueError as err:
        raise ValueError(f"model {name!r}: {err}") from err
