"""Name-based partition of parameters into the feature extractor and the head.

arXiv:2312.06152 calls the convolutional weights and biases Theta and the dense ones theta.
Every jaxws classifier keeps Theta under the top-level submodule `features` and theta under
`head`; meta-transfer-learning scale/shift parameters are named `mtl_scale` / `mtl_shift`
(inside `features`). Predicates below take a parameter path (a tuple of names) and say which
part it belongs to; the training engine and the methods use them to freeze, re-initialise or
meta-learn a part without copying models.
"""

from __future__ import annotations

from collections.abc import Callable

from flax import traverse_util

Path = tuple[str, ...]
Predicate = Callable[[Path], bool]

META_NAMES = ("mtl_scale", "mtl_shift")


def is_meta(path: Path) -> bool:
    """Meta-transfer-learning scale and shift parameters (S, S-bar)."""
    return path[-1] in META_NAMES


def is_network_parameter(path: Path) -> bool:
    """Theta and theta: every parameter of the plain network (all but the MTL scale/shift)."""
    return not is_meta(path)


def is_feature_extractor(path: Path) -> bool:
    """Theta: everything under `features` except the MTL scale/shift."""
    return path[0] == "features" and not is_meta(path)


def is_head(path: Path) -> bool:
    """theta: everything under `head`."""
    return path[0] == "head"


def everything(path: Path) -> bool:
    """Every parameter."""
    return True


def split(params: dict, predicate: Predicate) -> tuple[dict, dict]:
    """Split a parameter tree into (selected, rest) flat-path dicts (see `merge`)."""
    flat = traverse_util.flatten_dict(params)
    selected = {k: v for k, v in flat.items() if predicate(k)}
    rest = {k: v for k, v in flat.items() if not predicate(k)}
    return selected, rest


def merge(*parts: dict) -> dict:
    """Inverse of `split`: nested parameter tree from flat-path dicts."""
    flat = {}
    for part in parts:
        flat.update(part)
    return traverse_util.unflatten_dict(flat)


def replace(params: dict, new: dict, predicate: Predicate) -> dict:
    """`params` with the leaves selected by `predicate` taken from `new` (same structure).

    Used to re-initialise a part: `replace(pretrained, fresh_init, is_head)`.
    """
    taken, _ = split(new, predicate)
    _, kept = split(params, predicate)
    missing = set(taken) - set(traverse_util.flatten_dict(params))
    if missing:
        raise ValueError(f"parameters {sorted(missing)} are not in the tree being replaced")
    return merge(kept, taken)


def count(params: dict, predicate: Predicate = everything) -> int:
    """Number of scalar parameters selected by `predicate`."""
    selected, _ = split(params, predicate)
    return int(sum(v.size for v in selected.values()))
