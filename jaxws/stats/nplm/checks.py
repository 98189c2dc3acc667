"""Checks of the samples given to the NPLM and symmetrized tests (before any toy trains).

A sample is (n_events, n_features) after a (n,) sample becomes (n, 1); it needs at least 2
finite events (with one event t measures nothing but the network's flexibility). Without weight
clipping the NPLM loss is unbounded below for every data event that is not a reference event
(arXiv:2401.09530); data outside the range of the reference make that divergence reachable by
a single monotone step, so :func:`check_nplm_inputs` refuses them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

MIN_EVENTS = 2  # a 1-event sample has no distribution to compare


def _as_events(name: str, events: Any) -> np.ndarray:
    try:
        array = np.asarray(events, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a numeric array ({error})") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (n_events, n_features), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (zero events): the test needs N > 0")
    if array.shape[0] < MIN_EVENTS:
        raise ValueError(
            f"{name} has {array.shape[0]} event: the test needs at least {MIN_EVENTS} events "
            "(with one event t measures nothing but the network's flexibility)"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.any(axis=1).sum())} events with NaN or inf values "
            f"(first at index {int(np.argmax(bad.any(axis=1)))})"
        )
    return array


def check_samples(
    first: Any,
    second: Any,
    names: tuple[str, str] = ("data", "reference"),
    support: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two samples: non-empty, finite, same feature dimension, inside the support.

    Args:
        first: events, (n,) or (n, d).
        second: events, (m,) or (m, d).
        names: what to call the samples in error messages.
        support: (lower, upper) bounds of the reference support, applied to every feature;
            None means unbounded.

    Returns:
        Both samples as float64 arrays of shape (n, d).

    Raises:
        ValueError: naming the sample and the problem.
    """
    a = _as_events(names[0], first)
    b = _as_events(names[1], second)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} has {a.shape[1]} features but {names[1]} has {b.shape[1]}: "
            "the two samples must have the same dimension"
        )
    lower, upper = support
    for name, array in zip(names, (a, b), strict=True):
        outside = np.zeros(len(array), bool)
        if lower is not None:
            outside |= (array < lower).any(axis=1)
        if upper is not None:
            outside |= (array > upper).any(axis=1)
        if outside.any():
            raise ValueError(
                f"{name} has {int(outside.sum())} events outside the reference support "
                f"[{lower}, {upper}] (first: {array[np.argmax(outside)].tolist()})"
            )
    return a, b


def check_nplm_inputs(
    data: Any,
    reference: Any,
    clip: float | None,
    support: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, np.ndarray]:
    """Validate NPLM inputs, and refuse the unclipped loss where it diverges.

    Without weight clipping the NPLM loss is unbounded below: f can grow without limit on any
    data event that is not a reference event (arXiv:2401.09530). When data events lie outside
    the range spanned by the reference sample a single sigmoid step reaches that divergence,
    so this raises; otherwise it warns that t then depends on the number of epochs.

    Args:
        data: data events D.
        reference: reference events R.
        clip: weight-clipping value; None or inf means unclipped.
        support: bounds of the reference support, see :func:`check_samples`.

    Returns:
        ``(data, reference)`` as float64 arrays (n, d).

    Raises:
        ValueError: bad samples, or unclipped loss with data outside the reference range.
    """
    d, r = check_samples(data, reference, ("data", "reference"), support)
    if clip is not None and not math.isfinite(clip):
        clip = None
    if clip is not None and clip <= 0:
        raise ValueError(f"weight clip must be > 0 (or None for no clipping), got {clip}")
    if clip is None:
        low, high = r.min(axis=0), r.max(axis=0)
        outside = ((d < low) | (d > high)).any(axis=1)
        if outside.any():
            raise ValueError(
                f"unbounded NPLM loss: {int(outside.sum())} data events lie outside the range of "
                f"the reference sample ({low.tolist()} to {high.tolist()}), where exp(f) n_R = 0 "
                "and the unclipped loss diverges to -inf; use weight clipping or the symmetrized "
                "test (reference A u B)"
            )
        warnings.warn(
            "NPLM without weight clipping: the loss is unbounded below for every data event "
            "that is not a reference event, so t grows with the number of epochs",
            RuntimeWarning,
            stacklevel=2,
        )
    return d, r


def check_event_weights(name: str, weights: Any, n_events: int) -> np.ndarray:
    """Validate per-event weights: one finite, non-negative number per event, positive sum.

    Args:
        name: what to call the weights in error messages.
        weights: (n_events,) values.
        n_events: number of events they belong to.

    Returns:
        The weights as float64 (n_events,).

    Raises:
        ValueError: naming the array and the problem.
    """
    try:
        w = np.asarray(weights, np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a numeric array ({error})") from None
    if w.shape != (n_events,):
        raise ValueError(f"{name} must have shape ({n_events},), one per event, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} has {int((~np.isfinite(w)).sum())} NaN or inf values")
    if np.any(w < 0):
        raise ValueError(f"{name} has {int((w < 0).sum())} negative values")
    if not w.sum() > 0:
        raise ValueError(f"{name} sum to 0")
    return w
