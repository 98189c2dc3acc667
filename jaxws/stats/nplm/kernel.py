"""Kernel NPLM: the NPLM test with a Nystrom Gaussian-kernel model instead of a network.

Follows Letizia, Losapio, Rando, Grosso, Wulzer, Pierini, Zanetti & Rosasco, "Learning new
physics efficiently with nonparametric methods", Eur. Phys. J. C 82 (2022) 879 (public code:
NPLM-FLK on Falkon), written here in JAX so that toys are vmapped.

Conventions:

* The model is ``f(x) = sum_j alpha_j k(x, c_j)`` with the Gaussian kernel
  ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))`` and M Nystrom centres ``c_j`` drawn uniformly
  (without replacement) from the toy's events (data and reference).
* ``sigma`` is a quantile (0.9 by default, as the paper) of the pairwise distances between
  reference events (:func:`kernel_width`).
* The fit minimises the weighted NPLM loss of :mod:`jaxws.stats.nplm.loss` plus an L2 (RKHS norm)
  penalty, ``L(alpha) + (lambda / 2) alpha^T K_MM alpha`` (K_MM with a jitter ridge, see
  `KernelSpec`). Both terms are convex in alpha; Newton's method runs in coordinates whitened
  by the jittered K_MM, with a line search, until its decrement meets the tolerance (a few
  steps) or the cap, and reports which (`KernelFit.converged`).
* ``t = -2 L(alpha*)``: the unpenalised NPLM loss at the penalised optimum. Its null is
  compared with chi2 at a dof fitted on null toys (the paper's practice): the effective number
  of parameters of a penalised kernel model is not M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.stats.nplm.loss import nplm_loss_terms


@dataclass(frozen=True)
class KernelSpec:
    """Static settings of kernel NPLM.

    Args:
        n_centres: M, the number of Nystrom centres.
        iterations: the most Newton iterations; the fit stops earlier once converged.
        tolerance: converged when half the squared Newton decrement, the quadratic model's
            estimate of the penalised loss still to gain, is at most
            ``tolerance * max(1, |penalised loss|)`` (relative to the loss, absolute below 1);
            never below 16 machine epsilons of the data's dtype (float32: 1.9e-6), the level
            at which rounding, which differs between CPUs, decides the last Newton steps.
        jitter: the ridge ``jitter * M`` added to K_MM's diagonal (Falkon's ``epsilon M``); it
            makes the penalty positive definite, so the fit is well posed in floating point.
    """

    n_centres: int = 50
    iterations: int = 50
    tolerance: float = 1e-7
    jitter: float = 1e-5

    def __post_init__(self) -> None:
        if not isinstance(self.n_centres, int) or self.n_centres < 1:
            raise ValueError(f"KernelSpec.n_centres must be a positive int, got {self.n_centres}")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"KernelSpec.iterations must be a positive int, got {self.iterations}")
        if not (self.tolerance > 0 and self.jitter > 0):
            raise ValueError("KernelSpec.tolerance and KernelSpec.jitter must be > 0")


class KernelFit(NamedTuple):
    """One fit: t, the coefficients alpha (M,), the centres (M, d) and its convergence.

    ``converged`` is True when the Newton decrement met ``KernelSpec.tolerance`` within
    ``KernelSpec.iterations``; ``iterations`` is the number of Newton steps taken;
    ``decrement`` is half the squared Newton decrement at the returned alpha (the penalised
    loss still to gain, to second order); ``gradient_norm`` is the largest component of the
    gradient in the whitened coordinates.
    """

    t: jax.Array
    alpha: jax.Array
    centres: jax.Array
    converged: jax.Array
    iterations: jax.Array
    decrement: jax.Array
    gradient_norm: jax.Array


def kernel_width(reference: np.ndarray, quantile: float = 0.9, max_events: int = 2000) -> float:
    """Gaussian width sigma: a quantile of the pairwise distances between reference events.

    Args:
        reference: (N_R, d) reference events (standardised if the fit is).
        quantile: which quantile (0.9 in Letizia et al.).
        max_events: distances among the first ``max_events`` events only (O(n^2)).

    Returns:
        sigma.
    """
    events = np.asarray(reference, np.float64)[:max_events]
    if len(events) < 2:
        raise ValueError("kernel_width needs at least 2 reference events")
    distances = np.sqrt(((events[:, None, :] - events[None, :, :]) ** 2).sum(-1))
    upper = distances[np.triu_indices(len(events), k=1)]
    sigma = float(np.quantile(upper, quantile))
    if not sigma > 0:
        raise ValueError("kernel_width: the reference events coincide (width 0)")
    return sigma


def gaussian_kernel(x: jax.Array, centres: jax.Array, sigma: jax.Array) -> jax.Array:
    """``exp(-|x_i - c_j|^2 / (2 sigma^2))``, shape (n, M)."""
    squared = (
        jnp.sum(x * x, -1)[:, None] - 2.0 * x @ centres.T + jnp.sum(centres * centres, -1)[None, :]
    )
    return jnp.exp(-jnp.maximum(squared, 0.0) / (2.0 * sigma * sigma))


def whitened_features(
    k_nm: jax.Array, k_mm: jax.Array, jitter: float
) -> tuple[jax.Array, jax.Array]:
    """``B = K_nM T^-1`` and ``T^-1`` with ``T^T T = K_MM + jitter M I`` (symmetric root).

    With ``alpha = T^-1 beta`` the model is ``f = B beta`` and the penalty
    ``alpha^T (K_MM + jitter M I) alpha = |beta|^2``, so the penalised loss is lambda-strongly
    convex in beta with a Hessian ``B^T W B + lambda I`` whose conditioning does not depend on
    K_MM's (Falkon's preconditioning). Eigenvalues of K_MM below 0 (rounding) count as 0.

    Args:
        k_nm: (n, M) kernel between events and centres.
        k_mm: (M, M) kernel between centres.
        jitter: the ridge per centre.

    Returns:
        ``(B, T^-1)``.
    """
    eigenvalues, eigenvectors = jnp.linalg.eigh(k_mm)
    ridge = jitter * k_mm.shape[0]
    inverse_root = eigenvectors * jax.lax.rsqrt(jnp.maximum(eigenvalues, 0.0) + ridge)
    return k_nm @ inverse_root, inverse_root


def fit_kernel_nplm(
    key: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    sigma: jax.Array,
    penalty: jax.Array,
    spec: KernelSpec,
) -> KernelFit:
    """Penalised kernel NPLM fit of one toy (vmappable; sigma and penalty are leaves).

    Minimises ``L(K_nM alpha) + (lambda / 2) alpha^T (K_MM + jitter M I) alpha`` by Newton's
    method in the whitened coordinates of :func:`whitened_features` with a backtracking
    (Armijo) line search, until half the squared Newton decrement is below the tolerance or
    ``spec.iterations`` steps are taken; the result says which (``converged``).

    Args:
        key: typed key for the choice of centres, consumed.
        x: (n, d) events (padding has zero weights and is never a centre).
        data_weight: d_i.
        reference_weight: r_i.
        sigma: Gaussian width.
        penalty: lambda of the L2 penalty.
        spec: static settings.

    Returns:
        The fit; ``t = -2 L`` without the penalty.
    """
    valid = (data_weight > 0) | (reference_weight > 0)
    # Gumbel top-M: M distinct valid events, uniformly.
    scores = jnp.where(valid, jax.random.gumbel(key, valid.shape), -jnp.inf)
    centres = x[jax.lax.top_k(scores, spec.n_centres)[1]]
    features, inverse_root = whitened_features(
        gaussian_kernel(x, centres, sigma), gaussian_kernel(centres, centres, sigma), spec.jitter
    )

    def objective(beta: jax.Array) -> jax.Array:
        f = features @ beta
        return jnp.sum(nplm_loss_terms(f, data_weight, reference_weight)) + 0.5 * penalty * (
            beta @ beta
        )

    def newton_step(beta: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        exp_term = reference_weight * jnp.exp(features @ beta)
        gradient = features.T @ (exp_term - data_weight) + penalty * beta
        hessian = (features * exp_term[:, None]).T @ features + penalty * jnp.eye(
            spec.n_centres, dtype=beta.dtype
        )
        step = -jax.scipy.linalg.solve(hessian, gradient, assume_a="pos")
        # half the squared Newton decrement: g^T H^-1 g / 2
        return step, -0.5 * gradient @ step, jnp.max(jnp.abs(gradient))

    # A float32 loss cannot resolve a gain much below its rounding: the tolerance never goes
    # below 16 machine epsilons of the fit's dtype (1.9e-6 in float32, 3.6e-15 in float64).
    floor = 16.0 * float(jnp.finfo(features.dtype).eps)
    tolerance = max(spec.tolerance, floor)

    def small(decrement: jax.Array, value: jax.Array) -> jax.Array:
        return decrement <= tolerance * jnp.maximum(1.0, jnp.abs(value))

    def line_search(beta: jax.Array, value: jax.Array, step: jax.Array, decrement: jax.Array):
        # Armijo with c = 1e-4 on halvings of the Newton step (the slope along it is -2 dec).
        def keep_halving(state: tuple) -> jax.Array:
            size, candidate = state
            return (size > 2.0**-30) & ~(candidate <= value - 2e-4 * size * decrement)

        def halve(state: tuple) -> tuple:
            size = 0.5 * state[0]
            return size, objective(beta + size * step)

        size, candidate = jax.lax.while_loop(
            keep_halving, halve, (jnp.ones_like(value), objective(beta + step))
        )
        accepted = candidate <= value - 2e-4 * size * decrement
        return accepted, jnp.where(accepted, beta + size * step, beta), candidate

    def running(state: tuple) -> jax.Array:
        _, value, _, decrement, _, iteration, stalled = state
        return ~small(decrement, value) & (iteration < spec.iterations) & ~stalled

    def iterate(state: tuple) -> tuple:
        beta, value, step, decrement, _, iteration, _ = state
        accepted, beta, candidate = line_search(beta, value, step, decrement)
        value = jnp.where(accepted, candidate, value)
        step, decrement, gradient_norm = newton_step(beta)
        return beta, value, step, decrement, gradient_norm, iteration + 1, ~accepted

    beta0 = jnp.zeros(spec.n_centres, x.dtype)
    step0, decrement0, gradient_norm0 = newton_step(beta0)
    beta, value, _, decrement, gradient_norm, iterations, _ = jax.lax.while_loop(
        running,
        iterate,
        (beta0, objective(beta0), step0, decrement0, gradient_norm0, jnp.int32(0), False),
    )
    f = features @ beta
    return KernelFit(
        t=-2.0 * jnp.sum(nplm_loss_terms(f, data_weight, reference_weight)),
        alpha=inverse_root @ beta,
        centres=centres,
        converged=small(decrement, value),
        iterations=iterations,
        decrement=decrement,
        gradient_norm=gradient_norm,
    )


_COMPILED: dict = {}


def fit_kernel_ensemble(
    keys: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    sigma: float,
    penalty: float,
    spec: KernelSpec,
) -> KernelFit:
    """The fits of E toys, vmapped (x and weights with a leading toy axis, or x shared).

    Args:
        keys: typed keys (E,).
        x: (E, n, d) or shared (n, d).
        data_weight: (E, n).
        reference_weight: (E, n).
        sigma: Gaussian width.
        penalty: L2 penalty lambda.
        spec: static settings.

    Returns:
        The fits with a leading toy axis (numpy arrays; ``alpha`` and ``centres`` omitted,
        None): t, converged, iterations, decrement, gradient_norm.
    """
    shared = jnp.ndim(x) == 2
    if (spec, shared) not in _COMPILED:
        in_axes = (0, None if shared else 0, 0, 0, None, None)

        def one(k, x, d, r, s, p):  # noqa: ANN001
            return fit_kernel_nplm(k, x, d, r, s, p, spec)._replace(alpha=None, centres=None)

        _COMPILED[spec, shared] = jax.jit(jax.vmap(one, in_axes))
    fit = _COMPILED[spec, shared]
    out = fit(keys, jnp.asarray(x, jnp.float32), data_weight, reference_weight, sigma, penalty)
    return jax.tree.map(np.asarray, out)
