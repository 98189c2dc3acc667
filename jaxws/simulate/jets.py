"""Built-in dijet simulator: a stylised toy of QCD dijets and dark-shower (Hidden Valley) jets.

This is the embedded default data source of every jaxws experiment. It imitates, in broad
shape only, the benchmark of Beauchesne, Chen and Chiang, "Improving the performance of weak
supervision searches using transfer and meta-learning" (arXiv:2312.06152), section 2:
pp -> Z'(5.5 TeV) -> q_D q_D-bar showering into dark jets, against QCD dijets, selected in the
window 4400 <= mjj < 5800 GeV with the signal region SR = [4700, 5500) and the sidebands
SB = [4400, 4700) U [5500, 5800) GeV. It is not a physics generator (that is Pythia, see
docs/simulator.md); it is a fast pure-JAX sampler whose signal family is continuous in two
parameters, a stand-in for the dark confinement scale Lambda_D (`scale`, GeV-like) and the
indirect/direct decay scenario (`direct_decay` in [0, 1]).

Model of one jet (all angles in the (deta, dphi) plane relative to the jet axis):
  * multiplicity n ~ Poisson(mu * g), g a log-logistic factor with log-variance 1/k
    (over-dispersed like real jets), at most 128;
  * prongs: 1 + Poisson(lambda_prong) (at most 6); secondary prongs sit at a log-logistic
    distance around `prong_spread` from the first; prong energy shares are log-logistic;
  * each constituent joins a prong with probability equal to its share, carries a
    log-logistic pT weight w (width `pt_hierarchy`) and sits at an exponential radial distance
    `core_width * Exp(1) * w^-collinearity` from its prong (hard constituents collinear);
  * positions are clipped to the jet radius 0.8, then translated so the pT-weighted centroid
    is the jet axis; the jet mass is the exact invariant mass of the massless constituents.
Only uniform variates are drawn (one threefry call per event, no rejection samplers), which
keeps compilation short; "log-logistic" stands in for log-normal.
The jet shape does not depend on mjj or on the jet pT (only pT and mass scale with them): with
no signal, the SR and the SB hold statistically identical jet substructure, so a CWoLa
classifier can only separate them through the overall pT scale of the constituents.

Event kinematics: mjj is drawn from its spectrum inside the window (inverse CDF on a grid),
the rapidity half-difference y* and the boost y_b (|eta| < 2 for both jets), an azimuthal
kink and a pT imbalance are drawn, and the common jet pT is solved so that the four-vectors of
the two massive jets reproduce the drawn mjj exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxws.data.events import OUTSIDE, SIDEBAND, SIGNAL_REGION, JetEvents
from jaxws.data.samples import BENCHMARK_LAMBDAS, benchmark_names

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


def _inverse_cdf_on_grid(u: jax.Array, grid: jax.Array, log_p: jax.Array) -> jax.Array:
    """Map a uniform u to a draw of the density exp(log_p) tabulated on an increasing grid.

    The CDF is the trapezoidal integral of the density; its inverse is interpolated linearly.
    """
    p = jnp.exp(log_p - jnp.max(log_p))
    cdf = jnp.concatenate([jnp.zeros(1), jnp.cumsum(0.5 * (p[1:] + p[:-1]) * jnp.diff(grid))])
    target = u * cdf[-1]
    # A comparison count instead of jnp.interp's search: much cheaper to compile.
    i = jnp.clip(jnp.sum(cdf <= target) - 1, 0, grid.shape[0] - 2)
    step = cdf[i + 1] - cdf[i]
    t = jnp.where(step > 0, (target - cdf[i]) / jnp.where(step > 0, step, 1.0), 0.0)
    x = grid[i] + jnp.clip(t, 0.0, 1.0) * (grid[i + 1] - grid[i])
    return jnp.minimum(x, jnp.nextafter(grid[-1], grid[0]))


def _dijet_log_density(params: BackgroundParams):
    def log_density(mjj: jax.Array) -> jax.Array:
        x = mjj / _SQRT_S
        log_x = jnp.log(x)
        return params.dijet_p1 * jnp.log1p(-x) - (params.dijet_p2 + params.dijet_p3 * log_x) * log_x

    return log_density


def _crystal_ball_log_density(params: SignalParams):
    def log_density(mjj: jax.Array) -> jax.Array:
        z = (mjj - params.peak_mass) / params.peak_width
        a, n = params.tail_start, params.tail_power
        core = -0.5 * z**2
        # Power-law tail for z < -a, continuous in value and slope at z = -a.
        tail = -0.5 * a**2 + n * (jnp.log(n / a) - jnp.log(n / a - a - z))
        return jnp.where(z > -a, core, tail)

    return log_density


def _ystar_log_density(tilt: float | jax.Array):
    # 1 + cos^2(theta*) in cos(theta*) = tanh(y*), times the Jacobian 1/cosh^2(y*); `tilt`
    # pushes towards large y* (t-channel QCD is more forward than an s-channel resonance).
    def log_density(ystar: jax.Array) -> jax.Array:
        return jnp.log1p(jnp.tanh(ystar) ** 2) - 2.0 * jnp.log(jnp.cosh(ystar)) + tilt * ystar

    return log_density


def _region(mjj: jax.Array) -> jax.Array:
    low, high = SIGNAL_REGION_EDGES
    in_window = (mjj >= MJJ_WINDOW[0]) & (mjj < MJJ_WINDOW[1])
    in_sr = (mjj >= low) & (mjj < high)
    return jnp.where(in_sr, SIGNAL_REGION, jnp.where(in_window, SIDEBAND, OUTSIDE)).astype(jnp.int8)


def _poisson(u: jax.Array, rate: jax.Array, largest: int) -> jax.Array:
    """A Poisson(rate) draw truncated to [0, largest] from a uniform u, by inverse CDF."""
    support = jnp.arange(largest + 1, dtype=jnp.float32)
    log_factorial = jnp.cumsum(jnp.log(jnp.maximum(support, 1.0)))
    log_pmf = support * jnp.log(rate) - rate - log_factorial
    cdf = jnp.cumsum(jnp.exp(log_pmf - jnp.max(log_pmf)))
    return jnp.minimum(jnp.sum(u * cdf[-1] >= cdf), largest).astype(jnp.int32)


def _logistic(u: jax.Array) -> jax.Array:
    """Unit-variance logistic variates from uniforms: a cheap, slightly heavy-tailed normal."""
    return (jnp.log(u) - jnp.log1p(-u)) * (math.sqrt(3.0) / math.pi)


# Uniforms one jet consumes: 4 per constituent slot, 4 per jet, 3 per prong; 7 per event.
_JET_UNIFORMS = 4 * GENERATED_SLOTS + 4 + 3 * MAX_PRONGS
_EVENT_UNIFORMS = 7


def _jet_constituents(u: jax.Array, shape: JetShape, max_constituents: int):
    """One jet from `_JET_UNIFORMS` uniforms u on (0, 1).

    Returns:
        (C, 3) constituents (pT in units of the jet's vector pT, deta, dphi), the multiplicity
        before truncation and the jet's mass / pT.
    """
    slots = GENERATED_SLOTS
    per_slot = u[: 4 * slots].reshape(4, slots)
    u_jet = u[4 * slots : 4 * slots + 4]
    u_prong = u[4 * slots + 4 :].reshape(3, MAX_PRONGS)
    # Jet-to-jet width: Pythia's girth spans a factor 27 between its 5 % and 95 % quantiles
    # (QCD, hv-reference); one log-logistic factor per jet scales every angular distance.
    spread_w = shape.width_spread
    width = jnp.exp(spread_w * _logistic(u_jet[3]) - 0.5 * spread_w**2)
    # Over-dispersed multiplicity: Poisson with a log-logistic rate whose log has variance
    # 1 / multiplicity_shape (like a Gamma(k, 1/k) rate factor, a negative binomial).
    spread = jax.lax.rsqrt(shape.multiplicity_shape)
    rate = shape.mean_multiplicity * jnp.exp(spread * _logistic(u_jet[0]) - 0.5 * spread**2)
    n = jnp.clip(_poisson(u_jet[1], rate, slots), 1, slots)
    alive = jnp.arange(slots) < n

    n_prongs = 1 + _poisson(u_jet[2], shape.extra_prongs, MAX_PRONGS - 1)
    prong_alive = jnp.arange(MAX_PRONGS) < n_prongs
    prong_share = jnp.where(prong_alive, jnp.exp(0.8 * _logistic(u_prong[0])), 0.0)
    distance = width * shape.prong_spread * jnp.exp(0.5 * _logistic(u_prong[1]))
    distance = distance.at[0].set(0.0)
    angle = 2 * jnp.pi * u_prong[2]
    prong_x, prong_y = distance * jnp.cos(angle), distance * jnp.sin(angle)

    cumulative_share = jnp.cumsum(prong_share) / jnp.sum(prong_share)
    prong = jnp.minimum(jnp.sum(per_slot[0][:, None] >= cumulative_share, axis=-1), MAX_PRONGS - 1)
    log_weight = shape.pt_hierarchy * _logistic(per_slot[1])
    weight = jnp.where(alive, jnp.exp(log_weight), 0.0)
    # Radius relative to the typical (median) weight: hard constituents sit closer to the prong.
    radius = width * shape.core_width * -jnp.log(per_slot[2])
    radius = radius * jnp.exp(-shape.collinearity * jnp.maximum(log_weight, -12.0))
    phase = 2 * jnp.pi * per_slot[3]
    x = prong_x[prong] + radius * jnp.cos(phase)
    y = prong_y[prong] + radius * jnp.sin(phase)
    shrink = jnp.minimum(1.0, JET_RADIUS / jnp.maximum(jnp.hypot(x, y), 1e-12))
    x, y = x * shrink, y * shrink

    fraction = weight / jnp.sum(weight)
    x = x - jnp.sum(fraction * x)
    y = y - jnp.sum(fraction * y)
    # Massless constituents with the jet axis at eta = phi = 0 (mass and pT are invariant under
    # the longitudinal boost and azimuthal rotation to the real axis).
    px, py = jnp.sum(fraction * jnp.cos(y)), jnp.sum(fraction * jnp.sin(y))
    pz, energy = jnp.sum(fraction * jnp.sinh(x)), jnp.sum(fraction * jnp.cosh(x))
    pt = jnp.hypot(px, py)
    mass = jnp.sqrt(jnp.maximum(energy**2 - pt**2 - pz**2, 0.0))

    top_pt, top_index = jax.lax.top_k(fraction / pt, max_constituents)
    constituents = jnp.stack([top_pt, x[top_index], y[top_index]], axis=-1)
    constituents = jnp.where(top_pt[:, None] > 0, constituents, 0.0)
    return constituents, n, mass / pt


def _dijet_kinematics(u: jax.Array, mjj: jax.Array, ystar_tilt: jax.Array, mass_over_pt: jax.Array):
    """Jets (2, 4) = pT, eta, phi, mass from `_EVENT_UNIFORMS - 1` uniforms.

    The jets' four-vectors give exactly `mjj`.
    """
    # pT ~ mjj / (2 cosh y*): both jets pass pT > 750 GeV for y* < arccosh(mjj / 1500) (5 %
    # margin for the imbalance and the jet masses), and |eta| < 2 needs |y*| < 2. The bound
    # depends on mjj, as the selection makes it in Pythia: QCD's forward t-channel jets have
    # a lower pT / mjj in the low sideband than in the signal region.
    ystar_max = jnp.clip(jnp.arccosh(jnp.maximum(mjj / (2.1 * LEAD_PT_MIN), 1.0)), 0.5, 1.98)
    grid = jnp.linspace(0.0, 1.0, _GRID_POINTS // 4) * ystar_max
    ystar = _inverse_cdf_on_grid(u[0], grid, _ystar_log_density(ystar_tilt)(grid))
    ystar = jnp.where(u[1] < 0.5, ystar, -ystar)
    # Boost: about 0.6 wide, squashed smoothly into the room that keeps both |eta| < 2.
    room = MAX_ETA - jnp.abs(ystar)
    # 0.999: float32's tanh reaches 1, and |eta| must stay strictly below 2.
    boost = 0.999 * room * jnp.tanh(0.6 * _logistic(u[2]) / room)
    eta = jnp.stack([boost + ystar, boost - ystar])
    imbalance = jnp.abs(0.04 * _logistic(u[3]))
    phi0 = jnp.pi * (2.0 * u[4] - 1.0)
    phi = jnp.stack([phi0, phi0 + jnp.pi + 0.05 * _logistic(u[5])])
    phi = jnp.mod(phi + jnp.pi, 2 * jnp.pi) - jnp.pi
    relative_pt = jnp.stack([1.0 + imbalance, 1.0 - imbalance])
    # Four-vectors per unit pT; the invariant mass is homogeneous of degree 1 in pT.
    energy = relative_pt * jnp.sqrt(mass_over_pt**2 + jnp.cosh(eta) ** 2)
    momentum = relative_pt[:, None] * jnp.stack([jnp.cos(phi), jnp.sin(phi), jnp.sinh(eta)], -1)
    total = jnp.sum(momentum, axis=0)
    unit_mass = jnp.sqrt(jnp.sum(energy) ** 2 - jnp.sum(total**2))
    pt = mjj / unit_mass * relative_pt
    return jnp.stack([pt, eta, phi, mass_over_pt * pt], axis=-1)


def _event(
    key: jax.Array,
    mjj_grid: jax.Array,
    mjj_log_p: jax.Array,
    shape: JetShape,
    ystar_tilt: jax.Array,
    max_constituents: int,
):
    # One uniform draw per event feeds every variable: a single threefry call and no
    # rejection samplers keep the compilation short.
    u = jax.random.uniform(
        key, (2 * _JET_UNIFORMS + _EVENT_UNIFORMS,), minval=jnp.finfo(jnp.float32).tiny
    )
    mjj = _inverse_cdf_on_grid(u[-1], mjj_grid, mjj_log_p)
    constituents, n, mass_over_pt = jax.vmap(_jet_constituents, in_axes=(0, None, None))(
        u[: 2 * _JET_UNIFORMS].reshape(2, _JET_UNIFORMS), shape, max_constituents
    )
    jets = _dijet_kinematics(u[2 * _JET_UNIFORMS : -1], mjj, ystar_tilt, mass_over_pt)
    constituents = constituents.at[..., 0].multiply(jets[:, 0:1])
    return constituents, n, jets, mjj


@functools.partial(jax.jit, static_argnames=("n", "max_constituents"))
def _simulate(
    key: jax.Array,
    n: int,
    background: BackgroundParams,
    signal: SignalParams,
    is_signal: bool,
    max_constituents: int,
    first_event: int | jax.Array,
):
    """Background or signal events from one compiled program, selected by `is_signal`.

    Both kinds share a single compilation per (n, C).
    """
    grid = jnp.linspace(*MJJ_WINDOW, _GRID_POINTS)
    log_p_grid = jnp.where(
        is_signal,
        _crystal_ball_log_density(signal)(grid),
        _dijet_log_density(background)(grid),
    )
    shape = jax.tree.map(
        lambda a, b: jnp.where(is_signal, a, b),
        signal_jet_shape(signal),
        background_jet_shape(background),
    )
    ystar_tilt = jnp.where(is_signal, 0.0, background.ystar_tilt)

    # fold_in per event: event i is the same whatever n or chunking is used.
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, first_event + jnp.arange(n))
    constituents, n_constituents, jets, mjj = jax.vmap(
        lambda k: _event(k, grid, log_p_grid, shape, ystar_tilt, max_constituents)
    )(keys)
    mjj = mjj.astype(jnp.float32)
    return {
        "constituents": constituents.astype(jnp.float32),
        "n_constituents": n_constituents.astype(jnp.int32),
        "jets": jets.astype(jnp.float32),
        "mjj": mjj,
        "region": _region(mjj),
        "label": jnp.broadcast_to(jnp.asarray(is_signal, jnp.int8), (n,)),
    }


def simulate_background(
    key: jax.Array,
    n: int,
    params: BackgroundParams,
    max_constituents: int = DEFAULT_MAX_CONSTITUENTS,
    first_event: int | jax.Array = 0,
) -> dict[str, jax.Array]:
    """Draw `n` QCD dijet events in the mjj window (JetEvents fields except model_id).

    Jittable and vmappable over `key` and `params`.

    Args:
        key: typed PRNG key (consumed).
        n: number of events (static).
        params: background parameters (pytree).
        max_constituents: C, constituents kept per jet (static).
        first_event: index of the first event; event i uses fold_in(key, i), so chunks of a
            large sample drawn with increasing `first_event` equal one big draw.

    Returns:
        dict with constituents (n, 2, C, 3) float32, n_constituents (n, 2) int32, jets
        (n, 2, 4) float32, mjj (n,) float32, region (n,) int8, label (n,) int8 = 0.
    """
    return _simulate(key, n, params, SignalParams(), False, max_constituents, first_event)


def simulate_signal(
    key: jax.Array,
    n: int,
    params: SignalParams,
    max_constituents: int = DEFAULT_MAX_CONSTITUENTS,
    first_event: int | jax.Array = 0,
) -> dict[str, jax.Array]:
    """Draw `n` dark-shower events in the mjj window.

    Same arguments and layout as `simulate_background`, label = 1. The Z' decay is s-channel:
    y* follows 1 + cos^2(theta*).

    Args:
        key: typed PRNG key (consumed).
        n: number of events (static).
        params: signal parameters (pytree).
        max_constituents: C, constituents kept per jet (static).
        first_event: index of the first event (see `simulate_background`).

    Returns:
        dict with the fields of `simulate_background`, label (n,) int8 = 1.
    """
    return _simulate(key, n, BackgroundParams(), params, True, max_constituents, first_event)


def _draw_in_chunks(
    simulate: Callable[..., dict[str, jax.Array]],
    key: jax.Array,
    n: int,
    params: BackgroundParams | SignalParams,
    max_constituents: int,
    chunk_size: int,
):
    chunk = max(1, min(chunk_size, n))
    parts = []
    for start in range(0, n, chunk):
        out = simulate(key, chunk, params, max_constituents, start)
        size = min(chunk, n - start)
        parts.append({name: np.asarray(value)[:size] for name, value in out.items()})
    if not parts:
        out = jax.eval_shape(lambda: simulate(key, 1, params, max_constituents, 0))
        return {name: np.zeros((0, *v.shape[1:]), v.dtype) for name, v in out.items()}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def simulate_events(
    seed_or_key: int | jax.Array,
    n_background: int,
    signals: Mapping[str, int] | None = None,
    *,
    background_params: BackgroundParams | None = None,
    signal_params: Mapping[str, SignalParams] | None = None,
    model_names: Sequence[str] | None = None,
    max_constituents: int = DEFAULT_MAX_CONSTITUENTS,
    chunk_size: int = 16384,
) -> JetEvents:
    """Draw background and signal events as one host-side `JetEvents`.

    Background comes first, then each signal model in the order of `signals`; not shuffled.

    Args:
        seed_or_key: integer seed or typed key. The background uses fold_in(key, 0), signal
            model m uses fold_in(key, 1 + model_id), so a model's events do not depend on
            which other models are drawn, and event i does not depend on the chunking.
        n_background: number of QCD events (all in the mjj window, about 49 % in the SR).
        signals: model name -> number of events. Names are benchmarks (`benchmark_names()`)
            or keys of `signal_params`.
        background_params: defaults to `BackgroundParams()`.
        signal_params: extra named signal models (override benchmarks of the same name).
        model_names: the list `model_id` indexes; defaults to the benchmarks followed by the
            names in `signal_params` (so a benchmark's model_id is its position in
            `benchmark_names()`).
        max_constituents: C, constituents kept per jet.
        chunk_size: events per compiled call (bounds memory; does not change the events).

    Returns:
        JetEvents with numpy fields of the schema's dtypes; model_id is -1 for background.

    Raises:
        ValueError: If a count is negative, a signal model is unknown or missing from
            `model_names`, or `max_constituents` or `chunk_size` is not positive.
    """
    is_seed = isinstance(seed_or_key, int | np.integer)
    key = jax.random.key(int(seed_or_key)) if is_seed else seed_or_key
    signals = dict(signals or {})
    known = dict(_BENCHMARKS) | dict(signal_params or {})
    if model_names is None:
        model_names = benchmark_names() + [m for m in (signal_params or {}) if m not in _BENCHMARKS]
    model_names = list(model_names)
    counts = {"background": n_background} | {f"signals[{k!r}]": v for k, v in signals.items()}
    for what, count in counts.items():
        if not isinstance(count, int | np.integer) or count < 0:
            raise ValueError(f"simulate_events: {what} must be a non-negative integer, got {count}")
    for name in signals:
        if name not in known:
            raise ValueError(
                f"simulate_events: unknown signal model {name!r}; known: {', '.join(known)}"
            )
        if name not in model_names:
            raise ValueError(f"simulate_events: signal model {name!r} is not in model_names")
    if max_constituents < 1 or chunk_size < 1:
        raise ValueError("simulate_events: max_constituents and chunk_size must be positive")

    params = background_params if background_params is not None else BackgroundParams()
    parts = []
    fields = _draw_in_chunks(
        simulate_background,
        jax.random.fold_in(key, 0),
        int(n_background),
        params,
        max_constituents,
        chunk_size,
    )
    parts.append(JetEvents(**fields, model_id=np.full(len(fields["mjj"]), -1, np.int16)))
    for name, count in signals.items():
        model_id = model_names.index(name)
        fields = _draw_in_chunks(
            simulate_signal,
            jax.random.fold_in(key, 1 + model_id),
            int(count),
            known[name],
            max_constituents,
            chunk_size,
        )
        parts.append(JetEvents(**fields, model_id=np.full(count, model_id, np.int16)))
    return JetEvents.concatenate(parts).to_numpy()
