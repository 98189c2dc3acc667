"""Config sections -> frozen, validated dataclasses.

Hydra composes the config; this module is the single gate through which a section enters the
library. Unknown keys and values that fail a field's check are refused with a `ConfigError`
naming the section and the key, so a typo never silently becomes a default.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A user mistake: an unknown config key, a bad value, or a bad input file or array.

    The one error type for everything the user can fix. Its message is one line naming the
    key, file, dataset or argument and what is allowed; the entry points (`python -m jaxws`,
    `python -m jaxws.simulate.generate`) print it without a traceback and exit with code 2.
    Anything else that goes wrong is a bug and keeps its traceback.
    """


def to_plain(section: Any) -> Any:
    """A plain dict or list from an OmegaConf container (interpolations resolved).

    Anything else is returned as it is.
    """
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return section
    if isinstance(section, DictConfig | ListConfig):
        return OmegaConf.to_container(section, resolve=True)
    return section


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if annotation is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if annotation is float and not isinstance(value, float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(annotation)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def from_section(cls: type[T], section: Mapping[str, Any] | None, name: str = "") -> T:
    """Build the frozen dataclass `cls` from a config section, refusing unknown keys.

    Args:
      cls: a dataclass type; its `__post_init__` may raise `ConfigError` for bad values.
      section: a mapping (DictConfig or dict); None means all defaults.
      name: the section's name in the config, used in error messages (e.g. "training").

    Returns:
      An instance of `cls`.
    """
    label = name or cls.__name__
    section = to_plain(section) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config section '{label}' must be a mapping, got {type(section)}")
    section = {key: to_plain(value) for key, value in section.items()}  # nested containers
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in config section '{label}'; allowed: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        key: _coerce(value, hints.get(key, Any), f"{label}.{key}") for key, value in section.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config section '{label}': {error}") from error


def import_class(path: str, key: str) -> type:
    """The class at import path `path` (a config's `_target_`, Hydra's convention).

    Args:
      path: `package.module.Class`.
      key: the config key that holds it, for the error message (e.g. "model._target_").

    Raises:
      ConfigError: `path` names no importable class.
    """
    import importlib

    module, _, name = str(path).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"{key} {path!r}: no such class ({error})") from None
    if not isinstance(found, type):
        raise ConfigError(f"{key} {path!r} is not a class")
    return found


def check(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition` holds (for `__post_init__`)."""
    if not condition:
        raise ConfigError(message)
