"""The NPLM test function f(x): a small dense network and its pure-function twin.

Follows D'Agnolo & Wulzer, "Learning New Physics from a Machine" (arXiv:1806.02350) and its
multivariate follow-up (arXiv:1912.12155): f is the log-ratio ``n(x|H1) / n(x|R)``, a dense
network with sigmoid hidden units; the papers' 1-4-1 network has 13 trainable parameters, the
chi2 degrees of freedom of the NPLM statistic. :class:`TestFunction` is the flax module that
defines the parameter tree; :func:`apply_test_function` evaluates the same numbers as plain
matmuls (the fits call it inside their compiled loops). The loss, the weight clipping and the
fits live in :mod:`jaxws.stats.nplm`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

_ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}


@dataclass(frozen=True)
class NetworkSpec:
    """Static architecture of the test function f.

    Args:
        n_inputs: input dimension of x.
        hidden: widths of the hidden layers, (4,) for the paper's 1-4-1 network.
        activation: hidden activation, one of sigmoid, tanh, relu.
    """

    n_inputs: int = 1
    hidden: tuple[int, ...] = (4,)
    activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if not isinstance(self.n_inputs, int) or self.n_inputs < 1:
            raise ValueError(f"NetworkSpec.n_inputs must be a positive int, got {self.n_inputs!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"NetworkSpec.hidden must be positive ints, got {self.hidden!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"NetworkSpec.activation must be one of {sorted(_ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )


def n_parameters(spec: NetworkSpec) -> int:
    """Number of trainable parameters of f (the chi2 degrees of freedom of NPLM).

    Args:
        spec: the architecture.

    Returns:
        Kernels plus biases of all layers (13 for 1-4-1).
    """
    widths = (spec.n_inputs, *spec.hidden, 1)
    return sum(a * b + b for a, b in itertools.pairwise(widths))


class TestFunction(nn.Module):
    """Dense network x -> f(x), the log-ratio n(x|H1) / n(x|R).

    Attributes:
        hidden: widths of the hidden layers.
        activation: name of the hidden activation.
    """

    __test__ = False  # not a pytest class, despite the name
    hidden: tuple[int, ...] = (4,)
    activation: str = "sigmoid"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """The value of f at each event: x (n, n_inputs) gives shape (n,)."""
        act = _ACTIVATIONS[self.activation]
        h = x
        for i, width in enumerate(self.hidden):
            h = act(nn.Dense(width, name=f"hidden_{i}")(h))
        return nn.Dense(1, name="output")(h)[..., 0]


def _module(spec: NetworkSpec) -> TestFunction:
    return TestFunction(hidden=spec.hidden, activation=spec.activation)


def _dense(params: dict, h: jax.Array) -> jax.Array:
    # A matmul: XLA fuses it with the activation; a broadcast multiply-and-sum was 14x slower.
    return h @ params["kernel"] + params["bias"]


def apply_test_function(params: dict, x: jax.Array, spec: NetworkSpec) -> jax.Array:
    """f(x) for parameters from :func:`init_test_function` (same numbers as the flax module).

    Args:
        params: ``{"params": {"hidden_i": ..., "output": ...}}``.
        x: events, shape (n, n_inputs).
        spec: the architecture.

    Returns:
        f at each event, shape (n,).
    """
    act = _ACTIVATIONS[spec.activation]
    layers = params["params"]
    h = x
    for i in range(len(spec.hidden)):
        h = act(_dense(layers[f"hidden_{i}"], h))
    return _dense(layers["output"], h)[..., 0]


INITIALISATIONS = ("glorot", "lecun")


def init_test_function(key: jax.Array, spec: NetworkSpec, init: str = "glorot") -> dict:
    """Initial parameters of f.

    Args:
        key: typed PRNG key, consumed.
        spec: the architecture.
        init: "glorot" (NPLM_package's Keras default: glorot-uniform kernels, limit
            ``sqrt(6 / (fan_in + fan_out))``, and glorot-uniform biases too, which Keras treats
            as a 1D tensor with ``fan_in = fan_out = width``, limit ``sqrt(3 / width)``) or
            "lecun" (flax's default: LeCun-normal kernels, zero biases).

    Returns:
        The parameter pytree (``{"params": {"hidden_i": ..., "output": ...}}``).
    """
    if init not in INITIALISATIONS:
        raise ValueError(f"init must be one of {INITIALISATIONS}, got {init!r}")
    params = _module(spec).init(key, jnp.zeros((1, spec.n_inputs)))
    if init == "lecun":
        return params
    widths = (spec.n_inputs, *spec.hidden, 1)
    names = [f"hidden_{i}" for i in range(len(spec.hidden))] + ["output"]
    keys = jax.random.split(key, 2 * len(names))
    layers = {}
    for i, (name, fan_in, fan_out) in enumerate(zip(names, widths[:-1], widths[1:], strict=True)):
        kernel_limit = math.sqrt(6.0 / (fan_in + fan_out))
        bias_limit = math.sqrt(3.0 / fan_out)
        layers[name] = {
            "kernel": jax.random.uniform(
                keys[2 * i], (fan_in, fan_out), jnp.float32, -kernel_limit, kernel_limit
            ),
            "bias": jax.random.uniform(
                keys[2 * i + 1], (fan_out,), jnp.float32, -bias_limit, bias_limit
            ),
        }
    return {"params": layers}
