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
  penalty, ``L(alpha) + (lambda / 2) alpha^T K_MM alpha``. Both terms are convex in alpha, so
  a damped Newton method (M x M Hessian ``K_nM^T diag(r e^f) K_nM + lambda K_MM``) converges
  in a few tens of iterations; a step is kept only if it lowers the penalised loss.
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
        iterations: Newton iterations.
    """

    n_centres: int = 50
    iterations: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.n_centres, int) or self.n_centres < 1:
            raise ValueError(f"KernelSpec.n_centres must be a positive int, got {self.n_centres}")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"KernelSpec.iterations must be a positive int, got {self.iterations}")


class KernelFit(NamedTuple):
    """t, the coefficients alpha (M,) and the centres (M, d) of one fit."""

    t: jax.Array
    alpha: jax.Array
    centres: jax.Array


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
    k_nm = gaussian_kernel(x, centres, sigma)
    k_mm = gaussian_kernel(centres, centres, sigma)

    def objective(alpha: jax.Array) -> tuple[jax.Array, jax.Array]:
        f = k_nm @ alpha
        loss = jnp.sum(nplm_loss_terms(f, data_weight, reference_weight))
        return loss + 0.5 * penalty * alpha @ k_mm @ alpha, loss

    def step(carry: tuple, _: None) -> tuple[tuple, None]:
        alpha, damping, current = carry
        f = k_nm @ alpha
        first = reference_weight * jnp.exp(f) - data_weight
        grad = k_nm.T @ first + penalty * k_mm @ alpha
        hessian = (k_nm * (reference_weight * jnp.exp(f))[:, None]).T @ k_nm + penalty * k_mm
        scale = jnp.trace(hessian) / spec.n_centres
        proposal = alpha - jnp.linalg.solve(
            hessian + (damping + 1e-6) * scale * jnp.eye(spec.n_centres), grad
        )
        proposed = objective(proposal)[0]
        better = proposed < current
        return (
            jnp.where(better, proposal, alpha),
            jnp.where(better, damping * 0.1, jnp.maximum(damping, 1e-3) * 10.0),
            jnp.where(better, proposed, current),
        ), None

    alpha0 = jnp.zeros(spec.n_centres, x.dtype)
    carry = (alpha0, jnp.asarray(0.0, x.dtype), objective(alpha0)[0])
    (alpha, _, _), _ = jax.lax.scan(step, carry, None, length=spec.iterations)
    return KernelFit(t=-2.0 * objective(alpha)[1], alpha=alpha, centres=centres)


_COMPILED: dict = {}


def fit_kernel_ensemble(
    keys: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    sigma: float,
    penalty: float,
    spec: KernelSpec,
) -> np.ndarray:
    """The t values of E toys, vmapped (x and weights with a leading toy axis, or x shared).

    Args:
        keys: typed keys (E,).
        x: (E, n, d) or shared (n, d).
        data_weight: (E, n).
        reference_weight: (E, n).
        sigma: Gaussian width.
        penalty: L2 penalty lambda.
        spec: static settings.

    Returns:
        (E,) t values.
    """
    shared = jnp.ndim(x) == 2
    if (spec, shared) not in _COMPILED:
        in_axes = (0, None if shared else 0, 0, 0, None, None)
        _COMPILED[spec, shared] = jax.jit(
            jax.vmap(lambda k, x, d, r, s, p: fit_kernel_nplm(k, x, d, r, s, p, spec).t, in_axes)
        )
    fit = _COMPILED[spec, shared]
    return np.asarray(
        fit(keys, jnp.asarray(x, jnp.float32), data_weight, reference_weight, sigma, penalty)
    )
