"""Nuclear-recoil backgrounds of a xenon TPC: solar 8B CEvNS and radiogenic neutrons.

**CEvNS** (coherent elastic neutrino-nucleus scattering) of solar 8B neutrinos, the "neutrino
floor" of xenon WIMP searches:

* cross-section (Freedman 1974; Drukier and Stodolsky 1984), natural units,
  dsigma/dE_R = G_F^2 M / (4 pi) Q_W^2 (1 - M E_R / (2 E_nu^2)) F^2(E_R), with the weak
  charge Q_W = N - (1 - 4 sin^2 theta_W) Z (sin^2 theta_W = 0.2387, the low-energy value,
  PDG), M the nucleus mass and F the Helm form factor (`jaxws.simulate.wimp`); for a
  point-like nucleus the total is sigma(E_nu) = G_F^2 Q_W^2 E_nu^2 / (4 pi), about
  4.2e-45 cm^2 N^2 (E_nu / MeV)^2;
* kinematics: a neutrino of energy E_nu gives recoils up to
  E_max = 2 E_nu^2 / (M + 2 E_nu), so E_R needs E_nu >= (E_R + sqrt(E_R^2 + 2 M E_R)) / 2;
  for xenon and 8B (E_nu < 16 MeV) every recoil lies below about 4 keV_nr;
* flux: 5.46e6 cm^-2 s^-1 (standard solar model B16-GS98, Vinyoles et al., ApJ 835 (2017)
  202); spectrum: an allowed beta shape E_nu^2 W sqrt(W^2 - m_e^2), W = E_0 - E_nu + m_e,
  with E_0 = 13.93 MeV, the beta+ endpoint to the 3.03 MeV state of 8Be (Fermi function and
  the state's 1.5 MeV width neglected). A toy: its mean energy is 7.20 MeV against 6.735 MeV
  for the measured spectrum (Winter et al., PRC 73 (2006) 025503), which reaches about 16 MeV
  through the width of the 8Be state; recoils end at 3.2 keV_nr here instead of about 4;
* xenon as one isotope, A = 131, Z = 54, N = 77.

**Radiogenic neutrons**: single-scatter NR with a falling exponential spectrum
dR/dE ~ exp(-E / E_c) (E_c = 30 keV by default, `data.neutron_slope_kev`) at a rate per
tonne-year in the energy window (`data.neutron_rate_per_tonne_year`, 0 by default). For scale,
XENONnT's projected NR background (Aprile et al., JCAP 11 (2020) 031) is
2.2e-3 events / (keV t y) in 4-50 keV_nr, about 0.1 per tonne-year, against 12.3 / (keV t y)
for its ER background in 1-13 keV (the `data.er_rate_per_tonne_year_kev` default).

Plain numpy (host side), like `jaxws.simulate.wimp`: spectra are tabulated once and sampled in
JAX by inverse CDF (`jaxws.simulate.tpc.cevns_spectrum`).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike

from jaxws.simulate import wimp

FERMI_CONSTANT_GEV2 = 1.1663787e-5
SIN2_THETA_WEAK = 0.2387
HBAR_C_SQ_CM2_GEV2 = (wimp.HBAR_C_GEV_FM * 1e-13) ** 2
ELECTRON_MASS_MEV = 0.51099895
B8_FLUX_CM2_S = 5.46e6
B8_ENDPOINT_MEV = 13.93
XENON_Z = 54.0

XENON_ER_RATE_PER_TONNE_YEAR_KEV = 12.3
"""XENONnT's projected ER background in 1-13 keV (Aprile et al., JCAP 11 (2020) 031)."""


def weak_charge(mass_number: float = wimp.XENON_A, protons: float = XENON_Z) -> float:
    """Q_W = N - (1 - 4 sin^2 theta_W) Z (tree level)."""
    return (mass_number - protons) - (1.0 - 4.0 * SIN2_THETA_WEAK) * protons


def b8_spectrum(neutrino_energy_mev: ArrayLike) -> np.ndarray:
    """8B neutrino energy density in 1/MeV (integrates to one over [0, E_0])."""
    return _allowed_shape(np.asarray(neutrino_energy_mev, np.float64)) / _b8_norm()


@functools.cache
def _b8_norm() -> float:
    grid = np.linspace(0.0, B8_ENDPOINT_MEV, 20001)
    return float(np.trapezoid(_allowed_shape(grid), grid))


