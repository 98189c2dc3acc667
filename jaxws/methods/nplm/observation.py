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


def check_inputs(cfg: Any) -> None:
    """Check the config sections and any user file (the CLI calls this before writing).

    Args:
        cfg: the resolved config.

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


def validate(cfg: Any) -> None:
    """`jaxws.methods.validate`'s hook: the sections and the observed file, before any toy.

    Args:
        cfg: the resolved config.

    Raises:
        ConfigError: one line naming what is wrong.
    """
    check_inputs(cfg)
