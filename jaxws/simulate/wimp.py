"""Spin-independent WIMP-xenon recoil spectrum: standard halo model and Helm form factor.

Lewin and Smith (Astropart. Phys. 6 (1996) 87) with the conventions of the direct-detection
community (Baxter et al., arXiv:2105.00599):

* dR/dE_R = rho_0 sigma_n A^2 F^2(E_R) / (2 m_chi mu_n^2) * eta(v_min) per unit target mass,
  mu_n the WIMP-nucleon reduced mass, v_min = sqrt(m_N E_R / 2) / mu_N (elastic scattering);
* eta(v_min) = integral of f(v) / v over v > v_min for the standard halo: a Maxwell-Boltzmann
  distribution of dispersion v0 / sqrt(2), truncated at v_esc in the galactic frame and boosted
  by the Earth's speed v_E (closed form of Savage, Freese and Gondolo 2006);
* Helm form factor F(q) = 3 j1(q r_n) / (q r_n) exp(-(q s)^2 / 2), s = 0.9 fm,
  r_n^2 = c^2 + 7/3 pi^2 a^2 - 5 s^2, c = 1.23 A^(1/3) - 0.60 fm, a = 0.52 fm;
* xenon as a single isotope of mass number A = 131 (m_N = A x 0.9315 GeV).

Plain numpy (host side): spectra are tabulated once and sampled in JAX by inverse CDF.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

SPEED_OF_LIGHT_KM_S = 299_792.458
ATOMIC_MASS_GEV = 0.9315
NUCLEON_MASS_GEV = 0.9383
HBAR_C_GEV_FM = 0.1973269804
KG_IN_GEV = 5.60958865e26
SECONDS_PER_YEAR = 365.25 * 86400.0

XENON_A = 131.0
LOCAL_DENSITY_GEV_CM3 = 0.3
V0_KM_S = 238.0
EARTH_SPEED_KM_S = 254.0
ESCAPE_SPEED_KM_S = 544.0


def nucleus_mass_gev(mass_number: float = XENON_A) -> float:
    """Nucleus mass m_N = A x 0.9315 GeV."""
    return mass_number * ATOMIC_MASS_GEV


def helm_form_factor(energy_kev: ArrayLike, mass_number: float = XENON_A) -> np.ndarray:
    """Helm form factor F(E_R) (F(0) = 1), Lewin and Smith's parameters."""
    energy_gev = np.asarray(energy_kev, np.float64) * 1e-6
    q = np.sqrt(2.0 * nucleus_mass_gev(mass_number) * energy_gev) / HBAR_C_GEV_FM  # 1 / fm
    s, a = 0.9, 0.52
    c = 1.23 * mass_number ** (1.0 / 3.0) - 0.60
    r_n = math.sqrt(c**2 + 7.0 / 3.0 * math.pi**2 * a**2 - 5.0 * s**2)
    x = q * r_n
    safe = np.where(x > 1e-6, x, 1.0)
    j1 = (np.sin(safe) - safe * np.cos(safe)) / safe**2
    bessel = np.where(x > 1e-6, 3.0 * j1 / safe, 1.0)
    return bessel * np.exp(-0.5 * (q * s) ** 2)


def halo_eta(
    v_min_km_s: ArrayLike,
    v0: float = V0_KM_S,
    v_earth: float = EARTH_SPEED_KM_S,
    v_esc: float = ESCAPE_SPEED_KM_S,
) -> np.ndarray:
    """Mean inverse speed eta(v_min) in s/km for the truncated, boosted Maxwellian."""
    x = np.asarray(v_min_km_s, np.float64) / v0
    y, z = v_earth / v0, v_esc / v0
    norm = special.erf(z) - 2.0 / math.sqrt(math.pi) * z * math.exp(-(z**2))
    low = special.erf(x + y) - special.erf(x - y) - 4.0 / math.sqrt(math.pi) * y * math.exp(-(z**2))
    mid = (
        special.erf(z)
        - special.erf(x - y)
        - 2.0 / math.sqrt(math.pi) * (z + y - x) * math.exp(-(z**2))
    )
    eta = np.where(x < z - y, low, np.where(x < z + y, mid, 0.0))
    return np.maximum(eta, 0.0) / (2.0 * norm * y * v0)


def minimum_speed_km_s(
    energy_kev: ArrayLike, wimp_mass_gev: float, mass_number: float = XENON_A
) -> np.ndarray:
    """v_min = sqrt(m_N E_R / 2) / mu_N for elastic scattering, in km/s."""
    m_n = nucleus_mass_gev(mass_number)
    mu = wimp_mass_gev * m_n / (wimp_mass_gev + m_n)
    energy_gev = np.asarray(energy_kev, np.float64) * 1e-6
    return np.sqrt(m_n * energy_gev / 2.0) / mu * SPEED_OF_LIGHT_KM_S


def differential_rate(
    energy_kev: ArrayLike,
    wimp_mass_gev: float,
    cross_section_cm2: float,
    mass_number: float = XENON_A,
    form_factor: bool = True,
) -> np.ndarray:
    """dR/dE_R in events per tonne, year and keV (spin-independent, isospin-conserving).

    `form_factor=False` sets F = 1 (a point-like nucleus; for checks).
    """
    mu_n = wimp_mass_gev * NUCLEON_MASS_GEV / (wimp_mass_gev + NUCLEON_MASS_GEV)
    eta_s_per_cm = halo_eta(minimum_speed_km_s(energy_kev, wimp_mass_gev, mass_number)) * 1e-5
    c_cm_s = SPEED_OF_LIGHT_KM_S * 1e5
    # GeV^-2 s^-1: per GeV of recoil energy and per GeV (c^2) of target mass.
    rate = (
        LOCAL_DENSITY_GEV_CM3
        * cross_section_cm2
        * mass_number**2
        * (helm_form_factor(energy_kev, mass_number) ** 2 if form_factor else 1.0)
        / (2.0 * wimp_mass_gev * mu_n**2)
        * eta_s_per_cm
        * c_cm_s**2
    )
    return rate * KG_IN_GEV * 1e3 * SECONDS_PER_YEAR * 1e-6


def expected_events(
    wimp_mass_gev: float,
    cross_section_cm2: float,
    exposure_tonne_year: float,
    energy_min_kev: float,
    energy_max_kev: float,
) -> float:
    """Expected recoils in [energy_min, energy_max] for the exposure (before detection cuts)."""
    grid = np.linspace(energy_min_kev, energy_max_kev, 4001)
    rate = differential_rate(grid, wimp_mass_gev, cross_section_cm2)
    return float(np.trapezoid(rate, grid) * exposure_tonne_year)
