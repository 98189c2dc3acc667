"""Events from plain arrays: the required and optional fields, their shapes, sorting and checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxws.config import ConfigError
from jaxws.data.events import JetEvents

REQUIRED = ("constituents", "jets", "mjj", "region")
OPTIONAL = ("n_constituents", "label", "model_id")
JET_COLUMNS = ("pt", "eta", "phi", "mass")
CONSTITUENT_COLUMNS = ("pt", "deta", "dphi")

_SHAPES = {
    "constituents": "(N, 2, C, 3)",
    "jets": "(N, 2, 4)",
    "mjj": "(N,)",
    "region": "(N,)",
    "n_constituents": "(N, 2)",
    "label": "(N,)",
    "model_id": "(N,)",
}


class EventsError(ConfigError):
    """User events that miss a field, have a wrong shape or hold values outside the schema.

    A `ConfigError` (hence a ValueError): the command line reports it in one line, exit 2.
    """


def columnar_names() -> list[str]:
    """Required branch names of the columnar (awkward / ROOT) layout, in a fixed order."""
    names = ["mjj", "region"]
    for j in (0, 1):
        names += [f"jet{j}_{c}" for c in JET_COLUMNS]
        names += [f"jet{j}_constituent_{c}" for c in CONSTITUENT_COLUMNS]
    return names


def _shape_ok(name: str, shape: tuple[int, ...]) -> bool:
    if name == "constituents":
        return len(shape) == 4 and shape[1] == 2 and shape[3] == 3
    if name == "jets":
        return shape[1:] == (2, 4)
    if name == "n_constituents":
        return shape[1:] == (2,)
    return len(shape) == 1


def _sort_constituents(constituents: np.ndarray, max_constituents: int | None) -> np.ndarray:
    order = np.argsort(-constituents[..., 0], axis=2, kind="stable")
    constituents = np.take_along_axis(constituents, order[..., None], axis=2)
    if max_constituents is not None:
        width = constituents.shape[2]
        if width >= max_constituents:
            constituents = constituents[:, :, :max_constituents]
        else:
            pad = ((0, 0), (0, 0), (0, max_constituents - width), (0, 0))
            constituents = np.pad(constituents, pad)
    return constituents


def events_from_arrays(
    arrays: Mapping[str, Any],
    label: int | None = None,
    model_id: int | None = None,
    max_constituents: int | None = None,
    where: str = "events",
) -> JetEvents:
    """JetEvents from a mapping of dense arrays in the schema's layout (module docstring).

    Args:
      arrays: name -> array; the four required fields and any optional ones.
      label: fills `label` when the mapping has none (0 background, 1 signal).
      model_id: fills `model_id` when the mapping has none; default -1 for background, 0 for
        signal.
      max_constituents: keep the hardest C constituents per jet (pad with zeros if fewer).
      where: what the arrays are (a file name), used in error messages.

    Returns:
      JetEvents with the schema's dtypes, constituents sorted by pT descending.

    Raises:
      EventsError: a missing field, wrong shape, inconsistent event counts or bad values.
    """
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise EventsError(
            f"{where}: required dataset(s) {missing} missing; required: {list(REQUIRED)}, "
            f"optional: {list(OPTIONAL)}"
        )
    fields = {name: np.asarray(arrays[name]) for name in REQUIRED + OPTIONAL if name in arrays}
    n = len(fields["mjj"]) if fields["mjj"].ndim else -1
    for name, value in fields.items():
        if value.ndim == 0 or not _shape_ok(name, value.shape):
            raise EventsError(f"{where}: {name} must have shape {_SHAPES[name]}, got {value.shape}")
        if len(value) != n:
            raise EventsError(f"{where}: {name} has {len(value)} events, mjj has {n}")
        if not np.all(np.isfinite(value)):
            raise EventsError(f"{where}: {name} holds NaN or inf")
    if np.any(fields["constituents"][..., 0] < 0):
        raise EventsError(f"{where}: constituents hold a negative pT")
    if not np.all(np.isin(fields["region"], (-1, 0, 1))):
        raise EventsError(f"{where}: region must be 0 (SR), 1 (SB) or -1 (neither)")
    if "label" not in fields:
        if label is None:
            raise EventsError(f"{where}: no 'label' dataset; pass label=0 (background) or 1")
        fields["label"] = np.full(n, label)
    if not np.all(np.isin(fields["label"], (0, 1))):
        raise EventsError(f"{where}: label must be 0 (background) or 1 (signal)")
    if "model_id" not in fields:
        default = np.where(fields["label"] == 1, 0, -1)
        fields["model_id"] = default if model_id is None else np.full(n, model_id)
    constituents = fields["constituents"].astype(np.float32)
    if "n_constituents" not in fields:
        fields["n_constituents"] = np.sum(constituents[..., 0] > 0, axis=2)
    fields["constituents"] = _sort_constituents(constituents, max_constituents)
    return JetEvents(**fields).to_numpy()
