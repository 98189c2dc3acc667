"""Checks of shard arrays: required datasets and shapes, finite values, codes in range."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jaxws.data.shards.schema import OPTIONAL, SCHEMA, ShardError


def _check_arrays(arrays: Mapping[str, np.ndarray], where: str, require_all: bool) -> None:
    n = len(arrays["mjj"]) if "mjj" in arrays else None
    for name, (_, tail) in SCHEMA.items():
        if name not in arrays:
            if require_all or name not in OPTIONAL:
                raise ShardError(f"{where}: dataset {name!r} is missing")
            continue
        shape = np.shape(arrays[name])
        if shape[0] != n:
            raise ShardError(f"{where}: dataset {name!r} has {shape[0]} events, mjj has {n}")
        if name == "constituents":
            if len(shape) != 4 or shape[1:2] != (2,) or shape[3] != 3:
                raise ShardError(f"{where}: constituents must be (N, 2, C, 3), got {shape}")
        elif shape[1:] != tail:
            raise ShardError(f"{where}: dataset {name!r} must be (N, *{tail}), got {shape}")


#: datasets that must hold finite floats, and the integer codes the label-like ones may take
FINITE = ("constituents", "pt_truncated", "jets", "mjj")
CODES = {"region": (0, 1), "label": (0, 1)}


def check_values(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse numbers no event can have.

    That is NaN or inf, unknown region or label codes, negative constituent counts and
    non-numeric datasets.

    The message names `where` (the file), the dataset, how many events are bad and the index
    of the first one (in the order the arrays hold them).

    Raises:
        ShardError: the first problem found.
    """
    for name, array in arrays.items():
        if name not in SCHEMA:
            continue
        array = np.asarray(array)
        want = np.dtype(SCHEMA[name][0]).kind
        if array.dtype.kind not in ("f" if want == "f" else "iu"):
            kind = "floating-point numbers" if want == "f" else "integers"
            raise ShardError(f"{where}: dataset {name!r} has dtype {array.dtype}; need {kind}")
        if len(array) == 0:
            continue
        flat = array.reshape(len(array), -1)
        if name in FINITE:
            bad = ~np.isfinite(flat).all(axis=1)
            what = "NaN or inf values"
        elif name in CODES:
            bad = ~np.isin(flat, CODES[name]).all(axis=1)
            what = f"values outside {list(CODES[name])}"
        elif name == "n_constituents":
            bad = (flat < 0).any(axis=1)
            what = "negative counts"
        else:
            continue
        if bad.any():
            raise ShardError(
                f"{where}: dataset {name!r} has {what} in {int(bad.sum())} of {len(array)} "
                f"events (first at event {int(np.argmax(bad))})"
            )
