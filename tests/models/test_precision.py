"""jaxws keeps float32 products at full precision (no TF32 on GPUs) unless told otherwise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxws.models  # noqa: F401  (applies jaxws' precision on import)
from jaxws import precision


@pytest.fixture
def restore_precision():
    before = jax.config.jax_default_matmul_precision
    yield
    jax.config.update("jax_default_matmul_precision", before)


def test_highest_by_default_env_chooses_and_users_setting_is_kept(monkeypatch, restore_precision):
    assert jax.config.jax_default_matmul_precision == "highest"  # applied on import
    jax.config.update("jax_default_matmul_precision", None)
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    assert precision.apply() == "highest" == jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", None)
    monkeypatch.setenv(precision.PRECISION_ENV, "tensorfloat32")
    assert precision.apply() == "tensorfloat32" == jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", "bfloat16")  # the user's own choice
    monkeypatch.setenv(precision.PRECISION_ENV, "highest")
    assert precision.apply() == "bfloat16" == jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", None)
    monkeypatch.setenv(precision.PRECISION_ENV, "default")
    assert precision.apply() is None
    assert jax.config.jax_default_matmul_precision is None


def test_cpu_float32_products_are_the_same_at_every_precision():
    # A property of XLA's CPU products (on an NVIDIA GPU "default" is TF32 and differs).
    cpu = jax.devices("cpu")[0]
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((256, 256)).astype(np.float32) for _ in range(2))
    images = rng.standard_normal((8, 12, 12, 1)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 1, 16)).astype(np.float32)

    def products():
        conv = jax.lax.conv_general_dilated(
            images, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return np.asarray(jax.jit(jnp.matmul)(a, b)), np.asarray(conv)

    with jax.default_device(cpu), jax.default_matmul_precision("highest"):
        full = products()
    with jax.default_device(cpu), jax.default_matmul_precision("default"):
        default = products()
    for x, y in zip(full, default, strict=True):
        np.testing.assert_array_equal(x, y)
