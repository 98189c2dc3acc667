"""Recoil-energy spectra: flat, exponential and WIMP nuclear recoils, sampled by inverse CDF."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxws.simulate.tpc.detector import TPCParams
from jaxws.simulate.tpc.yields import SPECTRUM_TABLE_SIZE


def sample_recoil_energy(
    key: jax.Array,
    n: int,
    slope_kev: float | jax.Array,
    params: TPCParams,
) -> jax.Array:
    """Recoil energies (n,) in keV on [energy_min, energy_max], flat or exponential.

    Args:
      key: PRNG key (consumed).
      n: number of events.
      slope_kev: exponential slope E_c of dR/dE ~ exp(-E / E_c); `inf` (or <= 0) gives
        the flat spectrum. A traced value, so one compiled program serves every slope.
      params: detector numbers.

    Returns:
      Energies drawn by inverting the (truncated) CDF.
    """
    u = jax.random.uniform(key, (n,))
    low, high = params.energy_min, params.energy_max
    slope = jnp.asarray(slope_kev, jnp.float32)
    flat = ~jnp.isfinite(slope) | (slope <= 0)
    safe_slope = jnp.where(flat, 1.0, slope)
    # Truncated exponential: E = low - E_c log(1 - u (1 - exp(-(high - low) / E_c))).
    span = -jnp.expm1(-(high - low) / safe_slope)
    exponential = low - safe_slope * jnp.log1p(-u * span)
    return jnp.where(flat, low + (high - low) * u, exponential)


@struct.dataclass
class RecoilSpectrum:
    """A recoil-energy spectrum tabulated for inverse-CDF sampling (a pytree of fixed shape).

    Attributes:
      energies: (SPECTRUM_TABLE_SIZE,) increasing energies in keV; cdf: the CDF there (0 to 1).
    """

    energies: jax.Array
    cdf: jax.Array

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """Draw `n` energies by linear interpolation of the inverse CDF."""
        return jnp.interp(jax.random.uniform(key, (n,)), self.cdf, self.energies)


def _spectrum_grid(params: TPCParams) -> np.ndarray:
    # Log-spaced: the falling spectra need resolution near threshold.
    return np.geomspace(float(params.energy_min), float(params.energy_max), SPECTRUM_TABLE_SIZE)


def flat_spectrum(params: TPCParams) -> RecoilSpectrum:
    """Flat on [energy_min, energy_max] (the classifier's NR class; the ER background)."""
    grid = _spectrum_grid(params)
    cdf = (grid - grid[0]) / (grid[-1] - grid[0])
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


def exponential_spectrum(slope_kev: float, params: TPCParams) -> RecoilSpectrum:
    """dR/dE ~ exp(-E / slope) on [energy_min, energy_max] (neutron-like background)."""
    grid = _spectrum_grid(params)
    cdf = -np.expm1(-(grid - grid[0]) / slope_kev) / -np.expm1(-(grid[-1] - grid[0]) / slope_kev)
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


def wimp_spectrum(wimp_mass_gev: float, params: TPCParams) -> RecoilSpectrum:
    """Spin-independent WIMP recoils: standard halo, Helm form factor (`jaxws.simulate.wimp`)."""
    from jaxws.simulate import wimp

    grid = _spectrum_grid(params)
    fine = np.geomspace(grid[0], grid[-1], 16 * grid.size)
    rate = wimp.differential_rate(fine, wimp_mass_gev, 1e-45)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(fine))])
    cdf = np.interp(grid, fine, cdf / cdf[-1])
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


def cevns_spectrum(params: TPCParams) -> RecoilSpectrum:
    """Solar 8B CEvNS recoils (`jaxws.simulate.cevns`), zero above their kinematic endpoint.

    Raises:
      ValueError: the energy window lies entirely above the endpoint (no CEvNS recoil in it).
    """
    from jaxws.simulate import cevns

    grid = _spectrum_grid(params)
    endpoint = float(cevns.maximum_recoil_kev(cevns.B8_ENDPOINT_MEV))
    fine = np.geomspace(grid[0], max(min(grid[-1], endpoint), grid[0] * 1.001), 4096)
    rate = cevns.differential_rate(fine)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(fine))])
    if cdf[-1] <= 0:
        raise ValueError(
            f"no 8B CEvNS recoil above energy_min = {float(params.energy_min):g} keV "
            f"(endpoint {float(cevns.maximum_recoil_kev(cevns.B8_ENDPOINT_MEV)):.2f} keV)"
        )
    cdf = np.interp(grid, fine, cdf / cdf[-1])
    return RecoilSpectrum(jnp.asarray(grid, jnp.float32), jnp.asarray(cdf, jnp.float32))


def mixture_spectrum(spectra: list[RecoilSpectrum], weights: list[float]) -> RecoilSpectrum:
    """The spectrum of a mixture: CDFs (on the same energy grid) averaged with `weights`."""
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
    cdf = sum(w / total * s.cdf for s, w in zip(spectra, weights, strict=True))
    return RecoilSpectrum(spectra[0].energies, cdf)
