"""Model config section -> flax module (`model=paper_cnn | slim_cnn | mlp`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from jaxws.config import check, from_section
from jaxws.models.cnn import JetCNN
from jaxws.models.mlp import MLP


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The `model` config group.

    Attributes:
      name: label for outputs (paper_cnn, slim_cnn, mlp, ...).
      kind: `jet_cnn` (two-jet image CNN, Table 2 layout) or `mlp` (feature vectors).
      conv_features, kernel_sizes, pool_after, dense_features: `JetCNN` layout.
      feature_widths, head_widths, standardise: `MLP` layout.
      meta: add meta-transfer-learning scale/shift to the conv layers.
    """

    name: str = "slim_cnn"
    kind: str = "jet_cnn"
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
            self.kind in ("jet_cnn", "mlp"), f"model.kind must be jet_cnn or mlp, got {self.kind!r}"
        )
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


def build_model(section: Mapping[str, Any] | None, **overrides: Any) -> nn.Module:
    """The flax module described by a `model` config section.

    Args:
      section: the `model` config section (None: all `ModelSection` defaults).
      **overrides: extra module fields, e.g. `frozen_norm=True`.

    Returns:
      An `MLP` (kind "mlp") or a `JetCNN`.

    Raises:
      ConfigError: If the section holds an unknown key or an invalid value.
    """
    config = from_section(ModelSection, section, "model")
    if config.kind == "mlp":
        return MLP(config.feature_widths, config.head_widths, config.standardise, **overrides)
    return JetCNN(
        config.conv_features,
        config.kernel_sizes,
        config.pool_after,
        config.dense_features,
        meta=config.meta,
        **overrides,
    )
