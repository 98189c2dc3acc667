"""Where jaxws keeps files that outlive a run: one user cache directory, absolute by default.

The `paths` config group (conf/paths/default.yaml) holds the same defaults for the command
line; this module serves code that runs without a config (the API, notebooks):
`$JAXWS_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxws`, else `~/.cache/jaxws`.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache directory of jaxws (absolute; not created here)."""
    configured = os.environ.get("JAXWS_CACHE_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base).expanduser() / "jaxws").absolute()


def absolute(path: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """`path` with `~` expanded, made absolute against `base` (default: the working directory)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return (Path(base) if base is not None else Path.cwd()).absolute() / path


def compilation_cache_dir(configured: str | None = None) -> str:
    """Directory of JAX's persistent compilation cache; "" = off.

    `$JAXWS_JAX_CACHE` wins (an empty value turns the cache off), then `configured` (the
    config's `paths.compilation_cache`), then `<cache_dir>/jax-compilation`.
    """
    if "JAXWS_JAX_CACHE" in os.environ:
        directory = os.environ["JAXWS_JAX_CACHE"]
    elif configured is not None:
        directory = configured
    else:
        directory = str(cache_dir() / "jax-compilation")
    return str(absolute(directory)) if directory else ""
