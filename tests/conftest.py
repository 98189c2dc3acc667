"""Test-session settings shared by every test module.

Many tests build fresh `Trainer`s whose epochs compile to identical XLA programs; JAX's
persistent compilation cache lets the second and later compilations of the same program load
from disk instead of recompiling (seconds each on a 2-core CPU).
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_REPO = Path(__file__).resolve().parent.parent
# Runs started by tests (in process or as subprocesses) keep their artifacts in a fresh directory
# per test session, not in the user's ~/.cache/jaxws, and share the repository's XLA cache.
os.environ.setdefault("JAXWS_CACHE_DIR", tempfile.mkdtemp(prefix="jaxws-test-cache-"))
os.environ.setdefault("JAXWS_JAX_CACHE", str(_REPO / ".cache" / "jax-compilation"))
# Every program goes to the cache, however fast it compiled: the workers and the dozens of
# `python -m jaxws` subprocesses the tests start compile the same small programs again, and
# loading one from disk is cheaper than compiling it again (jaxws.train.compile_cache keeps
# this setting when it finds it in the environment).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")

_CACHE = _REPO / ".cache" / "jax-compilation"
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)

# Hydra's ConfigStore must hold the config schemas before any test composes the config.
from jaxws import schemas  # noqa: E402

schemas.register()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "numerical: a numerical or statistical margin; `make test-isa` reruns these tests with "
        "other code generation (docs/testing.md)",
    )
    config.addinivalue_line(
        "markers",
        "statistical: a statistical assertion whose margin is recorded (tests/margins.py); "
        "`make margins` measures them in two code generations (docs/testing.md)",
    )
