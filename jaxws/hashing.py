"""Content hashes: the one way jaxws names what a cached or resumed result was made from.

Two kinds of content, two digests, both SHA-256 in hex:

- `json_digest` for configurations (JSON scalars, lists, dicts, NumPy scalars): the JSON text
  with sorted keys, so key order does not matter. Names pretraining artifacts and Pythia shards.
- `tree_digest` for pytrees that hold arrays (event pools, member views, keys): the tree
  structure, then each array leaf's dtype, shape and bytes (typed PRNG keys by their key
  data), other leaves by `repr`. Tags the chunks of resumable computations.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import numpy as np


def canonical(obj: Any) -> Any:
    """`obj` with dict keys as sorted strings, tuples as lists and NumPy scalars as Python ones."""
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    raise TypeError(f"hashed config values must be JSON scalars, lists or dicts; got {obj!r}")


def json_digest(config: Any) -> str:
    """SHA-256 (hex) of the JSON text of `config` with sorted keys.

    Raises:
        TypeError: a value that is not a JSON scalar, list, tuple, dict or NumPy scalar.
    """
    return hashlib.sha256(json.dumps(canonical(config), sort_keys=True).encode()).hexdigest()


def tree_digest(*parts: Any) -> str:
    """SHA-256 (hex) over the structure and leaves of each pytree in `parts`."""
    digest = hashlib.sha256()
    for part in parts:
        leaves, treedef = jax.tree.flatten(part)
        digest.update(repr(treedef).encode())
        for leaf in leaves:
            if hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            if hasattr(leaf, "shape"):
                array = np.asarray(leaf)
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).tobytes())
            else:
                digest.update(repr(leaf).encode())
    return digest.hexdigest()
