"""Toy data for the NPLM and symmetrized NPLM tests.

The one-dimensional exponential example of D'Agnolo & Wulzer (arXiv:1806.02350): the
reference distribution is exp(-x) on x >= 0; new physics is either a Gaussian bump or a tail
excess (a Gamma(3) shape, x^2 exp(-x) / 2). The "flavour" toy of arXiv:2401.09530 draws two
samples A and B from the same distribution and injects an asymmetry into A only.

Conventions: ``n_expected`` is N(R), the background count expected in the data, and the data
count is Poisson. ``signal_fraction`` s is the expected signal count over N(R), so the data hold
Poisson(N(R)) background plus Poisson(s N(R)) signal events; they are drawn as
Poisson(N(R)(1+s)) events, each signal with probability s/(1+s) (Poisson thinning), which is the
same distribution and keeps one fixed-size buffer. Ragged samples are fixed-size arrays plus a
0/1 mask. All samplers are pure JAX functions of a typed key (vmappable, signal fraction a leaf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SIGNAL_SHAPES = ("gaussian", "tail")


@dataclass(frozen=True)
class SignalShape:
    """Shape of the injected excess.

    Args:
        kind: "gaussian" (a bump) or "tail" (Gamma(3): x^2 exp(-x) / 2).
        mean: bump position (gaussian only).
        width: bump standard deviation (gaussian only).
    """

    kind: str = "gaussian"
    mean: float = 4.0
    width: float = 0.64

    def __post_init__(self) -> None:
        if self.kind not in SIGNAL_SHAPES:
            raise ValueError(f"SignalShape.kind must be one of {SIGNAL_SHAPES}, got {self.kind!r}")
        if self.kind == "gaussian":
            if not (math.isfinite(self.width) and self.width > 0):
                raise ValueError(f"SignalShape.width must be > 0, got {self.width}")
            # The reference support is x >= 0; a bump reaching below 0 would put signal where
            # the reference has none.
            if not (math.isfinite(self.mean) and self.mean - 5.0 * self.width >= 0.0):
                raise ValueError(
                    f"SignalShape.mean - 5 width must be >= 0 (support x >= 0), got mean "
                    f"{self.mean}, width {self.width}"
                )


def capacity(n_expected: float) -> int:
    """Buffer size for a Poisson(n_expected) count: mean + 8 sigma + 16.

    The chance of a larger count is below 1e-14 for any mean; samplers report it as overflow.

    Args:
        n_expected: the Poisson mean.

    Returns:
        The fixed array length.
    """
    return math.ceil(n_expected + 8.0 * math.sqrt(n_expected) + 16)


class Sample(NamedTuple):
    """A padded sample: events (n_max, 1), mask (n_max,), overflow flag."""

    events: jax.Array
    mask: jax.Array
    overflow: jax.Array


def sample_reference(key: jax.Array, n_reference: int) -> jax.Array:
    """Reference events from exp(-x), x >= 0.

    Args:
        key: typed key, consumed.
        n_reference: N_R, the number of reference events (fixed, not Poisson).

    Returns:
        Shape (n_reference, 1).
    """
    return jax.random.exponential(key, (n_reference, 1))


def _signal_events(key: jax.Array, shape: SignalShape, n: int) -> jax.Array:
    if shape.kind == "gaussian":
        return shape.mean + shape.width * jax.random.normal(key, (n, 1))
    return jax.random.gamma(key, 3.0, (n, 1))


def sample_data(
    key: jax.Array,
    n_expected: float,
    signal_fraction: jax.Array | float,
    shape: SignalShape,
    n_max: int,
) -> Sample:
    """Data: Poisson(N(R)) exp(-x) background plus Poisson(s N(R)) signal events.

    Args:
        key: typed key, consumed.
        n_expected: N(R).
        signal_fraction: s (a traced leaf; 0 for null toys).
        shape: the signal shape (static).
        n_max: buffer size, at least ``capacity(n_expected * (1 + s))``.

    Returns:
        The padded sample; ``overflow`` is True if the Poisson count exceeded n_max.
    """
    k_count, k_bkg, k_sig, k_which = jax.random.split(key, 4)
    mean = n_expected * (1.0 + signal_fraction)
    count = jax.random.poisson(k_count, mean)
    background = jax.random.exponential(k_bkg, (n_max, 1))
    signal = _signal_events(k_sig, shape, n_max)
    is_signal = jax.random.uniform(k_which, (n_max, 1)) < signal_fraction / (1.0 + signal_fraction)
    events = jnp.where(is_signal, signal, background)
    mask = (jnp.arange(n_max) < count).astype(jnp.float32)
    return Sample(events, mask, count > n_max)


class FlavourToy(NamedTuple):
    """Pooled two-sample toy: events (n_max, 1), in_a and valid indicators, overflow flag."""

    events: jax.Array
    in_a: jax.Array
    valid: jax.Array
    overflow: jax.Array


def sample_flavour_toy(
    key: jax.Array,
    n_a: float,
    n_b: float,
    signal_fraction: jax.Array | float,
    shape: SignalShape,
    n_max_a: int,
    n_max_b: int,
) -> FlavourToy:
    """Two samples from exp(-x) with an asymmetry (signal) injected into A only.

    Args:
        key: typed key, consumed.
        n_a: expected background count of A (the count is Poisson).
        n_b: expected count of B (Poisson).
        signal_fraction: expected signal count in A over n_a.
        shape: the signal shape.
        n_max_a: buffer size of A, at least ``capacity(n_a * (1 + s))``.
        n_max_b: buffer size of B, at least ``capacity(n_b)``.

    Returns:
        The pooled sample A u B with indicators (A first, then B).
    """
    k_a, k_b = jax.random.split(key)
    a = sample_data(k_a, n_a, signal_fraction, shape, n_max_a)
    b = sample_data(k_b, n_b, 0.0, shape, n_max_b)
    events = jnp.concatenate([a.events, b.events])
    valid = jnp.concatenate([a.mask, b.mask])
    in_a = jnp.concatenate([a.mask, jnp.zeros_like(b.mask)])
    return FlavourToy(events, in_a, valid, a.overflow | b.overflow)


def pad_arrays(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool two user samples (already validated, shape (n, d)) for the symmetrized test.

    Args:
        first: sample A, (n_a, d).
        second: sample B, (n_b, d).

    Returns:
        ``(events, in_a, valid)`` with events (n_a + n_b, d), A first.
    """
    events = np.concatenate([first, second]).astype(np.float32)
    in_a = np.concatenate([np.ones(len(first)), np.zeros(len(second))]).astype(np.float32)
    return events, in_a, np.ones(len(events), np.float32)


def check_no_overflow(overflow: Any, what: str) -> None:
    """Raise if any toy's Poisson count exceeded its buffer (would bias the toy).

    Args:
        overflow: boolean flags from the samplers.
        what: name of the toy set for the message.
    """
    n = int(np.sum(np.asarray(overflow)))
    if n:
        raise RuntimeError(f"{what}: {n} toys exceeded the event buffer; raise the capacity")
