"""The toy TPC (jaxws.simulate.tpc): spectra, counting statistics, S1/S2, hit pattern."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from margins import SAMPLING, record, record_p
from scipy import stats

from jaxws.config import ConfigError, from_section
from jaxws.simulate import tpc

PARAMS = tpc.TPCParams()
SENSORS = jnp.asarray(tpc.sensor_grid_for(PARAMS, 2), jnp.float32)
FLAT = tpc.flat_spectrum(PARAMS)


@pytest.fixture(scope="module")
def events():
    er = tpc.simulate_events_jit(jax.random.key(0), 4096, PARAMS, SENSORS, 0.0, FLAT)
    nr = tpc.simulate_events_jit(jax.random.key(1), 4096, PARAMS, SENSORS, 1.0, FLAT)
    return {k: np.asarray(v) for k, v in er.items()}, {k: np.asarray(v) for k, v in nr.items()}


@pytest.mark.parametrize(("rings", "count"), [(1, 7), (2, 19), (3, 37)])
def test_hexagonal_grid(rings, count):
    grid = tpc.hexagonal_sensor_grid(rings, pitch_cm=10.0)
    assert grid.shape == (count, 2)
    np.testing.assert_allclose(grid.mean(axis=0), 0.0, atol=1e-9)
    distances = np.linalg.norm(grid[:, None] - grid[None], axis=-1)
    np.testing.assert_allclose(np.min(distances + 1e9 * np.eye(count)), 10.0)


def test_light_response_is_normalised_and_peaks_under_the_event():
    positions = jnp.asarray(tpc.sensor_grid_for(PARAMS, 2)[[0, 5, 9]], jnp.float32)
    share = np.asarray(tpc.light_response(positions, SENSORS, PARAMS.sensor_height_cm))
    np.testing.assert_allclose(share.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(np.argmax(share, axis=1), [0, 5, 9])


def test_nr_slope_is_the_standard_halo_value():
    m_n = 131 * 0.9315
    for mass in (30.0, 50.0, 100.0):
        mu = mass * m_n / (mass + m_n)
        expected = 2 * mu**2 * (220 / 299792.458) ** 2 / m_n * 1e6
        np.testing.assert_allclose(float(tpc.nr_spectrum_slope(mass)), expected, rtol=1e-5)
    assert 4 < float(tpc.nr_spectrum_slope(30.0)) < float(tpc.nr_spectrum_slope(100.0)) < 30


@pytest.mark.statistical
def test_recoil_spectra_follow_their_laws():
    key = jax.random.key(2)
    flat = np.asarray(tpc.sample_recoil_energy(key, 5000, jnp.inf, PARAMS))
    p_value = stats.kstest(flat, stats.uniform(1.0, 99.0).cdf).pvalue
    record_p("KS flat recoil spectrum", p_value, 0.01, SAMPLING)
    assert p_value > 0.01
    slope = 11.0
    falling = np.asarray(tpc.sample_recoil_energy(key, 5000, slope, PARAMS))
    law = stats.truncexpon(b=99.0 / slope, loc=1.0, scale=slope)
    p_value = stats.kstest(falling, law.cdf).pvalue
    record_p("KS falling recoil spectrum", p_value, 0.01, SAMPLING)
    assert p_value > 0.01


@pytest.mark.statistical
@pytest.mark.parametrize(("trials", "probability"), [(40.0, 0.12), (30.0, 0.9), (5000.0, 0.3)])
def test_binomial_counts_moments(trials, probability):
    keys = jax.random.split(jax.random.key(3), 1)
    counts = np.asarray(
        tpc.binomial_counts(keys[0], jnp.full(20000, trials), jnp.float32(probability))
    )
    assert counts.min() >= 0
    assert counts.max() <= trials
    mean, var = trials * probability, trials * probability * (1 - probability)
    se = math.sqrt(var / counts.size)
    record("|mean - n p| < 5 SE", abs(counts.mean() - mean), 5 * se, se, SAMPLING, above=False)
    assert abs(counts.mean() - mean) < 5 * se
    # The sample variance's standard error: sqrt((mu4 - var^2 (n-3)/(n-1)) / n), mu4 of the
    # binomial.
    mu4 = var * (1 + 3 * (trials - 2) * probability * (1 - probability))
    se_var = math.sqrt((mu4 - var**2 * (counts.size - 3) / (counts.size - 1)) / counts.size)
    record("|var / n p q - 1| < 0.05", abs(counts.var() - var), 0.05 * var, se_var, SAMPLING, False)
    np.testing.assert_allclose(counts.var(), var, rtol=0.05)
    if trials * min(probability, 1 - probability) < tpc.SMALL_MEAN:  # exact regime: the pmf
        values = np.arange(int(trials) + 1)
        expected = stats.binom.pmf(values, int(trials), probability) * counts.size
        observed = np.bincount(counts.astype(int), minlength=values.size)
        keep = expected > 5
        chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
        record_p("chi2 of the pmf", stats.chi2.sf(chi2, keep.sum() - 1), 0.01, SAMPLING)
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 0.01


@pytest.mark.statistical
def test_poisson_counts_moments():
    for mean in (3.0, 200.0):
        counts = np.asarray(tpc.poisson_counts(jax.random.key(4), jnp.full(20000, mean)))
        se = math.sqrt(mean / counts.size)
        record("|mean - mu| < 5 SE", abs(counts.mean() - mean), 5 * se, se, SAMPLING, False)
        assert abs(counts.mean() - mean) < 5 * se
        # Poisson: fourth central moment mu (1 + 3 mu).
        se_var = math.sqrt(
            (mean * (1 + 3 * mean) - mean**2 * (counts.size - 3) / (counts.size - 1)) / counts.size
        )
        record(
            "|var / mu - 1| < 0.05", abs(counts.var() - mean), 0.05 * mean, se_var, SAMPLING, False
        )
        np.testing.assert_allclose(counts.var(), mean, rtol=0.05)


def test_nuclear_recoils_have_lower_charge_to_light(events):
    er, nr = events
    for sample in (er, nr):
        np.testing.assert_allclose(sample["pattern"].sum(axis=1), 1.0, rtol=1e-5)
        passed = (sample["s1"] >= PARAMS.s1_threshold) & (sample["s2"] >= PARAMS.s2_threshold)
        np.testing.assert_array_equal(sample["detected"], passed)
    # At equal S1 (a window), NR has the smaller S2/S1.
    window = lambda e: e["detected"] & (e["s1"] > 30) & (e["s1"] < 60)
    ratio = lambda e: np.median(np.log10(e["s2"][window(e)] / e["s1"][window(e)]))
    assert ratio(nr) < ratio(er) - 0.2
    assert set(np.unique(er["recoil_type"])) == {0}
    assert set(np.unique(nr["recoil_type"])) == {1}


def test_vmap_over_keys_and_nr_fraction_matches_single_calls(events):
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    batched = jax.vmap(lambda k, f: tpc.simulate_events(k, 4096, PARAMS, SENSORS, f, FLAT))(
        keys, jnp.array([0.0, 1.0])
    )
    for i, single in enumerate(events):  # the fixture: same keys, one call each
        np.testing.assert_allclose(batched["s2"][i], single["s2"], rtol=1e-5)
        # Float rounding inside vmap may move a Gaussian-approximated count by one in rare events.
        np.testing.assert_allclose(batched["pattern"][i], single["pattern"], atol=2e-3)
        np.testing.assert_array_equal(batched["recoil_type"][i], single["recoil_type"])


def test_config_refuses_bad_values():
    with pytest.raises(ConfigError, match=r"data.g1"):
        from_section(tpc.TPCConfig, {"g1": 1.5}, "data")
    with pytest.raises(ConfigError, match="unknown key"):
        from_section(tpc.TPCConfig, {"g3": 1.0}, "data")
    with pytest.raises(ConfigError, match="energy_min"):
        from_section(tpc.TPCConfig, {"energy_min": 200.0}, "data")


# --- NEST (nestpy, the physics extra) as the reference for yields and bands ---------------


def test_toy_yields_follow_nest_between_the_knots():
    """Mean quanta, charge fraction and electron-count spread match NEST at off-knot energies."""
    from jaxws.simulate import nest_reference

    energies = np.array([2.5, 12.0, 60.0])
    for recoil, is_nr in (("er", False), ("nr", True)):
        nest = nest_reference.mean_yields(recoil, energies)
        per_kev, fraction, _ = tpc.yield_curves(jnp.asarray(energies, jnp.float32), is_nr)
        nest_quanta = nest["photons_per_kev"] + nest["electrons_per_kev"]
        np.testing.assert_allclose(np.asarray(per_kev), nest_quanta, rtol=0.02)
        np.testing.assert_allclose(
            np.asarray(fraction), nest["electrons_per_kev"] / nest_quanta, rtol=0.04
        )
    # Electron-count spread at 10 keV (ER), with recombination fluctuations: within 10%.
    _, nest_electrons = nest_reference.sample_quanta("er", np.full(4000, 10.0), seed=1)
    types = jnp.zeros(4000, jnp.int32)
    _, electrons = tpc.quanta(jax.random.key(5), jnp.full(4000, 10.0), types, PARAMS)
    np.testing.assert_allclose(np.std(np.asarray(electrons)), np.std(nest_electrons), rtol=0.1)
    np.testing.assert_allclose(np.mean(np.asarray(electrons)), np.mean(nest_electrons), rtol=0.03)
