"""Methods: each module has `run(cfg, key, run_dir, tracker) -> metrics` (Hydra `method=<name>`).

A module may also have `validate(cfg)`, which checks its whole config and its input files
before the entry point writes anything; study methods without one get the shared study
checks (`jaxws.methods.injection_study.validate`).

Study methods (cwola, transfer, mtl and the meta-learning variants) also expose
`study(cfg, inputs, key, tracker) -> StudyResult`, so `method=compare` can run several of them
on the same pseudo-experiments.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from jaxws.config import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig


def load(name: str) -> ModuleType:
    """The method module `jaxws.methods.<name>` (or a registered meta-learning variant)."""
    try:
        return importlib.import_module(f"jaxws.methods.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"jaxws.methods.{name}":
            raise
    try:
        from jaxws.methods import meta

        return meta.method_module(name)
    except (ImportError, AttributeError, KeyError, ValueError):
        raise ConfigError(
            f"method.name {name!r} is not a method; known: {sorted(known_methods())}"
        ) from None


def known_methods() -> list[str]:
    """Names `method.name` may take (modules with a `run`, and the meta-learning variants)."""
    import pkgutil

    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("study", "pretrain", "meta"):
            names.append(info.name)
    try:
        from jaxws.methods import meta

        names += meta.available()
    except ImportError:
        pass
    return sorted(set(names))


def validate(module: ModuleType, cfg: DictConfig) -> None:
    """Check the method's whole config and input files (raises `ConfigError`)."""
    if hasattr(module, "validate"):
        module.validate(cfg)
    elif hasattr(module, "study"):
        from jaxws.methods import injection_study as study

        study.validate(cfg)
