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
print(jax.config.jax_compilation_cache_dir)
"""


def test_importing_the_engine_switches_the_cache_on_in_the_configured_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        JAXWS_JAX_CACHE=str(tmp_path / "cache"),
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "cache")
    assert (tmp_path / "cache").is_dir()
