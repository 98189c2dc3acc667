"""A user's observation for the NPLM method: load and check ``data.observed_file``.

Every array is checked before the first toy trains (a bad file costs nothing and exits with
code 2 at the CLI): NPLM needs "data" and "reference" (and optionally "reference_weights"), the
symmetrized test "a" and "b", each (n,) or (n, d) with any number d of features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxws.config import ConfigError, from_section
from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.stats import nplm


class Observation(NamedTuple):
    """Validated user arrays: NPLM (data, reference, weights) or symmetrized (a, b, None)."""

    first: np.ndarray
    second: np.ndarray
    reference_weights: np.ndarray | None


def load_observation(data: ExponentialToyConfig, settings: NPLMConfig) -> Observation | None:
    """Load and check ``data.observed_file``; None when the observation is simulated.

    Every array is checked here, before any toy trains, so a bad file costs nothing.

    Args:
        data: the data section.
        settings: the method section (test, clip).

    Returns:
        The validated arrays (float64, (n, d)).

    Raises:
        ValueError: one line naming the file, the array and the problem.
    """
    if not data.observed_file:
        return None
    path = data.observed_file
    where = f"data.observed_file {path!r}"
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{where} does not exist")
    names = ("data", "reference") if settings.test == "nplm" else ("a", "b")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            missing = [n for n in names if n not in arrays]
            if missing:
                raise ValueError(f"{where} lacks arrays {missing} (has {sorted(arrays.files)})")
            first, second = arrays[names[0]], arrays[names[1]]
            weights = arrays.get("reference_weights")
    except ValueError as error:
        if str(error).startswith(where):
            raise
        raise ValueError(f"{where} is not a readable .npz file ({error})") from None
    except OSError as error:
        raise ValueError(f"{where} is not a readable .npz file ({error})") from None
    labels = tuple(f"{where}: array {n!r}" for n in names)
    try:
        if settings.test == "nplm":
            first, second = nplm.check_nplm_inputs(first, second, settings.clip)
            w = (
                np.ones(len(second))
                if weights is None
                else nplm.check_event_weights(
                    f"{where}: array 'reference_weights'", weights, len(second)
                )
            )
            if settings.standardise:
                nplm.reference_statistics(second, w)
            accepted = float(w.sum() / w.max())
            if accepted < 5.0 * data.n_expected:
                raise ValueError(
                    f"{where}: the reference holds {accepted:.0f} effective events, fewer than "
                    f"5 x N(R) = {5 * data.n_expected:g} needed to draw null toys from it"
                )
            return Observation(first, second, w)
        first, second = nplm.check_samples(first, second, ("a", "b"))
        return Observation(first, second, None)
    except ValueError as error:
        message = str(error)
        for name, label in zip(names, labels, strict=True):
            if message.startswith(f"{name} "):
                message = f"{label}{message[len(name) :]}"
                break
        if not message.startswith(where):
            message = f"{where}: {message}"
        raise ValueError(message) from None


def check_inputs(cfg: Any) -> list[str]:
    """Check the config sections and any user file (the CLI calls this before writing).

    Args:
        cfg: the resolved config.

    Returns:
        Report lines for `dry_run=true` (the memory estimate of one chunk of toys).

    Raises:
        ConfigError, ValueError: one line naming what is wrong.
    """
    data = from_section(ExponentialToyConfig, cfg.get("data"), "data")
    settings = from_section(NPLMConfig, cfg.get("method"), "method")
    try:
        observation = load_observation(data, settings)
    except ConfigError:
        raise
    except ValueError as error:  # a bad user file: one line, exit 2 at the CLI
        raise ConfigError(str(error)) from None
    if observation is not None and settings.test == "nplm":
        # Data outside the reference's range make the NPLM loss unbounded (the network can
        # put infinite weight where the reference has none): refuse them up front.
        low, high = observation.second.min(axis=0), observation.second.max(axis=0)
        outside = np.flatnonzero(
            ((observation.first < low) | (observation.first > high)).any(axis=1)
        )
        if len(outside):
            raise ConfigError(
                f"data.observed_file {data.observed_file!r}: {len(outside)} data events lie "
                f"outside the reference support (first at index {outside[0]}); the NPLM "
                "loss is unbounded there"
            )
    return [check_toy_memory(data, settings, observation)]


def toy_chunk_bytes(
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    n_features: int = 1,
    n_reference: int | None = None,
) -> tuple[float, str]:
    """Estimated bytes of the toys one compiled call fits, and the keys that set them.

    Every toy of a chunk holds its events (reference plus data: N_R + the data's buffer, or the
    pooled A and B of the symmetrized test, each member fitting twice) with their weights; the
    toys that train at once (all of the chunk when vmapped, one when the schedule is
    sequential, `jaxws.stats.nplm.fit.resolve_schedule`) add per event the network's
    activations and their gradients (4 floats per hidden unit, plus one per parameter for
    Newton's Jacobian), or for kernel NPLM two rows of the M centres' kernel matrix. An
    estimate of the large arrays (float32), not an exact count.

    Args:
        data: the data section.
        settings: the method section.
        n_features: features per event (1 for the exponential toy).
        n_reference: reference events (default `data.n_reference`).

    Returns:
        (bytes, the config keys and values that set them).
    """
    from jaxws.simulate.nplm_toys import capacity

    n_ref = data.n_reference if n_reference is None else n_reference
    largest_signal = max((*settings.signal_fractions, data.observed_signal_fraction, 0.0))
    if settings.test == "symmetrized":
        events = capacity(data.n_a * (1 + largest_signal)) + capacity(data.n_b)
        fits = 2 * settings.chunk_size
        keys = f"data.n_a={data.n_a:g}, data.n_b={data.n_b:g}"
    else:
        events = n_ref + capacity(data.n_expected * (1 + largest_signal))
        fits = settings.chunk_size
        keys = f"data.n_reference={n_ref}, data.n_expected={data.n_expected:g}"
    from jaxws.stats.nplm.fit import resolve_schedule

    if settings.model == "kernel":
        at_once, per_event = fits, 2 * settings.kernel_centres
    else:
        sequential = resolve_schedule(settings.schedule, events) == "sequential"
        at_once = 1 if sequential else fits
        per_event = 4 * sum(settings.hidden)
        if settings.optimizer == "newton":
            per_event += nplm.n_parameters(settings.network(n_features))
    n_bytes = 4.0 * events * (fits * (n_features + 3) + at_once * per_event)
    return n_bytes, f"{keys} x method.chunk_size={settings.chunk_size}"


def check_toy_memory(
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    observation: Any = None,
    available: int | None = None,
) -> str:
    """Refuse toys whose chunk cannot fit in memory (`jaxws.train.memory.check_memory`).

    Args:
        data: the data section.
        settings: the method section.
        observation: the user's observed arrays, if any (their features and reference size).
        available: bytes free (default: measured now).

    Returns:
        A report line.
    """
    from jaxws.train.memory import check_memory

    n_features, n_reference = 1, None
    if observation is not None:
        n_features = int(np.shape(observation.first)[-1]) if np.ndim(observation.first) > 1 else 1
        n_reference = len(observation.second)
    n_bytes, keys = toy_chunk_bytes(data, settings, n_features, n_reference)
    return check_memory(n_bytes, "the NPLM toys of one chunk", keys, available)


def validate(cfg: Any) -> list[str]:
    """`jaxws.methods.validate`'s hook: the sections and the observed file, before any toy.

    Args:
        cfg: the resolved config.

    Returns:
        Report lines for `dry_run=true`.

    Raises:
        ConfigError: one line naming what is wrong.
    """
    return check_inputs(cfg)
