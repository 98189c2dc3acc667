"""Float32 products at full float32 precision on every backend, unless asked otherwise.

On NVIDIA GPUs from Ampere on, JAX's default precision lets XLA run float32 matrix products
and convolutions in TF32 (a 10-bit mantissa). Measured on one H200 (bench/gpu.sh, section 1 and
5): a 1024 x 1024 x 1024 float32 product's largest error was 3.3e-4 of its largest element at
the default precision and 5.1e-7 at "highest"; an ensemble member of a CNN trained for three
epochs differed from its solo fit by up to 1.3e-4 at the default precision
(tests/train/test_engine.py::test_ensemble_of_cnns_equals_solo_fit failed) and agreed at
"highest". Numbers that a paper quotes must not depend on how members were batched, so jaxws
sets JAX's `jax_default_matmul_precision` to "highest" when it is imported (`apply`).

On a CPU this changes nothing: XLA's float32 products are full precision either way (a slim
CNN fit gave bit-identical weights under both settings). `JAXWS_MATMUL_PRECISION` chooses
another value for speed on a GPU ("tensorfloat32", "bfloat16" or "default"); bench/gpu.sh
measures what it buys. A precision already given to JAX (`jax.config.update(
"jax_default_matmul_precision", ...)` or `JAX_DEFAULT_MATMUL_PRECISION`) is kept.
"""

from __future__ import annotations

import os

import jax

PRECISION_ENV = "JAXWS_MATMUL_PRECISION"
DEFAULT = "highest"


def apply() -> str | None:
    """Set JAX's default float32 matmul precision to jaxws' choice, unless already set.

    Returns:
      The precision in force afterwards (None: JAX's own default).
    """
    configured = jax.config.jax_default_matmul_precision
    if configured is not None:
        return configured
    value = os.environ.get(PRECISION_ENV, DEFAULT).strip()
    if value in ("", "default"):
        return None
    jax.config.update("jax_default_matmul_precision", value)
    return value
