"""Structured-config schemas: the frozen config dataclasses registered with Hydra's ConfigStore.

One source of defaults: the YAML files under conf/ hold the values, the dataclasses the schema.
Each schema is derived from the frozen dataclass that reads the section (same field names and
types) with every value MISSING, and each group file lists its schema first in its defaults
list (`defaults: [base_training, _self_]`, Hydra's "Structured Config schema" pattern). So at
compose time Hydra itself

- refuses a key the dataclass does not have (`training.learning_rat=1`, `model.hidden=3` under
  a CNN: structured configs are closed),
- refuses a value of the wrong type (`training.batch_size=big`),
- and leaves a key that a YAML file forgot as MISSING, which the entry point refuses by name
  (`jaxws.cli`): no run ever takes a value from a dataclass default.

The dataclasses keep their defaults for library use (`SimulatorConfig()` in a notebook);
tests/test_config_schemas.py pins those of the config sections equal to the default YAML.

The `method` group stays a plain dict (each method reads and checks its own section with
`jaxws.config.from_section`); tests/test_config_schemas.py checks that every method file sets
every field its dataclasses read.

`register()` must run before anything composes the config: `python -m jaxws` calls it, and so
does tests/conftest.py. It imports the modules that define the dataclasses (and with them
jax; see `jaxws.cli` for the cost).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

#: Model fields per network kind; the other kind's fields are refused.
JET_CNN_FIELDS = (
    "_target_",
    "name",
    "conv_features",
    "kernel_sizes",
    "pool_after",
    "dense_features",
)
MLP_FIELDS = ("_target_", "name", "feature_widths", "head_widths", "standardise")

_registered = False


def schema(
    cls: type, fields: Sequence[str] | None = None, name: str = "", target: bool = False
) -> type:
    """A Hydra schema for the frozen dataclass `cls`: its fields and types, every value MISSING.

    Args:
      cls: the frozen dataclass that reads the section.
      fields: the fields to keep (default: all init fields); the others are refused.
      name: the schema's class name (Hydra names it in errors); default `cls.__name__`.
      target: add a `_target_` key (the class that the section builds, e.g. an event source).

    Returns:
      A plain (not frozen: Hydra merges the YAML into it) dataclass type.
    """
    from omegaconf import MISSING

    hints = typing.get_type_hints(cls)
    keep = [f.name for f in dataclasses.fields(cls) if f.init]
    if fields is not None:
        unknown = sorted(set(fields) - set(keep))
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
        keep = [f for f in keep if f in fields]
    spec = [(f, hints[f], dataclasses.field(default=MISSING)) for f in keep]
    if target:
        spec.insert(0, ("_target_", str, dataclasses.field(default=MISSING)))
    return dataclasses.make_dataclass(name or cls.__name__, spec)


def schemas() -> dict[tuple[str, str], type]:
    """(group, name) -> schema, for every group whose files are checked by a schema."""
    from jaxws.data.readers import EventsConfig
    from jaxws.methods.injection_study import StudyConfig, StudyTrainingConfig
    from jaxws.methods.nplm.config import ExponentialToyConfig
    from jaxws.models.registry import ModelSection
    from jaxws.simulate.sources import PythiaConfig, SimulatorConfig
    from jaxws.simulate.tpc import TPCConfig
    from jaxws.track import TrackingConfig

    return {
        ("training", "base_training"): schema(StudyTrainingConfig),
        ("study", "base_study"): schema(StudyConfig),
        ("model", "base_jet_cnn"): schema(ModelSection, JET_CNN_FIELDS, "JetCNNSection"),
        ("model", "base_mlp"): schema(ModelSection, MLP_FIELDS, "MLPSection"),
        ("data", "base_simulator"): schema(SimulatorConfig, target=True),
        ("data", "base_pythia"): schema(PythiaConfig, target=True),
        ("data", "base_events"): schema(EventsConfig, target=True),
        ("data", "base_tpc"): schema(TPCConfig),
        ("data", "base_nplm_exponential"): schema(ExponentialToyConfig),
        ("tracking", "base_tracking"): schema(TrackingConfig),
    }


def register(store: Any = None) -> None:
    """Store every schema in Hydra's ConfigStore (once per process).

    Args:
      store: a ConfigStore (default: `ConfigStore.instance()`).
    """
    global _registered
    if _registered and store is None:
        return
    from hydra.core.config_store import ConfigStore

    store = store or ConfigStore.instance()
    for (group, name), node in schemas().items():
        store.store(group=group, name=name, node=node, provider="jaxws")
    _registered = True
