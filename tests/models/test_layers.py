"""Every convolution form and reshape max-pooling against XLA's own ops, values and gradients;
the per-backend choice of form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxws.models import layers
from jaxws.models.layers import CONV_METHODS, conv2d_same, max_pool_2x2


def reference_conv(x, kernel, bias):
    out = jax.lax.conv_general_dilated(
        x,
        kernel,
        (1, 1),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return out + bias


def reference_pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


@pytest.mark.parametrize("method", CONV_METHODS)
@pytest.mark.parametrize(
    ("size", "kernel_size", "cin", "cout"), [(9, 3, 2, 4), (12, 5, 3, 2), (7, 4, 1, 3)]
)
def test_conv_matches_lax_values_and_gradients(method, size, kernel_size, cin, cout):
    conv = lambda a, b, c: conv2d_same(a, b, c, method)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (2, size, size, cin))
    kernel = jax.random.normal(k2, (kernel_size, kernel_size, cin, cout))
    bias = jax.random.normal(k3, (cout,))
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            conv(x, kernel, bias), reference_conv(x, kernel, bias), rtol=1e-5, atol=1e-5
        )
        loss = lambda f: lambda a, b, c: jnp.sum(jnp.sin(f(a, b, c)))
        ours = jax.grad(loss(conv), argnums=(0, 1, 2))(x, kernel, bias)
        ref = jax.grad(loss(reference_conv), argnums=(0, 1, 2))(x, kernel, bias)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [8, 25, 13])
def test_max_pool_matches_reduce_window(size):
    x = jax.random.normal(jax.random.key(1), (3, size, size, 4))
    np.testing.assert_array_equal(max_pool_2x2(x), reference_pool(x))
    weights = jax.random.normal(jax.random.key(2), (3, size // 2, size // 2, 4))
    g_ours = jax.grad(lambda a: jnp.sum(max_pool_2x2(a) * weights))(x)
    g_ref = jax.grad(lambda a: jnp.sum(reference_pool(a) * weights))(x)
    np.testing.assert_array_equal(g_ours, g_ref)


@pytest.mark.parametrize("method", CONV_METHODS)
def test_vmapped_conv_equals_per_member(method):
    keys = jax.random.split(jax.random.key(3), 3)
    x = jax.random.normal(keys[0], (5, 4, 10, 10, 2))
    kernels = jax.random.normal(keys[1], (5, 3, 3, 2, 6))
    biases = jax.random.normal(keys[2], (5, 6))
    conv = lambda a, b, c: conv2d_same(a, b, c, method)
    with jax.default_matmul_precision("highest"):
        batched = jax.vmap(conv)(x, kernels, biases)
        for m in range(5):
            np.testing.assert_allclose(
                batched[m], conv(x[m], kernels[m], biases[m]), rtol=1e-5, atol=1e-5
            )


def test_auto_form_follows_backend_and_override(monkeypatch):
    assert layers.choose_conv_method("gpu", (5, 5), 1, 64) == "lax"
    assert layers.choose_conv_method("cuda", (3, 3), 64, 128) == "lax"
    assert layers.choose_conv_method("cpu", (5, 5), 1, 64) in CONV_METHODS
    assert layers.choose_conv_method("cpu", (5, 5), 1, 64) != "shift"  # never 1-channel shifts
    monkeypatch.setenv(layers.CONV_ENV, "rows")
    assert layers.conv_method_override() == "rows"
    monkeypatch.setenv(layers.CONV_ENV, "winograd")
    with pytest.raises(ValueError, match="JAXWS_CONV='winograd'"):
        layers.conv_method_override()
    x = jnp.ones((1, 4, 4, 1))
    with pytest.raises(ValueError, match="unknown convolution method 'fft'"):
        conv2d_same(x, jnp.ones((3, 3, 1, 2)), jnp.zeros(2), "fft")
