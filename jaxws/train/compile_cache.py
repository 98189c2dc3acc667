"""JAX's persistent compilation cache, switched on for every library user.

Compiling the paper CNN's training epoch takes 40-70 s on a 2-core CPU and the slim CNN's
10-20 s; JAX can keep compiled XLA programs on disk and load them in the next process instead
(`jax_compilation_cache_dir`). The CLI used to switch this on for itself only, in a directory
relative to the working directory; `enable()` runs when `jaxws.train` is first imported, so
notebooks and scripts get it too.

Where: `JAXWS_JAX_CACHE` if set (an empty value or "off" switches the cache off), else
`jax-compilation/` in the jaxws user cache directory (`jaxws.paths.cache_dir`:
`$JAXWS_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxws`, else `~/.cache/jaxws`); the command line's
`paths.compilation_cache` sets it per run. A cache directory that the user has
already given JAX (`jax.config.update("jax_compilation_cache_dir", ...)` or
`JAX_COMPILATION_CACHE_DIR`) is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_ENV = "JAXWS_JAX_CACHE"
# Programs that compile faster than this are not worth a disk round trip (unless the user set
# JAX's own `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`, which is then kept: the test suite
# caches every program, since its many processes compile the same small programs again).
MIN_COMPILE_SECONDS = 0.5
MIN_COMPILE_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def default_directory() -> Path | None:
    """The cache directory from `JAXWS_JAX_CACHE` / the user cache, or None when off."""
    from jaxws.paths import cache_dir

    value = os.environ.get(CACHE_ENV)
    if value is not None:
        value = value.strip()
        return None if value in ("", "off", "0", "false") else Path(value).expanduser()
    return cache_dir() / "jax-compilation"


def enable(directory: str | os.PathLike | None = None) -> Path | None:
    """Switch JAX's persistent compilation cache on.

    Args:
      directory: where to keep compiled programs; None uses `default_directory()`, and a
        directory already configured in JAX is then kept.

    Returns:
      The directory in use, or None when the cache is off.
    """
    if directory is None:
        configured = jax.config.jax_compilation_cache_dir
        if configured:
            return Path(configured)
        directory = default_directory()
        if directory is None:
            return None
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home, for example: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(directory))
    if MIN_COMPILE_ENV not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
