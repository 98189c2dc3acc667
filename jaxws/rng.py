"""NumPy generators from JAX keys, for the host-side steps (shuffles, splits, Poisson counts).

Device code draws with `jax.random`; host code that needs a `numpy.random.Generator` gets one
from a JAX key here, seeded with the key's data words, so the same key always gives the same
NumPy stream and a study stays a function of its one root key.
"""

from __future__ import annotations

import jax
import numpy as np


def numpy_generator(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded by the data words of `key` (typed or raw uint32 key)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).ravel().tolist())
