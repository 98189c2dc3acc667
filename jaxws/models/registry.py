"""Model config section -> flax module (`model=paper_cnn | slim_cnn | mlp`).

The section names its network class in `_target_` (Hydra's convention) and holds that class's
layout fields; `build_model` checks them (`ModelSection`, tuples) and calls the class. Not
`hydra.utils.instantiate`: it hands the module lists, and a flax module with a list attribute
cannot be a static argument of `jax.jit` (it does not hash).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from jaxws.config import check, from_section, import_class


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The `model` config group.

    Defaults: conf/model/slim_cnn.yaml (the MLP fields: conf/model/mlp.yaml), pinned by
    tests/test_config_schemas.py.

    Attributes:
      _target_: the flax module class, by its import path (`jaxws.models.cnn.JetCNN`, the
        two-jet image CNN of Table 2, or `jaxws.models.mlp.MLP` for feature vectors).
      name: label for outputs (paper_cnn, slim_cnn, mlp, ...).
      conv_features, kernel_sizes, pool_after, dense_features: `JetCNN` layout.
      feature_widths, head_widths, standardise: `MLP` layout.
      meta: add meta-transfer-learning scale/shift to the conv layers.
    """

    _target_: str = "jaxws.models.cnn.JetCNN"
    name: str = "slim_cnn"
    conv_features: tuple[int, ...] = (8, 16)
    kernel_sizes: tuple[int, ...] = (3, 3)
    pool_after: tuple[bool, ...] = (True, True)
    dense_features: tuple[int, ...] = (32, 32)
    feature_widths: tuple[int, ...] = (64, 64)
    head_widths: tuple[int, ...] = (32,)
    standardise: bool = True
    meta: bool = False

    def __post_init__(self):
        check(
            len(self.conv_features) == len(self.kernel_sizes) == len(self.pool_after),
            "model.conv_features, model.kernel_sizes and model.pool_after need equal lengths",
        )
        check(
            all(
                v >= 1
                for v in (
                    *self.conv_features,
                    *self.kernel_sizes,
                    *self.dense_features,
                    *self.feature_widths,
                    *self.head_widths,
                )
            ),
            "model layer sizes must be >= 1",
        )

    def module_class(self) -> type[nn.Module]:
        """The flax module class named by `_target_` (`package.module.Class`)."""
        cls = import_class(self._target_, "model._target_")
        check(issubclass(cls, nn.Module), f"model._target_ {self._target_!r} is not a flax module")
        return cls


def build_model(section: Mapping[str, Any] | None, **overrides: Any) -> nn.Module:
    """The flax module described by a `model` config section.

    Args:
      section: the `model` config section (None: all `ModelSection` defaults).
      **overrides: extra module fields, e.g. `frozen_norm=True`.

    Returns:
      An instance of the section's `_target_` (`JetCNN` or `MLP`) with the section's layout
      fields that the class has.

    Raises:
      ConfigError: If the section holds an unknown key or an invalid value.
    """
    config = from_section(ModelSection, section, "model")
    cls = config.module_class()
    accepted = {f.name for f in dataclasses.fields(cls)}
    layout = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(ModelSection)
        if f.name in accepted and f.name != "name"  # `name` labels outputs, not the module
    }
    return cls(**layout, **overrides)
