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
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING

from jaxws.config import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig


#: `method.name` -> the module that runs it. The meta-learning variants (`jaxws.methods.meta`,
#: one record each in `meta.VARIANTS`) share one module and are added by `load`.
METHODS = {
    "cwola": "jaxws.methods.cwola",
    "transfer": "jaxws.methods.transfer",
    "compare": "jaxws.methods.compare",
    "lhco": "jaxws.methods.lhco",
    "nplm": "jaxws.methods.nplm",
    "anomaly": "jaxws.methods.anomaly",
    "hunt": "jaxws.methods.hunt.experiment",
}

#: The top-level config sections a study method reads besides `method` (cwola, transfer,
#: compare and the meta-learning variants).
STUDY_SECTIONS = ("data", "model", "training", "study")
#: The methods that read fewer: an override of any other section is refused (`sections`).
SECTIONS = {"nplm": ("data",), "anomaly": ("data",), "lhco": (), "hunt": ("data", "model")}


def sections(name: str) -> tuple[str, ...]:
    """The top-level sections besides `method` that `method.name` reads (no import of jax).

    The entry point refuses command-line overrides of the others (`training.*` under
    `method=nplm`), which would otherwise be accepted and ignored.
    """
    return SECTIONS.get(name, STUDY_SECTIONS)


def load(name: str) -> ModuleType | SimpleNamespace:
    """The module that runs `method.name` (a meta-learning variant's study module for those).

    Raises:
        ConfigError: `name` is neither in `METHODS` nor a meta-learning variant.
    """
    if name in METHODS:
        return importlib.import_module(METHODS[name])
    from jaxws.methods import meta

    if name in meta.available():
        return meta.method_module(name)
    raise ConfigError(f"method.name {name!r} is not a method; known: {known_methods()}")


def known_methods() -> list[str]:
    """Names `method.name` may take: `METHODS` and the meta-learning variants."""
    from jaxws.methods import meta

    return sorted({*METHODS, *meta.available()})


def validate(module: ModuleType | SimpleNamespace, cfg: DictConfig) -> None:
    """Check the method's whole config and input files (raises `ConfigError`)."""
    if hasattr(module, "validate"):
        module.validate(cfg)
    elif hasattr(module, "study"):
        from jaxws.methods import injection_study as study

        study.validate(cfg)