def _allowed_shape(energy_mev: np.ndarray) -> np.ndarray:
    total = B8_ENDPOINT_MEV - energy_mev + ELECTRON_MASS_MEV  # positron total energy W
    inside = (energy_mev >= 0) & (energy_mev <= B8_ENDPOINT_MEV)
    momentum = np.sqrt(np.maximum(total**2 - ELECTRON_MASS_MEV**2, 0.0))
    return np.where(inside, energy_mev**2 * total * momentum, 0.0)


def maximum_recoil_kev(
    neutrino_energy_mev: ArrayLike, mass_number: float = wimp.XENON_A
) -> np.ndarray:
    """Kinematic endpoint E_max = 2 E_nu^2 / (M + 2 E_nu), in keV."""
    energy = np.asarray(neutrino_energy_mev, np.float64) * 1e-3
    return 2.0 * energy**2 / (wimp.nucleus_mass_gev(mass_number) + 2.0 * energy) * 1e6


def minimum_neutrino_energy_mev(
    recoil_kev: ArrayLike, mass_number: float = wimp.XENON_A
) -> np.ndarray:
    """Smallest E_nu that can give a recoil E_R: (E_R + sqrt(E_R^2 + 2 M E_R)) / 2, in MeV."""
    recoil = np.asarray(recoil_kev, np.float64) * 1e-6
    mass = wimp.nucleus_mass_gev(mass_number)
    return 0.5 * (recoil + np.sqrt(recoil**2 + 2.0 * mass * recoil)) * 1e3


def cross_section(
    recoil_kev: ArrayLike,
    neutrino_energy_mev: ArrayLike,
    mass_number: float = wimp.XENON_A,
    form_factor: bool = True,
) -> np.ndarray:
    """dsigma/dE_R in cm^2 / keV (0 beyond the kinematic endpoint); broadcasts its inputs."""
    recoil = np.asarray(recoil_kev, np.float64) * 1e-6
    energy = np.asarray(neutrino_energy_mev, np.float64) * 1e-3
    mass = wimp.nucleus_mass_gev(mass_number)
    kinematic = np.maximum(1.0 - mass * recoil / (2.0 * energy**2), 0.0)
    form = wimp.helm_form_factor(recoil_kev, mass_number) ** 2 if form_factor else 1.0
    per_gev = (
        FERMI_CONSTANT_GEV2**2
        * mass
        / (4.0 * np.pi)
        * weak_charge(mass_number) ** 2
        * kinematic
        * form
        * HBAR_C_SQ_CM2_GEV2
    )
    return per_gev * 1e-6


def nuclei_per_tonne(mass_number: float = wimp.XENON_A) -> float:
    """Target nuclei in one tonne."""
    return 1e3 * wimp.KG_IN_GEV / wimp.nucleus_mass_gev(mass_number)


def differential_rate(
    recoil_kev: ArrayLike, mass_number: float = wimp.XENON_A, form_factor: bool = True
) -> np.ndarray:
    """8B CEvNS dR/dE_R in events per tonne, year and keV_nr.

    phi_8B N_T integral over E_nu >= E_nu,min(E_R) of p(E_nu) dsigma/dE_R (trapezoid on a
    1001-point grid in E_nu from E_nu,min to the endpoint, per recoil energy below the
    kinematic endpoint; 0 above it).
    """
    recoil = np.atleast_1d(np.asarray(recoil_kev, np.float64)).ravel()
    low = minimum_neutrino_energy_mev(recoil, mass_number)
    inside = low < B8_ENDPOINT_MEV
    fraction = np.linspace(0.0, 1.0, 1001)
    energies = low[inside, None] + (B8_ENDPOINT_MEV - low[inside, None]) * fraction[None, :]
    integrand = b8_spectrum(energies) * cross_section(
        recoil[inside, None], energies, mass_number, form_factor
    )
    per_nucleus = np.zeros_like(recoil)  # per s, per keV
    per_nucleus[inside] = np.trapezoid(integrand, energies, axis=1)
    rate = B8_FLUX_CM2_S * per_nucleus * nuclei_per_tonne(mass_number) * wimp.SECONDS_PER_YEAR
    return rate.reshape(np.shape(recoil_kev))


def expected_events(
    exposure_tonne_year: float, energy_min_kev: float, energy_max_kev: float
) -> float:
    """8B CEvNS recoils in [energy_min, energy_max] for the exposure (before detection cuts)."""
    top = min(energy_max_kev, float(maximum_recoil_kev(B8_ENDPOINT_MEV)))
    if top <= energy_min_kev:
        return 0.0
    grid = np.geomspace(energy_min_kev, top, 2001)
    return float(np.trapezoid(differential_rate(grid), grid) * exposure_tonne_year)
