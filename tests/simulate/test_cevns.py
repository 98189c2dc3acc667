"""Solar 8B CEvNS and neutron backgrounds of the TPC toy (jaxws.simulate.cevns, tpc.backgrounds).

References are independent of the implementation's order of integration: the rate above a
threshold is a nested scipy.integrate.quad over the recoil energy inside the neutrino energy
(the library integrates over the neutrino energy inside the recoil energy), and for a
point-like nucleus the cross-section integrates to the closed form G_F^2 Q_W^2 E_nu^2 / (4 pi).
"""

import math

import jax
import numpy as np
import pytest
from margins import SAMPLING, record, record_p
from scipy import integrate, stats

from jaxws.simulate import cevns, tpc, wimp

ENDPOINT_KEV = float(cevns.maximum_recoil_kev(cevns.B8_ENDPOINT_MEV))


def test_weak_charge_and_target_count():
    # Q_W = N - (1 - 4 sin^2 theta_W) Z for 131Xe; tonne of 131 u nuclei (u = 1.66054e-27 kg).
    assert cevns.weak_charge() == pytest.approx(77 - (1 - 4 * 0.2387) * 54)
    assert cevns.nuclei_per_tonne() == pytest.approx(1e3 / (131 * 1.66054e-27), rel=2e-3)


def test_point_nucleus_cross_section_integrates_to_closed_form():
    for energy_mev in (5.0, 10.0):
        top = float(cevns.maximum_recoil_kev(energy_mev))
        total, _ = integrate.quad(
            lambda e, en=energy_mev: float(cevns.cross_section(e, en, form_factor=False)), 0, top
        )
        # E_max = 2 E^2 / (M + 2 E), so the integral is (G_F^2 Q_W^2 E^2 / (4 pi)) M / (M + 2 E).
        mass = wimp.nucleus_mass_gev()
        energy = energy_mev * 1e-3
        closed = (
            (cevns.FERMI_CONSTANT_GEV2**2 * cevns.weak_charge() ** 2 * energy**2 / (4 * math.pi))
            * cevns.HBAR_C_SQ_CM2_GEV2
            * mass
            / (mass + 2 * energy)
        )
        assert total == pytest.approx(closed, rel=1e-6)
        # The textbook magnitude: about 4.2e-45 cm^2 N^2 (E / MeV)^2 for Q_W ~ N.
        per_charge = closed / (cevns.weak_charge() ** 2 * energy_mev**2)
        assert per_charge == pytest.approx(4.2e-45, rel=0.02)


def test_spectrum_vanishes_above_the_kinematic_endpoint():
    energy_gev = cevns.B8_ENDPOINT_MEV * 1e-3
    closed = 2 * energy_gev**2 / (wimp.nucleus_mass_gev() + 2 * energy_gev) * 1e6
    assert pytest.approx(closed) == ENDPOINT_KEV
    above = cevns.differential_rate(np.array([1.001, 1.5, 3.0, 10.0]) * ENDPOINT_KEV)
    assert np.all(above == 0)
    below = cevns.differential_rate(np.array([0.1, 0.5, 0.9]) * ENDPOINT_KEV)
    assert np.all(below > 0)
    assert np.all(np.diff(below) < 0)  # steeply falling
    assert float(cevns.cross_section(1.01 * cevns.maximum_recoil_kev(8.0), 8.0)) == 0.0
    # E_nu,min inverts E_max.
    energy = cevns.minimum_neutrino_energy_mev(2.0)
    assert float(cevns.maximum_recoil_kev(energy)) == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("threshold_kev", [0.5, 1.0, 2.0])
def test_rate_above_threshold_matches_nested_quad(threshold_kev):
    def per_neutrino(energy_mev):
        top = float(cevns.maximum_recoil_kev(energy_mev))
        inner, _ = integrate.quad(
            lambda e: float(cevns.cross_section(e, energy_mev)), threshold_kev, top
        )
        return float(cevns.b8_spectrum(energy_mev)) * inner

    low = float(cevns.minimum_neutrino_energy_mev(threshold_kev))
    outer, _ = integrate.quad(per_neutrino, low, cevns.B8_ENDPOINT_MEV, limit=200)
    reference = (
        cevns.B8_FLUX_CM2_S * outer * cevns.nuclei_per_tonne() * wimp.SECONDS_PER_YEAR
    )  # per tonne-year
    assert cevns.expected_events(1.0, threshold_kev, 100.0) == pytest.approx(reference, rel=5e-3)


