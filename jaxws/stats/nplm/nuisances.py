"""NPLM with systematic nuisance parameters: t = tau - Delta (arXiv:2111.13633).

Follows d'Agnolo, Grosso, Pierini, Wulzer & Zanetti, "Learning new physics from an imperfect
machine" (arXiv:2111.13633). The reference sample R is generated at the central values of the
nuisances (nu = 0). A nuisance value nu changes the reference density by a known per-event
log-ratio ``delta(x; nu) = log n(x|R_nu) / n(x|R_0)``, so R reweighted by ``exp(delta)`` is
the reference at nu. Auxiliary measurements A constrain nu with a unit Gaussian likelihood.

Conventions (all nuisances in units of their standard deviation sigma):

* Two nuisances, index 0 ``normalisation`` and index 1 ``scale``, with per-member standard
  deviations ``sigma = (sigma_N, sigma_S)``; sigma_k = 0 switches nuisance k off (its
  auxiliary value is ignored and nu_k stays at 0). With both off, tau is plain NPLM's t and
  Delta = 0.
* Normalisation (exact for any reference): ``n(x|R_nu) = n(x|R_0) exp(sigma_N nu_N)``, so the
  expected count is ``N(R) exp(sigma_N nu_N)`` (a log-normal rate).
* Scale (a shape nuisance, closed form for the 1D exponential toy of arXiv:1806.02350 whose
  reference is exp(-x) on x >= 0): the observable is multiplied by ``s = exp(sigma_S nu_S)``,
  ``n(x|R_nu) = (N/s) exp(-x/s)``, hence ``delta_S = -log s - x (1/s - 1)`` on the *physical*
  (unstandardised) observable x. The total count is unchanged by the scale.
* Auxiliary likelihood: ``log L(nu|A) - log L(0|A) = -(nu - A)^2 / 2 + A^2 / 2`` per nuisance.
  In toys the true nuisance nu* sets the data and ``A ~ Normal(nu*, 1)`` is fluctuated too.
* Loss (weighted form of :mod:`jaxws.stats.nplm.loss`, d_i data and r_i reference weights):

      L(w, nu) = sum_i r_i (exp(f_i + delta_i(nu)) - 1) - sum_i d_i (f_i + delta_i(nu))
                 + sum_k [(nu_k - A_k)^2 - A_k^2] / 2,

  which is ``-[log L(H_{w,nu}|D,A) - log L(R_0|D,A)]`` with ``n(x|H_{w,nu}) = n(x|R_nu)
  exp(f(x; w))``. Then ``tau = -2 min_{w,nu} L(w, nu)``, ``Delta = -2 min_nu L(f=0, nu)``
  (the nuisance-only fit) and ``t = tau - Delta``, larger t more signal-like. Under the null
  t is asymptotically chi2 with as many dof as f has parameters, whatever the true nu.

Fits: Delta by damped saddle-free Newton on nu (2 parameters, a fixed number of iterations,
then a convergence test on the Newton decrement: ``NuisanceFit.delta_converged``);
tau by full-batch Adam on (w, nu) jointly, the network's weights clipped as in
:func:`jaxws.stats.nplm.adam.fit_adam`, nu unclipped and started at Delta's best fit (the
starting point does not change the maximum; it spares Adam the walk from 0 to nu-hat).
Learned shape nuisances (delta from a network trained on simulations at several nu) are not
implemented.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxws.models.nplm_net import NetworkSpec, apply_test_function, init_test_function
from jaxws.stats.nplm.training import NPLMHparams, NPLMTraining, clip_weights

NUISANCES = ("normalisation", "scale")
DELTA_ITERATIONS = 30
#: The Delta fit has converged when half its Newton decrement is at most this times
#: max(1, |L|) (float32 sums resolve about 1e-7 of the loss's terms).
DELTA_TOLERANCE = 1e-5


class NuisanceSetup(NamedTuple):
    """Per-member nuisance numbers (pytree leaves, vmappable).

    Attributes:
        sigma: (2,) standard deviations ``(sigma_N, sigma_S)`` of the normalisation (log-rate)
            and of the log-scale; 0 switches a nuisance off.
        auxiliary: (2,) auxiliary measurements A in units of sigma.
    """

    sigma: jax.Array
    auxiliary: jax.Array


class NuisanceFit(NamedTuple):
    """Result of one fit with nuisances (or of toys, with a leading member axis).

    Attributes:
        t: ``tau - Delta``.
        tau: ``-2 min_{w,nu} L`` after the last epoch.
        delta: ``-2 min_nu L(f=0, nu)``, the nuisance-only fit.
        t_history: ``tau - Delta`` at each of ``NPLMTraining.checkpoints``.
        nu_tau: (2,) nu at tau's end.
        nu_delta: (2,) nu at Delta's minimum.
        params: trained parameters of f.
        delta_converged: whether the Delta fit met its tolerance (:func:`fit_nuisances_only`);
            tau is Adam's, trained a fixed number of epochs (no claim of a minimum).
    """

    t: jax.Array
    tau: jax.Array
    delta: jax.Array
    t_history: jax.Array
    nu_tau: jax.Array
    nu_delta: jax.Array
    params: Any
    delta_converged: Any = None


def log_ratio(nu: jax.Array, observable: jax.Array, sigma: jax.Array) -> jax.Array:
    """``delta(x; nu) = log n(x|R_nu) / n(x|R_0)`` of the normalisation and scale nuisances.

    Args:
        nu: (2,) nuisances in units of sigma.
        observable: (n,) the physical observable x of every event (unstandardised).
        sigma: (2,) standard deviations ``(sigma_N, sigma_S)``.

    Returns:
        (n,) ``sigma_N nu_N - u - x expm1(-u)`` with ``u = sigma_S nu_S``.
    """
    log_scale = sigma[1] * nu[1]
    return sigma[0] * nu[0] - log_scale - observable * jnp.expm1(-log_scale)


def nuisance_loss(
    f_values: jax.Array,
    nu: jax.Array,
    observable: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    setup: NuisanceSetup,
) -> jax.Array:
    """The summed loss ``L(w, nu)`` of the module docstring (``-2 min L`` is tau or Delta).

    Args:
        f_values: (n,) f at each event (zeros for Delta).
        nu: (2,) nuisances in units of sigma.
        observable: (n,) physical observable of each event.
        data_weight: (n,) d_i.
        reference_weight: (n,) r_i (summing to N(R) at nu = 0).
        setup: sigmas and auxiliary measurements.

    Returns:
        The scalar loss; 0 at f = 0, nu = 0.
    """
    log_density = f_values + log_ratio(nu, observable, setup.sigma)
    extended = jnp.sum(reference_weight * jnp.expm1(log_density) - data_weight * log_density)
    # A nuisance with sigma 0 is off: its auxiliary value is ignored, so nu_k stays at 0.
    measured = jnp.where(setup.sigma > 0, setup.auxiliary, 0.0)
    auxiliary = 0.5 * jnp.sum((nu - measured) ** 2 - measured**2)
    return extended + auxiliary


def fit_nuisances_only(
    observable: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    setup: NuisanceSetup,
    iterations: int = DELTA_ITERATIONS,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Delta: the nuisance-only fit ``-2 min_nu L(f=0, nu)`` (vmappable).

    Damped saddle-free Newton on the two nuisances: the step ``-|H|^-1 g`` (eigenvalues in
    absolute value) is tried at lengths 1, 1/2, ..., 1/2^10 and the best length is kept if it
    lowers the loss; where float32 cannot resolve a decrease (at the minimum) the full step is
    kept if it shrinks the gradient. Started at nu = 0.

    Args:
        observable: (n,) physical observable.
        data_weight: (n,) d_i.
        reference_weight: (n,) r_i.
        setup: sigmas and auxiliary measurements.
        iterations: Newton iterations (static).

    Returns:
        ``(Delta, nu_hat, converged)``; Delta >= 0 since nu = 0 gives L = 0; converged when
        half the Newton decrement ``g^T |H|^-1 g / 2`` at nu_hat is at most
        ``DELTA_TOLERANCE * max(1, |L|)`` (the loss a further step would gain, to second
        order).
    """
    zeros = jnp.zeros_like(observable)

    def loss(nu: jax.Array) -> jax.Array:
        return nuisance_loss(zeros, nu, observable, data_weight, reference_weight, setup)

    lengths = 2.0 ** -jnp.arange(11.0)
    gradient_of = jax.grad(loss)

    def newton_step(nu: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        gradient = gradient_of(nu)
        eigenvalues, vectors = jnp.linalg.eigh(jax.hessian(loss)(nu))
        projected = vectors.T @ gradient
        scale = jnp.abs(eigenvalues) + 1e-6
        return gradient, -vectors @ (projected / scale), 0.5 * jnp.sum(projected**2 / scale)

    def step(nu: jax.Array, _: Any) -> tuple[jax.Array, None]:
        gradient, direction, _ = newton_step(nu)
        candidates = nu + lengths[:, None] * direction
        values = jax.vmap(loss)(candidates)
        best = jnp.argmin(values)
        # Near the minimum float32 sums cannot resolve the loss decrease; there the full
        # Newton step is kept if it shrinks the gradient (quadratic convergence).
        newton = candidates[0]
        polish = jnp.linalg.norm(gradient_of(newton)) < jnp.linalg.norm(gradient)
        nu = jnp.where(values[best] < loss(nu), candidates[best], jnp.where(polish, newton, nu))
        return nu, None

    nu, _ = jax.lax.scan(step, jnp.zeros(2, jnp.float32), None, length=iterations)
    value = loss(nu)
    converged = newton_step(nu)[2] <= DELTA_TOLERANCE * jnp.maximum(1.0, jnp.abs(value))
    return -2.0 * value, nu, converged


def fit_with_nuisances(
    key: jax.Array,
    x: jax.Array,
    observable: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    setup: NuisanceSetup,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
) -> NuisanceFit:
    """``t = tau - Delta`` for one member (Adam for tau, Newton for Delta; vmappable).

    Args:
        key: typed PRNG key for the network's initialisation, consumed.
        x: (n, n_inputs) network inputs (standardised or not, as for plain NPLM).
        observable: (n,) physical observable the scale nuisance acts on.
        data_weight: (n,) d_i.
        reference_weight: (n,) r_i.
        setup: sigmas and auxiliary measurements.
        hparams: Adam learning rate (shared by w and nu) and the weight clip.
        spec: the architecture (static).
        train: the schedule (static; ``optimizer`` must be "adam").

    Returns:
        The fit; ``t_history`` holds ``tau - Delta`` at ``train.checkpoints``.
    """
    if train.optimizer != "adam":
        raise ValueError("NPLM with nuisances is trained with Adam only (train.optimizer='adam')")
    delta, nu_delta, delta_converged = fit_nuisances_only(
        observable, data_weight, reference_weight, setup
    )
    optimizer = optax.chain(
        optax.scale_by_adam(),
        optax.scale_by_schedule(lambda step: -hparams.learning_rate * train.rate_profile(step)),
    )
    checkpoints = jnp.asarray(train.checkpoints)

    def loss(variables: tuple[dict, jax.Array]) -> jax.Array:
        params, nu = variables
        f = apply_test_function(params, x, spec)
        return nuisance_loss(f, nu, observable, data_weight, reference_weight, setup)

    def step(carry: tuple, epoch: jax.Array) -> tuple[tuple, None]:
        variables, opt_state, history = carry
        value, grads = jax.value_and_grad(loss)(variables)
        history = jnp.where(checkpoints == epoch, -2.0 * value, history)
        updates, opt_state = optimizer.update(grads, opt_state, variables)
        params, nu = optax.apply_updates(variables, updates)
        params = clip_weights(params, hparams.clip, train.clip_scope)
        return ((params, nu), opt_state, history), None

    params = clip_weights(init_test_function(key, spec, train.init), hparams.clip, train.clip_scope)
    variables = (params, nu_delta)
    history = jnp.zeros(len(train.checkpoints), jnp.float32)
    carry = (variables, optimizer.init(variables), history)
    ((params, nu), _, history), _ = jax.lax.scan(step, carry, jnp.arange(train.epochs))
    tau = -2.0 * loss((params, nu))
    history = history.at[-1].set(tau)
    return NuisanceFit(
        t=tau - delta,
        tau=tau,
        delta=delta,
        t_history=history - delta,
        nu_tau=nu,
        nu_delta=nu_delta,
        params=params,
        delta_converged=delta_converged,
    )


_CHUNK_CACHE: dict = {}


def fit_nuisance_toys(
    keys: jax.Array,
    x: jax.Array,
    observable: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    setup: NuisanceSetup,
    hparams: NPLMHparams,
    spec: NetworkSpec,
    train: NPLMTraining,
    chunk_size: int = 16,
) -> NuisanceFit:
    """:func:`fit_with_nuisances` for E toys, vmapped in chunks (one compilation).

    Every input carries a leading member axis E (``setup`` leaves (E, 2)); ``hparams`` leaves
    are scalars or (E,). Member i equals ``fit_with_nuisances(keys[i], ...)`` with member i's
    inputs. The last chunk is padded by repeating its last member.

    Args:
        keys: typed keys (E,).
        x: (E, n, n_inputs).
        observable: (E, n).
        data_weight: (E, n).
        reference_weight: (E, n).
        setup: leaves (E, 2).
        hparams: learning rate and clip, scalars or (E,).
        spec: the architecture.
        train: the schedule.
        chunk_size: members per compiled call.

    Returns:
        The fits with a leading member axis (numpy arrays).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_members = keys.shape[0]
    hparams = NPLMHparams(
        *(jnp.broadcast_to(jnp.asarray(h, jnp.float32), (n_members,)) for h in hparams)
    )
    cache_key = (spec, train)
    if cache_key not in _CHUNK_CACHE:
        one = lambda k, a, o, d, r, s, h: fit_with_nuisances(k, a, o, d, r, s, h, spec, train)
        _CHUNK_CACHE[cache_key] = jax.jit(jax.vmap(one))
    fit_chunk = _CHUNK_CACHE[cache_key]
    members = (x, observable, data_weight, reference_weight)
    members = tuple(jnp.asarray(a, jnp.float32) for a in members)
    setup = NuisanceSetup(*(jnp.asarray(s, jnp.float32) for s in setup))
    chunk = min(chunk_size, n_members)
    results = []
    for start in range(0, n_members, chunk):
        index = np.minimum(np.arange(start, start + chunk), n_members - 1)
        out = fit_chunk(
            keys[index],
            *(a[index] for a in members),
            NuisanceSetup(*(s[index] for s in setup)),
            NPLMHparams(*(h[index] for h in hparams)),
        )
        n_real = min(chunk, n_members - start)
        results.append(jax.tree.map(lambda a, n=n_real: np.asarray(a)[:n], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *results)
