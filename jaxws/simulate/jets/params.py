"""Simulator parameters.

The mjj window and regions, background and signal parameters, the 14 benchmarks and their
jet shapes (calibrated to Pythia).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxws.data.samples import BENCHMARK_LAMBDAS

MJJ_WINDOW = (4400.0, 5800.0)
SIGNAL_REGION_EDGES = (4700.0, 5500.0)
JET_RADIUS = 0.8
MAX_ETA = 2.0
MAX_PRONGS = 6
DEFAULT_MAX_CONSTITUENTS = 256
# Internal constituent slots per jet before truncation to C; multiplicities above are capped.
# Pythia's dark jets reach means of 180 with a spread of 60 (hv-reference: 15% of Lambda_D = 10
# ID jets above 256); P(n > 448) < 1e-3 for every calibrated model.
GENERATED_SLOTS = 448
# The selection's jet pT threshold (both leading jets, GeV), as in hv-reference.
LEAD_PT_MIN = 750.0
_GRID_POINTS = 2048
_SQRT_S = 13000.0


@struct.dataclass
class BackgroundParams:
    """QCD dijet background: mjj spectrum, event kinematics and jet shape (all pytree leaves).

    The mjj density is the dijet function f(x) = (1 - x)^p1 / x^(p2 + p3 ln x), x = mjj / 13 TeV.
    """

    dijet_p1: float | jax.Array = 8.0
    dijet_p2: float | jax.Array = 3.2
    dijet_p3: float | jax.Array = 0.0
    ystar_tilt: float | jax.Array = 3.13
    mean_multiplicity: float | jax.Array = 71.06
    multiplicity_shape: float | jax.Array = 6.176
    extra_prongs: float | jax.Array = 0.35
    prong_spread: float | jax.Array = 0.008823
    core_width: float | jax.Array = 0.1281
    pt_hierarchy: float | jax.Array = 1.3
    collinearity: float | jax.Array = 0.3
    width_spread: float | jax.Array = 0.8


@struct.dataclass
class SignalParams:
    """A dark-shower model: Z' resonance in mjj plus jet shapes set by `scale`, `direct_decay`.

    `scale` plays Lambda_D [GeV] (1..50 for the paper's benchmarks; shapes are interpolated in
    log(scale) and clipped outside [0.5, 100]); `direct_decay` in [0, 1] moves from the
    indirect-decay (ID, rho_D -> pi_D pi_D) to the direct-decay (DD) scenario. The mjj peak is
    a Crystal Ball: Gaussian core (`peak_mass`, `peak_width`) with a power-law low tail that
    starts `tail_start` widths below the peak (out-of-cone radiation), exponent `tail_power`.
    """

    scale: float | jax.Array = 10.0
    direct_decay: float | jax.Array = 0.0
    peak_mass: float | jax.Array = 5400.0
    peak_width: float | jax.Array = 100.0
    tail_start: float | jax.Array = 0.5
    tail_power: float | jax.Array = 2.0


_BENCHMARKS = {
    f"{scenario}_lambda{lam}": SignalParams(scale=float(lam), direct_decay=float(dd))
    for scenario, dd in (("id", 0.0), ("dd", 1.0))
    for lam in BENCHMARK_LAMBDAS
}


def benchmark(name: str) -> SignalParams:
    """The `SignalParams` of a named benchmark (see `benchmark_names`)."""
    if name not in _BENCHMARKS:
        raise ValueError(f"unknown signal benchmark {name!r}; known: {', '.join(_BENCHMARKS)}")
    return _BENCHMARKS[name]


@struct.dataclass
class JetShape:
    """Per-jet shape numbers (derived from the background or signal parameters)."""

    mean_multiplicity: jax.Array
    multiplicity_shape: jax.Array
    extra_prongs: jax.Array
    prong_spread: jax.Array
    core_width: jax.Array
    pt_hierarchy: jax.Array
    collinearity: jax.Array
    width_spread: jax.Array


def background_jet_shape(params: BackgroundParams) -> JetShape:
    """The QCD jet shape (identical for every event, independent of mjj)."""
    return JetShape(
        mean_multiplicity=jnp.asarray(params.mean_multiplicity, jnp.float32),
        multiplicity_shape=jnp.asarray(params.multiplicity_shape, jnp.float32),
        extra_prongs=jnp.asarray(params.extra_prongs, jnp.float32),
        prong_spread=jnp.asarray(params.prong_spread, jnp.float32),
        core_width=jnp.asarray(params.core_width, jnp.float32),
        pt_hierarchy=jnp.asarray(params.pt_hierarchy, jnp.float32),
        collinearity=jnp.asarray(params.collinearity, jnp.float32),
        width_spread=jnp.asarray(params.width_spread, jnp.float32),
    )


#: Calibrated dark-jet shapes at Lambda_D = 1, 5, 10, 20, 30, 40, 50 GeV for the indirect (ID)
#: and direct (DD) decay scenarios; columns `SHAPE_COLUMNS`. Fitted by
#: experiments/calibrate_simulator.py to the Pythia 8 samples of the project's generator (and
#: hv-reference at Lambda_D = 10): leading/subleading multiplicity mean and spread, mass / pT
#: and girth (docs/simulator.md has the table and the distances).
SHAPE_COLUMNS = ("mean_multiplicity", "multiplicity_shape", "core_width", "prong_spread")
#: Log-spread of the per-jet width factor (QCD and signal alike; see `_jet_constituents`).
WIDTH_SPREAD = 0.8
_SIGNAL_SHAPES = {
    "id": np.array(
        [
            [91.61, 7.498, 0.09349, 0.0009151],
            [144.3, 6.902, 0.1402, 0.008935],
            [159.5, 8.59, 0.1627, 0.05931],
            [168.7, 8.903, 0.2005, 0.008668],
            [165.7, 11.01, 0.216, 0.0238],
            [171.9, 10.57, 0.2491, 0.08012],
            [171.2, 12.31, 0.2395, 0.1828],
        ],
        np.float32,
    ),
    "dd": np.array(
        [
            [85.75, 6.961, 0.1103, 0.01628],
            [126, 7.24, 0.1588, 0.008919],
            [130.8, 8.471, 0.1634, 0.1371],
            [130.9, 10.11, 0.1803, 0.1885],
            [128.7, 10.13, 0.197, 0.2197],
            [131.9, 10.52, 0.1455, 0.4287],
            [124.5, 9.458, 0.16, 0.4049],
        ],
        np.float32,
    ),
}


def signal_jet_shape(params: SignalParams) -> JetShape:
    """The dark-jet shape of a signal model, interpolated in the calibrated table.

    Linear in log(Lambda_D) between the seven calibrated values of `_SIGNAL_SHAPES` (constant
    outside [1, 50] GeV) and linear in `direct_decay` between the ID and DD tables, so the
    family stays continuous in both parameters (and vmappable). Prong multiplicity, energy
    hierarchy and collinearity keep a smooth form: more prongs at large Lambda_D and for DD.
    """
    log_lambda = jnp.log(jnp.asarray(params.scale, jnp.float32))
    nodes = jnp.log(jnp.asarray(BENCHMARK_LAMBDAS, jnp.float32))
    d = jnp.clip(jnp.asarray(params.direct_decay, jnp.float32), 0.0, 1.0)

    def column(k: int) -> jax.Array:
        id_value = jnp.interp(log_lambda, nodes, jnp.asarray(_SIGNAL_SHAPES["id"][:, k]))
        dd_value = jnp.interp(log_lambda, nodes, jnp.asarray(_SIGNAL_SHAPES["dd"][:, k]))
        return (1.0 - d) * id_value + d * dd_value

    t = jnp.clip(log_lambda / math.log(50.0), 0.0, 1.0)
    return JetShape(
        mean_multiplicity=column(0),
        multiplicity_shape=column(1),
        extra_prongs=0.4 + 0.5 * t + 0.3 * d,
        prong_spread=column(3),
        core_width=column(2),
        pt_hierarchy=1.1 + 0.15 * d,
        collinearity=jnp.float32(0.3),
        width_spread=jnp.float32(WIDTH_SPREAD),
    )
