"""Sampling one event.

Mjj, the dijet kinematics and each jet's constituents, from uniforms (jitted).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxws.data.events import OUTSIDE, SIDEBAND, SIGNAL_REGION
from jaxws.simulate.jets.params import (
    _GRID_POINTS,
    _SQRT_S,
    GENERATED_SLOTS,
    JET_RADIUS,
    LEAD_PT_MIN,
    MAX_ETA,
    MAX_PRONGS,
    MJJ_WINDOW,
    SIGNAL_REGION_EDGES,
    BackgroundParams,
    JetShape,
    SignalParams,
    background_jet_shape,
    signal_jet_shape,
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


@functools.partial(jax.jit, static_argnames=("n", "max_constituents", "mjj_range"))
def _simulate(
    key: jax.Array,
    n: int,
    background: BackgroundParams,
    signal: SignalParams,
    is_signal: bool,
    max_constituents: int,
    first_event: int | jax.Array,
    mjj_range: tuple[float, float] = MJJ_WINDOW,
):
    """Background or signal events from one compiled program, selected by `is_signal`.

    Both kinds share a single compilation per (n, C, mjj_range). mjj is drawn in `mjj_range`
    (default the benchmark window); `region` still refers to the benchmark's SR and SB.
    """
    grid = jnp.linspace(*mjj_range, _GRID_POINTS)
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

    # fold_in per event: event i draws the same random numbers whatever n or chunking is used;
    # its float32 values agree bit for bit only at the same n (XLA may vectorise a batch of
    # another size differently: last-bit differences, measured up to 4e-7 relative).
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
