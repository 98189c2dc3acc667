"""The persistent compilation cache: on by default, in a user cache directory, configurable."""

import os
import subprocess
import sys
from pathlib import Path

from jaxws.train import compile_cache

ROOT = Path(__file__).resolve().parents[2]


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.CACHE_ENV, raising=False)
    monkeypatch.delenv("JAXWS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_directory() == tmp_path / "xdg" / "jaxws" / "jax-compilation"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "jaxws" / "jax-compilation"
    assert compile_cache.default_directory() == expected
    monkeypatch.setenv("JAXWS_CACHE_DIR", str(tmp_path / "root"))
    assert compile_cache.default_directory() == tmp_path / "root" / "jax-compilation"
    monkeypatch.setenv(compile_cache.CACHE_ENV, str(tmp_path / "mine"))
    assert compile_cache.default_directory() == tmp_path / "mine"
    for off in ("", "off"):
        monkeypatch.setenv(compile_cache.CACHE_ENV, off)
        assert compile_cache.default_directory() is None


CHILD = """
import jax
import jaxws.train  # switches the cache on
print(jax.config.jax_persistent_cache_min_compile_time_secs)
print(jax.config.jax_compilation_cache_dir)
"""


def test_importing_the_engine_switches_the_cache_on_in_the_configured_directory(tmp_path):
    unset = ("JAX_COMPILATION_CACHE_DIR", compile_cache.MIN_COMPILE_ENV)
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        JAXWS_JAX_CACHE=str(tmp_path / "cache"),
    )

    def child(**extra):
        out = subprocess.run(
            [sys.executable, "-c", CHILD],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        return out.stdout.strip().splitlines()[-2:]

    min_seconds, directory = child()
    assert directory == str(tmp_path / "cache")
    assert (tmp_path / "cache").is_dir()
    assert float(min_seconds) == compile_cache.MIN_COMPILE_SECONDS
    # A threshold the user gave JAX through its environment variable is kept.
    min_seconds, _ = child(**{compile_cache.MIN_COMPILE_ENV: "0"})
    assert float(min_seconds) == 0.0
