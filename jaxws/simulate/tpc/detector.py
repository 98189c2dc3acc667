"""The toy TPC's geometry and parameters (`TPCParams`, the `data=tpc` config) and light response."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxws.config import check
from jaxws.simulate import cevns


@struct.dataclass
class TPCParams:
    """Numeric detector response (a pytree: every leaf may be vmapped or swept).

    Energies in keV, lengths in cm, S1/S2 in photoelectrons (PE).
    """

    energy_min: float = 1.0
    energy_max: float = 100.0
    recombination_scale: float = 1.0
    g1: float = 0.12
    spe_resolution: float = 0.35
    g2: float = 20.0
    g2_resolution: float = 0.25
    extraction_efficiency: float = 0.9
    electron_lifetime_cm: float = 300.0
    drift_length_cm: float = 100.0
    radius_cm: float = 60.0
    sensor_height_cm: float = 15.0
    s1_threshold: float = 3.0
    s2_threshold: float = 100.0


@dataclasses.dataclass(frozen=True)
class TPCConfig:
    """Config section `data` for the TPC toy (see docs/anomaly.md for every field).

    Besides the detector numbers (copied into `TPCParams`), it fixes the static sensor layout,
    the background's composition (ER rate per tonne, year and keV; optional 8B CEvNS and
    neutron NR, `jaxws.simulate.tpc.backgrounds`) and the sample sizes the anomaly method draws.
    """

    source: str = "tpc"
    sensor_rings: int = 2
    energy_min: float = 1.0
    energy_max: float = 100.0
    recombination_scale: float = 1.0
    g1: float = 0.12
    g2: float = 20.0
    s1_threshold: float = 3.0
    s2_threshold: float = 100.0
    er_rate_per_tonne_year_kev: float = 12.3
    cevns: bool = False
    neutron_rate_per_tonne_year: float = 0.0
    neutron_slope_kev: float = 30.0
    n_background_train: int = 20000
    n_background_null: int = 50000
    n_background_bank: int = 2000000
    n_signal_train: int = 10000
    n_signal_benchmark: int = 4000

    def __post_init__(self) -> None:
        check(self.source == "tpc", f"data.source must be 'tpc' here, got {self.source!r}")
        check(self.sensor_rings >= 1, f"data.sensor_rings must be >= 1, got {self.sensor_rings}")
        check(
            0.0 < self.energy_min < self.energy_max,
            f"data.energy_min/energy_max must satisfy 0 < min < max, got "
            f"{self.energy_min}, {self.energy_max}",
        )
        check(0.0 < self.g1 < 1.0, f"data.g1 must lie in (0, 1), got {self.g1}")
        check(
            self.recombination_scale >= 0,
            f"data.recombination_scale must be >= 0, got {self.recombination_scale}",
        )
        check(self.g2 > 0, f"data.g2 must be > 0, got {self.g2}")
        check(
            self.er_rate_per_tonne_year_kev > 0,
            f"data.er_rate_per_tonne_year_kev must be > 0, got {self.er_rate_per_tonne_year_kev}",
        )
        check(
            self.neutron_rate_per_tonne_year >= 0,
            f"data.neutron_rate_per_tonne_year must be >= 0, got "
            f"{self.neutron_rate_per_tonne_year}",
        )
        endpoint = float(cevns.maximum_recoil_kev(cevns.B8_ENDPOINT_MEV))
        check(
            not self.cevns or self.energy_min < endpoint,
            f"data.cevns needs energy_min below the 8B CEvNS endpoint ({endpoint:.2f} keV), got "
            f"{self.energy_min}",
        )
        check(self.neutron_slope_kev > 0, "data.neutron_slope_kev must be > 0")
        for name in (
            "n_background_train",
            "n_background_null",
            "n_background_bank",
            "n_signal_train",
            "n_signal_benchmark",
        ):
            check(getattr(self, name) >= 100, f"data.{name} must be >= 100")

    def params(self) -> TPCParams:
        """The numeric `TPCParams` of this section (other fields keep their defaults)."""
        return TPCParams(
            energy_min=self.energy_min,
            energy_max=self.energy_max,
            recombination_scale=self.recombination_scale,
            g1=self.g1,
            g2=self.g2,
            s1_threshold=self.s1_threshold,
            s2_threshold=self.s2_threshold,
        )


def hexagonal_sensor_grid(rings: int, pitch_cm: float) -> np.ndarray:
    """Sensor centres (S, 2) of a hexagonal grid with `rings` rings around a central sensor.

    S = 1 + 3 rings (rings + 1): 7, 19, 37 sensors for 1, 2, 3 rings.
    """
    if rings < 0:
        raise ValueError(f"sensor rings must be >= 0, got {rings}")
    positions = []
    # Axial hex coordinates (q, r) with |q|, |r|, |q + r| <= rings.
    for q in range(-rings, rings + 1):
        for r in range(max(-rings, -q - rings), min(rings, -q + rings) + 1):
            x = pitch_cm * (q + 0.5 * r)
            y = pitch_cm * (math.sqrt(3.0) / 2.0) * r
            positions.append((x, y))
    return np.asarray(sorted(positions, key=lambda p: (round(p[1], 6), round(p[0], 6))))


def sensor_grid_for(params: TPCParams, rings: int) -> np.ndarray:
    """Hexagonal grid whose outer ring sits at about the TPC radius."""
    return hexagonal_sensor_grid(rings, pitch_cm=float(params.radius_cm) / max(rings, 1))


def light_response(
    positions: jax.Array, sensors: jax.Array, height: float | jax.Array
) -> jax.Array:
    """Share of S2 light seen by each sensor (N, S); rows sum to one.

    A solid-angle-like response h / (d^2 + h^2)^(3/2) with d the horizontal distance between
    the interaction and the sensor and h the gas-gap-to-sensor height.
    """
    distance_sq = jnp.sum((positions[:, None, :] - sensors[None, :, :]) ** 2, axis=-1)
    response = height / (distance_sq + height**2) ** 1.5
    return response / jnp.sum(response, axis=-1, keepdims=True)
