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

A `+key=value` override forces a key past the schema (Hydra adds it anyway);
`jaxws.cli.check_schema_keys` refuses those after composition.

The dataclasses keep their defaults for library use (`SimulatorConfig()` in a notebook);
tests/test_config_schemas.py pins those of the config sections equal to the default YAML.

The `method` group stays a plain dict (each method reads and checks its own section with
`jaxws.config.from_section`); tests/test_config_schemas.py checks that every method file sets
every field its dataclasses read.

`register()` must run before anything composes the config: `python -m jaxws` calls it, and so
does tests/conftest.py. It reads the dataclasses' definitions from their source files rather
than importing them (and jax with them), so a refused override costs a process start, not a
jax import (`dataclass_fields`).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Sequence
from pathlib import Path
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

#: (group, schema name) -> (module, dataclass, fields kept (None: all), `_target_` added).
SCHEMAS: dict[tuple[str, str], tuple[str, str, tuple[str, ...] | None, bool]] = {
    ("training", "base_training"): (
        "jaxws.methods.injection_study.inputs",
        "StudyTrainingConfig",
        None,
        False,
    ),
    ("study", "base_study"): ("jaxws.methods.injection_study.inputs", "StudyConfig", None, False),
    ("model", "base_jet_cnn"): ("jaxws.models.registry", "ModelSection", JET_CNN_FIELDS, False),
    ("model", "base_mlp"): ("jaxws.models.registry", "ModelSection", MLP_FIELDS, False),
    ("data", "base_simulator"): ("jaxws.simulate.sources", "SimulatorConfig", None, True),
    ("data", "base_pythia"): ("jaxws.simulate.sources", "PythiaConfig", None, True),
    ("data", "base_events"): ("jaxws.data.readers.source", "EventsConfig", None, True),
    ("data", "base_tpc"): ("jaxws.simulate.tpc.detector", "TPCConfig", None, False),
    ("data", "base_nplm_exponential"): (
        "jaxws.methods.nplm.config",
        "ExponentialToyConfig",
        None,
        False,
    ),
    ("tracking", "base_tracking"): ("jaxws.track.tracker", "TrackingConfig", None, False),
}
#: Names an annotation of a config field may use (evaluated without importing the module).
_TYPE_NAMES = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "tuple": tuple,
    "dict": dict,
    "list": list,
    "None": None,
    "Any": Any,
}
_ROOT = Path(__file__).resolve().parent.parent

_registered = False


def _module_file(module: str) -> Path:
    path = _ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_init_field(value: ast.expr | None) -> bool:
    """False for `dataclasses.field(..., init=False)` (the field is no config key)."""
    if not isinstance(value, ast.Call):
        return True
    return not any(
        k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in value.keywords
    )


def dataclass_fields(module: str, name: str) -> dict[str, Any]:
    """Init field name -> type of dataclass `name` in `module`, read from its source.

    The same names and types as `typing.get_type_hints` of the imported class (base classes
    first; tests/test_config_schemas.py checks that they agree), without importing `module`
    and with it jax: the entry point registers the schemas, composes and checks the config
    in a fraction of a second.

    Args:
      module: the dotted module name inside jaxws (`jaxws.simulate.sources`).
      name: the class name.

    Returns:
      The fields in dataclass order.
    """
    tree = ast.parse(_module_file(module).read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:  # re-exported (`from jaxws.x import Name`): read it where it is defined
        if name in imported and imported[name] != module:
            return dataclass_fields(imported[name], name)
        raise LookupError(f"jaxws.schemas: no class {name} in {module}; update SCHEMAS")
    fields: dict[str, Any] = {}
    for base in cls.bases:
        if isinstance(base, ast.Name):
            fields.update(dataclass_fields(imported.get(base.id, module), base.id))
    for statement in cls.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        if _is_init_field(statement.value):
            code = compile(ast.Expression(statement.annotation), module, "eval")
            fields[statement.target.id] = eval(code, {"__builtins__": {}}, dict(_TYPE_NAMES))
    return fields


def schema(
    module: str,
    name: str,
    fields: Sequence[str] | None = None,
    target: bool = False,
    schema_name: str = "",
) -> type:
    """A Hydra schema for a frozen config dataclass: its fields and types, every value MISSING.

    Args:
      module: the module that defines the dataclass (it is read, not imported).
      name: the dataclass that reads the section.
      fields: the fields to keep (default: all init fields); the others are refused.
      target: add a `_target_` key (the class that the section builds, e.g. an event source).
      schema_name: the schema's class name (Hydra names it in errors); default `name`.

    Returns:
      A plain (not frozen: Hydra merges the YAML into it) dataclass type.
    """
    from omegaconf import MISSING

    types = dataclass_fields(module, name)
    if fields is not None:
        unknown = sorted(set(fields) - set(types))
        if unknown:
            raise ValueError(f"{name} has no field(s) {unknown}")
        types = {f: t for f, t in types.items() if f in fields}
    spec = [(f, t, dataclasses.field(default=MISSING)) for f, t in types.items()]
    if target:
        spec.insert(0, ("_target_", str, dataclasses.field(default=MISSING)))
    return dataclasses.make_dataclass(schema_name or name, spec)


def schemas() -> dict[tuple[str, str], type]:
    """(group, name) -> schema, for every group whose files are checked by a schema."""
    names = {"base_jet_cnn": "JetCNNSection", "base_mlp": "MLPSection"}
    return {
        (group, option): schema(module, cls, fields, target, names.get(option, ""))
        for (group, option), (module, cls, fields, target) in SCHEMAS.items()
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
