"""Model surgery for transfer learning: a network's head alone, its features, frozen parts.

Transfer and meta-transfer learning (arXiv:2312.06152, sec. 4-5) pretrain a network, then
fine-tune it with parts frozen or re-initialised. With the feature extractor frozen the
features are computed once (`extract_features`) and only the head trains, on a copy of the
head with the same parameter names (`head_model`), which is exactly the full network's output
with fixed features.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxws.models import partition
from jaxws.models.cnn import DenseHead, JetCNN, log1mexp
from jaxws.models.mlp import MLP, MLPHead


def with_frozen_norm(model: nn.Module, frozen: bool) -> nn.Module:
    """The same network with its input batch norm in inference mode while training (if frozen)."""
    if not hasattr(model, "frozen_norm"):
        raise ValueError(f"{type(model).__name__} has no `frozen_norm` attribute")
    return model.clone(frozen_norm=frozen)


def add_meta_parameters(variables: dict, meta_template: dict) -> dict:
    """Pretrained plain-network variables extended with MTL S = 1, S-bar = 0.

    Args:
      variables: variables of the network without meta parameters (pretrained).
      meta_template: a fresh init of the same network with `meta=True` (its S = 1, S-bar = 0
        are kept; everything else is taken from `variables`).

    Returns:
      Variables for the meta network that compute exactly what `variables` computed.
    """
    params = partition.replace(
        meta_template["params"], variables["params"], lambda p: not partition.is_meta(p)
    )
    return {**variables, "params": params}


class _JetHead(nn.Module):
    """The head of `JetCNN` on precomputed features: same parameter names and outputs."""

    dense_features: tuple[int, ...]

    @nn.compact
    def __call__(self, features: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        jet_logits = DenseHead(self.dense_features, name="head")(features)
        log_p = jax.nn.log_sigmoid(jet_logits).sum(axis=-1)
        return log_p - log1mexp(log_p)


class _MLPHead(nn.Module):
    """The head of `MLP` on precomputed features."""

    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, features: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        return MLPHead(self.widths, name="head")(features)


def head_model(model: nn.Module) -> nn.Module | None:
    """A module computing `model`'s output from its `features` output (None if unknown)."""
    if isinstance(model, JetCNN):
        return _JetHead(tuple(model.dense_features))
    if isinstance(model, MLP):
        return _MLPHead(tuple(model.head_widths))
    return None


def extract_features(
    model: nn.Module, variables: dict, pool: Any, batch_size: int = 2048
) -> np.ndarray:
    """The output of the top-level `features` submodule for every event (inference mode).

    Args:
      model: a network with a top-level `features` submodule (`JetCNN`, `MLP`).
      variables: its variables.
      pool: the inputs, an array or a pytree of arrays with a leading event axis.
      batch_size: events per compiled call.

    Returns:
      The features of every event, concatenated along the event axis.
    """

    def one(x: Any):
        _, state = model.apply(
            variables,
            x,
            train=False,
            capture_intermediates=lambda module, method: (
                module.name == "features" and method == "__call__"
            ),
            mutable=["intermediates"],
        )
        return state["intermediates"]["features"]["__call__"][0]

    n = jax.tree.leaves(pool)[0].shape[0]
    one = jax.jit(one)
    parts = [
        one(jax.tree.map(lambda a, s=s: jnp.asarray(a[s : s + batch_size]), pool))
        for s in range(0, n, batch_size)
    ]
    return np.concatenate([np.asarray(p) for p in parts])
