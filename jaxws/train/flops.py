"""FLOPs of a JAX function, counted from its jaxpr: matrix products and convolutions.

XLA's own cost analysis is no help in choosing how to run an ensemble on a GPU: there a lowered
program gives none, and a compiled one leaves out the cuDNN convolutions (one H200, jax 0.11:
1.26 GFLOP for the paper CNN's training step, whose convolutions alone are 119 GFLOP). Counting
the jaxpr's `dot_general` and `conv_general_dilated` equations is the same on every backend, and
these are where a network's time goes; elementwise work is left out. A multiply-add counts 2.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.extend import core as jax_core


def _dot_flops(eqn: Any) -> float:
    out = eqn.outvars[0].aval
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    return 2.0 * math.prod(out.shape) * math.prod(lhs.shape[d] for d in lhs_contract)


def _conv_flops(eqn: Any) -> float:
    out = eqn.outvars[0].aval
    rhs = eqn.invars[1].aval
    out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
    # Each output element: kernel window x input features (of its group) multiply-adds.
    return 2.0 * math.prod(out.shape) * math.prod(rhs.shape) / out_features


def jaxpr_flops(jaxpr: Any) -> float:
    """FLOPs of matrix products and convolutions in a (closed) jaxpr, sub-jaxprs included.

    A `scan` counts its body `length` times, a `cond` its costliest branch, a `while` loop
    its body once (its trip count is not known before it runs).
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(branch) for branch in eqn.params["branches"])
        else:
            inner = [
                v for v in eqn.params.values()
                if isinstance(v, jax_core.Jaxpr | jax_core.ClosedJaxpr)
            ]  # fmt: skip
            times = eqn.params.get("length", 1) if name == "scan" else 1
            total += times * sum(jaxpr_flops(sub) for sub in inner)
    return total


def flops(fn: Any, *args: Any) -> float:
    """FLOPs of `fn(*args)` (arrays or `jax.ShapeDtypeStruct`s; nothing is computed)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args))
