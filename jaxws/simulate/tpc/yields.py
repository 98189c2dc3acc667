"""Xenon yields: quanta per keV, charge fraction, recombination spread (NEST-calibrated)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

XENON_NUCLEUS_MASS_GEV = 131.0 * 0.9315
HALO_V0_OVER_C = 220.0 / 299_792.458

ELECTRON_RECOIL = 0
NUCLEAR_RECOIL = 1

# NEST 2.4 (nestpy 2.1.3) at 200 V/cm, 2.9 g/cm3, from experiments/tpc_nest_calibration.py:
# mean quanta per keV, charge fraction electrons / quanta, recombination fluctuation sigma_R.
YIELD_ENERGIES_KEV = (0.5, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 70, 100, 150, 200)
ER_QUANTA_PER_KEV = (74.4,) * 18
ER_CHARGE_FRACTION = (
    0.9817, 0.8362, 0.7146, 0.6322, 0.5349, 0.4807, 0.4463, 0.4048, 0.3719,
    0.3448, 0.3308, 0.3177, 0.3153, 0.3208, 0.3476, 0.3952, 0.4538, 0.4924,
)  # fmt: skip
ER_RECOMBINATION_SIGMA = (
    0, 0, 0, 0, 0.02188, 0.0359, 0.03909, 0.04139, 0.04031,
    0.03826, 0.0366, 0.03501, 0.03412, 0.03504, 0.03691, 0.03951, 0.03875, 0.03656,
)  # fmt: skip
NR_QUANTA_PER_KEV = (
    9.043, 10.67, 11.3, 11.7, 12.24, 12.62, 12.91, 13.36, 13.86,
    14.43, 14.86, 15.47, 15.92, 16.28, 16.84, 17.45, 18.18, 18.71,
)  # fmt: skip
NR_CHARGE_FRACTION = (
    0.6215, 0.6449, 0.6269, 0.6052, 0.5666, 0.5351, 0.5088, 0.4667, 0.4196,
    0.3647, 0.326, 0.2739, 0.2395, 0.2147, 0.1807, 0.1494, 0.1194, 0.1014,
)  # fmt: skip
NR_RECOMBINATION_SIGMA = (
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.001921, 0.003239, 0.003695, 0.00375,
)  # fmt: skip
SPECTRUM_TABLE_SIZE = 1024


def yield_curves(energy: jax.Array, is_nr: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(quanta per keV, charge fraction, recombination sigma) at `energy`, linear in log E."""
    log_e = jnp.log(jnp.asarray(YIELD_ENERGIES_KEV, jnp.float32))
    x = jnp.log(jnp.maximum(energy, 1e-3))

    def curve(er_values: tuple[float, ...], nr_values: tuple[float, ...]) -> jax.Array:
        er = jnp.interp(x, log_e, jnp.asarray(er_values, jnp.float32))
        nr = jnp.interp(x, log_e, jnp.asarray(nr_values, jnp.float32))
        return jnp.where(is_nr, nr, er)

    return (
        curve(ER_QUANTA_PER_KEV, NR_QUANTA_PER_KEV),
        curve(ER_CHARGE_FRACTION, NR_CHARGE_FRACTION),
        curve(ER_RECOMBINATION_SIGMA, NR_RECOMBINATION_SIGMA),
    )


def nr_spectrum_slope(wimp_mass_gev: float | jax.Array) -> jax.Array:
    """Characteristic NR energy E_c = 2 mu^2 v0^2 / m_N in keV for a WIMP-like mass in GeV.

    dR/dE ~ exp(-E / E_c) (Lewin and Smith without form factor): about 5, 11 and 27 keV for
    30, 50 and 100 GeV on xenon.
    """
    mass = jnp.asarray(wimp_mass_gev, dtype=jnp.float32)
    reduced = mass * XENON_NUCLEUS_MASS_GEV / (mass + XENON_NUCLEUS_MASS_GEV)
    return 2.0 * reduced**2 * HALO_V0_OVER_C**2 / XENON_NUCLEUS_MASS_GEV * 1.0e6


# Counting fluctuations. jax.random.poisson/binomial compile slowly (seconds per call site), so
# the toy uses its own sampler: exact inverse-CDF search for small means (where the shape
# matters), a rounded Gaussian above SMALL_MEAN (where it is accurate to a few per cent).
SMALL_MEAN = 30.0
_MAX_SMALL_COUNT = 100