def test_point_nucleus_rate_is_flux_times_mean_cross_section():
    grid = np.geomspace(1e-6, ENDPOINT_KEV, 4001)
    rate = np.trapezoid(cevns.differential_rate(grid, form_factor=False), grid)
    energies = np.linspace(0, cevns.B8_ENDPOINT_MEV, 20001)
    mass = wimp.nucleus_mass_gev()
    sigma = (
        cevns.FERMI_CONSTANT_GEV2**2
        * cevns.weak_charge() ** 2
        * (energies * 1e-3) ** 2
        / (4 * math.pi)
        * cevns.HBAR_C_SQ_CM2_GEV2
        * mass
        / (mass + 2 * energies * 1e-3)
    )
    mean_sigma = np.trapezoid(cevns.b8_spectrum(energies) * sigma, energies)
    expected = cevns.B8_FLUX_CM2_S * mean_sigma * cevns.nuclei_per_tonne() * wimp.SECONDS_PER_YEAR
    assert rate == pytest.approx(expected, rel=2e-3)


@pytest.mark.statistical
def test_sampled_cevns_energies_follow_the_rate():
    data = tpc.TPCConfig(energy_min=0.5, cevns=True)
    spectrum = tpc.cevns_spectrum(data.params())
    energies = np.asarray(spectrum.sample(jax.random.key(0), 4000))
    assert energies.max() <= ENDPOINT_KEV * 1.001
    # Reference CDF: the differential rate integrated on its own fine grid (Simpson).
    grid = np.linspace(0.5, ENDPOINT_KEV, 4001)
    rate = cevns.differential_rate(grid)
    partial = np.array(
        [integrate.simpson(rate[: i + 1], x=grid[: i + 1]) for i in range(0, 4001, 8)]
    )
    table = grid[::8]

    def cdf(e):
        return np.interp(e, table, partial / partial[-1])

    # n = 4000: KS rejects a CDF error of 0.03 at the 1% level with power > 0.95.
    p_value = stats.kstest(energies, cdf).pvalue
    record_p("KS CEvNS energies vs rate", p_value, 0.01, SAMPLING)
    assert p_value > 0.01


@pytest.mark.statistical
def test_background_counts_scale_with_exposure_and_set_the_nr_fraction():
    data = tpc.TPCConfig(cevns=True, neutron_rate_per_tonne_year=0.1)
    one, three = tpc.background_recoils(data, 1.0), tpc.background_recoils(data, 3.0)
    for name in ("er", "cevns", "neutron"):
        assert three[name] == pytest.approx(3 * one[name], rel=1e-12)
    assert one["er"] == pytest.approx(12.3 * 99.0)
    assert one["cevns"] == pytest.approx(cevns.expected_events(1.0, 1.0, 100.0))
    fraction, spectrum = tpc.background_nr_law(data)
    nr = one["cevns"] + one["neutron"]
    assert fraction == pytest.approx(nr / (nr + one["er"]))
    # The NR mixture: the CEvNS share of NR lies below the endpoint, the neutrons above it too.
    energies = np.asarray(spectrum.sample(jax.random.key(1), 20000))
    share = np.mean(energies <= ENDPOINT_KEV * 1.001)
    neutron_below = -math.expm1(-(ENDPOINT_KEV - 1.0) / 30.0) / -math.expm1(-99.0 / 30.0)
    expected = (one["cevns"] + one["neutron"] * neutron_below) / nr
    se = math.sqrt(expected * (1 - expected) / energies.size)
    record(
        "|CEvNS share below endpoint - expected| < 4 SE",
        abs(share - expected),
        4 * se,
        se,
        SAMPLING,
        False,
    )
    assert abs(share - expected) < 4 * se
    off = tpc.TPCConfig()
    assert tpc.background_recoils(off, 5.0)["cevns"] == 0.0
    assert tpc.background_nr_law(off)[0] == 0.0


@pytest.mark.statistical
def test_background_nr_share_in_simulated_events():
    data = tpc.TPCConfig(cevns=True, neutron_rate_per_tonne_year=50.0)
    fraction, spectrum = tpc.background_nr_law(data)
    params = data.params()
    events = tpc.simulate_events(
        jax.random.key(2), 2000, params, tpc.sensor_grid_for(params, 1), fraction, spectrum
    )
    n_nr = int(np.sum(np.asarray(events["recoil_type"]) == tpc.NUCLEAR_RECOIL))
    p_value = stats.binomtest(n_nr, 2000, fraction).pvalue
    record_p("binomial NR share in events", p_value, 0.001, SAMPLING)
    assert p_value > 0.001
