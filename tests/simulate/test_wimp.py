"""The WIMP recoil spectrum (jaxws.simulate.wimp) against closed forms and Monte Carlo."""

import math

import jax
import numpy as np
import pytest
from margins import SAMPLING, record, record_p
from scipy import stats

from jaxws.simulate import tpc, wimp


def halo_velocities(n, seed=0):
    """Lab-frame WIMP speeds: Maxwellian (sigma = v0 / sqrt 2 per axis) cut at v_esc, boosted."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0.0, wimp.V0_KM_S / math.sqrt(2.0), size=(n, 3))
    v = v[np.linalg.norm(v, axis=1) < wimp.ESCAPE_SPEED_KM_S]
    v[:, 0] -= wimp.EARTH_SPEED_KM_S
    return np.linalg.norm(v, axis=1)


def test_helm_form_factor_is_one_at_zero_and_vanishes_at_the_bessel_zero():
    assert float(wimp.helm_form_factor(0.0)) == 1.0
    # j1(x) / x first vanishes at tan x = x, x = 4.4934; q = x / r_n.
    s, a = 0.9, 0.52
    c = 1.23 * 131 ** (1 / 3) - 0.60
    r_n = math.sqrt(c**2 + 7 / 3 * math.pi**2 * a**2 - 5 * s**2)
    q_gev = 4.493409 / r_n * wimp.HBAR_C_GEV_FM
    energy_kev = q_gev**2 / (2 * wimp.nucleus_mass_gev()) * 1e6
    assert abs(float(wimp.helm_form_factor(energy_kev))) < 1e-4
    assert (
        float(wimp.helm_form_factor(0.9 * energy_kev))
        > 0
        > float(wimp.helm_form_factor(1.1 * energy_kev))
    )


@pytest.mark.statistical
def test_eta_matches_monte_carlo_of_the_standard_halo():
    speeds = halo_velocities(2_000_000)
    for v_min in (0.0, 200.0, 400.0, 600.0):
        inverse = np.where(speeds > v_min, 1.0 / speeds, 0.0)
        mc, se = np.mean(inverse), np.std(inverse) / np.sqrt(inverse.size)
        eta = float(wimp.halo_eta(v_min))
        record("|eta - Monte Carlo| < 1% (4)", abs(eta - mc), 0.01 * abs(mc), se, SAMPLING, False)
        np.testing.assert_allclose(float(wimp.halo_eta(v_min)), mc, rtol=0.01)
    assert float(wimp.halo_eta(wimp.ESCAPE_SPEED_KM_S + wimp.EARTH_SPEED_KM_S + 1)) == 0.0


def test_total_rate_of_a_point_nucleus_is_flux_times_cross_section():
    """F = 1: the integral of dR/dE is N_T n_chi sigma_N <v> (units and factors of two)."""
    mass, sigma_n = 100.0, 1e-45
    m_n = wimp.nucleus_mass_gev()
    mu_nucleus = mass * m_n / (mass + m_n)
    mu_nucleon = mass * wimp.NUCLEON_MASS_GEV / (mass + wimp.NUCLEON_MASS_GEV)
    sigma_nucleus = sigma_n * 131**2 * (mu_nucleus / mu_nucleon) ** 2
    mean_speed_cm_s = np.mean(halo_velocities(2_000_000)) * 1e5
    nuclei_per_tonne = 1e3 * wimp.KG_IN_GEV / m_n
    expected = (
        nuclei_per_tonne
        * wimp.LOCAL_DENSITY_GEV_CM3
        / mass
        * sigma_nucleus
        * mean_speed_cm_s
        * wimp.SECONDS_PER_YEAR
    )
    grid = np.linspace(0.0, 600.0, 200001)
    rate = wimp.differential_rate(grid, mass, sigma_n, form_factor=False)
    np.testing.assert_allclose(np.trapezoid(rate, grid), expected, rtol=0.01)


def test_seed_benchmark_counts_are_hundreds_of_recoils():
    """6.5e-48 cm2, 200 t y on xenon: O(100) recoils in 1-100 keV, fewer for heavier WIMPs."""
    counts = [wimp.expected_events(m, 6.5e-48, 200.0, 1.0, 100.0) for m in (30, 50, 100)]
    assert 100 < counts[2] < counts[1] < counts[0] < 1000


@pytest.mark.statistical
def test_tabulated_wimp_spectrum_samples_the_rate():
    params = tpc.TPCParams()
    spectrum = tpc.wimp_spectrum(50.0, params)
    energies = np.asarray(spectrum.sample(jax.random.key(0), 20000))
    grid = np.linspace(1.0, 100.0, 20001)
    rate = wimp.differential_rate(grid, 50.0, 1e-45)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    p_value = stats.kstest(energies, lambda e: np.interp(e, grid, cdf)).pvalue
    record_p("KS WIMP energies vs rate", p_value, 0.01, SAMPLING)
    assert p_value > 0.01
