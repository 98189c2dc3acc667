"""Model-variable artifacts on disk: orbax-checkpoint, keyed by a hash of the config that made them.

A pretrained network (arXiv:2312.06152 sec. 4) is expensive and is reused by every
pseudo-experiment, sweep point and method that shares its configuration. It is saved once as
an *artifact*: a directory `<root>/<name>-<hash>` holding the variables (orbax
`StandardCheckpointer`, no pickle) and `metadata.json` with the full config it was made from.
The hash is taken over the canonical JSON of that config, so equal configs find the same
artifact and any change (model, resolution, source models, seed, sizes, training) makes a new
one.

Writes are atomic: everything goes into a temporary sibling directory that is renamed into
place at the end, so a crashed run leaves no half artifact and never overwrites a good one.
Loading checks the stored architecture and resolution against the expected ones (and the
parameter shapes against a template when one is given) and refuses, saying why, to hand
variables made for another network to the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxws.config import ConfigError
from jaxws.files import default_directory_mode
from jaxws.hashing import canonical, json_digest

_STATE = "variables"
_METADATA = "metadata.json"
# Metadata fields that must agree for variables to be usable by the caller's network.
CHECKED_FIELDS = ("architecture", "resolution")


class ArtifactMismatchError(ConfigError):
    """A stored artifact was made for another architecture, resolution or parameter layout."""


def config_hash(config: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of `config` (key order does not matter)."""
    return json_digest(config)


def artifact_path(root: str | Path, name: str, config: dict) -> Path:
    """Directory of the artifact `name` made from `config` under `root`."""
    return Path(root) / f"{name}-{config_hash(config)[:16]}"


def exists(path: str | Path) -> bool:
    """True if `path` holds a complete artifact (variables and metadata)."""
    path = Path(path).absolute()
    return (path / _METADATA).is_file() and (path / _STATE).is_dir()


def save_variables(path: str | Path, variables: dict, metadata: dict) -> Path:
    """Save model variables and their metadata atomically; an existing artifact is kept.

    Args:
      path: artifact directory (from `artifact_path`).
      variables: a pytree of arrays (e.g. {"params": ..., "batch_stats": ...}).
      metadata: JSON-able config that made it; should hold `architecture` and `resolution`.

    Returns:
      The artifact directory.
    """
    path = Path(path).absolute()
    if exists(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(default_directory_mode())  # umask permissions, not mkdtemp's 0700
    try:
        host = jax.tree.map(np.asarray, jax.device_get(variables))
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(tmp / _STATE, host)
        checkpointer.wait_until_finished()
        checkpointer.close()
        (tmp / _METADATA).write_text(json.dumps(canonical(metadata), indent=2, sort_keys=True))
        try:
            os.replace(tmp, path)
        except OSError:
            # Another process finished the same artifact first; theirs is as good as ours.
            if not exists(path):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_metadata(path: str | Path) -> dict:
    """The metadata stored with an artifact."""
    path = Path(path).absolute()
    if not exists(path):
        raise FileNotFoundError(f"no complete artifact at {path}")
    return json.loads((path / _METADATA).read_text())


def load_variables(path: str | Path, expected: dict | None = None, template: Any = None) -> dict:
    """Load variables, refusing an artifact made for another network.

    Args:
      path: artifact directory.
      expected: metadata the caller needs; every field of `CHECKED_FIELDS` present in it must
        equal the stored one.
      template: optional pytree of arrays (e.g. a fresh init) whose structure and shapes the
        stored variables must have.

    Returns:
      The variables as a pytree of numpy arrays.

    Raises:
      ArtifactMismatchError: architecture, resolution or parameter layout differ (the message
        names which and both values).
    """
    path = Path(path).absolute()
    stored = read_metadata(path)
    for field in CHECKED_FIELDS:
        if expected is not None and field in expected:
            want, have = canonical(expected[field]), stored.get(field)
            if want != have:
                raise ArtifactMismatchError(
                    f"artifact {path} was made for {field} {have!r}, but {want!r} is needed; "
                    "refusing to load it"
                )
    checkpointer = ocp.StandardCheckpointer()
    try:
        variables = checkpointer.restore(path / _STATE)
    finally:
        checkpointer.close()
    variables = jax.tree.map(np.asarray, variables)
    if template is not None:
        _check_layout(path, variables, template)
    return variables


def _check_layout(path: Path, variables: Any, template: Any) -> None:
    got = {
        jax.tree_util.keystr(k): np.shape(v)
        for k, v in jax.tree_util.tree_leaves_with_path(variables)
    }
    want = {
        jax.tree_util.keystr(k): np.shape(v)
        for k, v in jax.tree_util.tree_leaves_with_path(template)
    }
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        shapes = sorted(k for k in set(got) & set(want) if got[k] != want[k])
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:4]}" if missing else "",
                f"unexpected {extra[:4]}" if extra else "",
                ", ".join(f"{k}: stored {got[k]} vs needed {want[k]}" for k in shapes[:4]),
            )
            if part
        )
        raise ArtifactMismatchError(
            f"artifact {path} has another parameter layout than the network: {detail}"
        )
