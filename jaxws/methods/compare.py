"""Several study methods on the same pseudo-experiments, in one figure (paper Figs. 4-5).

`method=compare` with `method.methods: {label: {name: <method>, ...settings}}`: each entry is
passed to that method's `study` as its `method` section; all share the data, the
pseudo-experiments, the model and the evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
from omegaconf import OmegaConf

from jaxws import methods
from jaxws.config import ConfigError
from jaxws.methods import injection_study

if TYPE_CHECKING:
    from pathlib import Path

    from omegaconf import DictConfig

    from jaxws.track import Tracker


def _chosen(cfg: DictConfig) -> dict:
    entries = OmegaConf.to_container(cfg.method, resolve=True)
    unknown = sorted(set(entries) - {"name", "methods"})
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in config section 'method' (compare); allowed: "
            "['methods', 'name']"
        )
    chosen = entries.get("methods") or {}
    if not isinstance(chosen, dict) or not chosen:
        raise ConfigError("method.methods must name at least one method to compare")
    for label, section in chosen.items():
        if not isinstance(section, dict) or "name" not in section:
            raise ConfigError(f"method.methods.{label} needs a 'name'")
        module = methods.load(section["name"])
        if not hasattr(module, "study"):
            raise ConfigError(
                f"method.methods.{label}.name {section['name']!r} is not a study method"
            )
    return chosen


def validate(cfg: DictConfig) -> None:
    """The compared methods exist and are study methods; the shared sections are valid."""
    _chosen(cfg)
    injection_study.validate(cfg)


def run(cfg: DictConfig, key: jax.Array, run_dir: Path, tracker: Tracker) -> dict:
    """Run every chosen method on the same pseudo-experiments and report them together."""
    chosen = _chosen(cfg)
    inputs, train_key = injection_study.prepare_from_key(cfg, key)
    results = {}
    for index, (label, section) in enumerate(chosen.items()):
        module = methods.load(section["name"])
        sub_cfg = OmegaConf.merge(cfg, {"method": None})
        sub_cfg.method = section
        results[label] = module.study(
            sub_cfg, inputs, jax.random.fold_in(train_key, index), tracker
        )
    return injection_study.report(tracker, inputs, results)
