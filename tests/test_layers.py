"""im2col convolution and reshape max-pooling against XLA's own ops, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxws.models.layers import conv2d_im2col, conv2d_same, conv2d_shift_matmul, max_pool_2x2


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


@pytest.mark.parametrize("conv", [conv2d_im2col, conv2d_shift_matmul], ids=["im2col", "shift"])
@pytest.mark.parametrize("size,kernel_size,cin,cout", [(9, 3, 2, 4), (12, 5, 3, 2), (7, 4, 1, 3)])
def test_conv_matches_lax_values_and_gradients(conv, size, kernel_size, cin, cout):
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


def test_vmapped_conv_equals_per_member():
    keys = jax.random.split(jax.random.key(3), 3)
    x = jax.random.normal(keys[0], (4, 10, 10, 2))
    kernels = jax.random.normal(keys[1], (5, 3, 3, 2, 6))
    biases = jax.random.normal(keys[2], (5, 6))
    batched = jax.vmap(conv2d_same, in_axes=(None, 0, 0))(x, kernels, biases)
    for m in range(5):
        np.testing.assert_allclose(
            batched[m], conv2d_same(x, kernels[m], biases[m]), rtol=1e-5, atol=1e-5
        )
