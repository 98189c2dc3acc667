"""The paper CNN's architecture (Table 2 of arXiv:2312.06152), its output, and the partition."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.models import partition
from jaxws.models.cnn import PAPER_CNN, SLIM_CNN, ConvFeatures, DenseHead, JetCNN
from jaxws.models.mlp import MLP


def table2_parameter_count(resolution: int) -> int:
    """Count written out from Table 2: conv(k*k*cin*cout + cout), dense(in*out + out)."""
    conv = 5 * 5 * 1 * 64 + 64 + 5 * 5 * 64 * 64 + 64 + 3 * 3 * 64 * 128 + 128 + 3 * 3 * 128 * 128
    conv += 128
    side = resolution // 2 // 2 // 2  # three 2x2 'valid' max-pools
    flat = side * side * 128
    dense = flat * 128 + 128 + 2 * (128 * 128 + 128) + 128 + 1
    batch_norm = 2 * 2  # gamma and beta for each jet's single-channel input
    return conv + dense + batch_norm


def test_paper_cnn_parameter_count():
    # Shapes only (jax.eval_shape): the count needs no initialised weights.
    def shapes(resolution):
        model = JetCNN(**PAPER_CNN)
        x = jax.ShapeDtypeStruct((1, 2, resolution, resolution), jnp.float32)
        return jax.eval_shape(model.init, jax.random.key(0), x)

    for resolution in (25, 50, 75):
        variables = shapes(resolution)
        assert partition.count(variables["params"]) == table2_parameter_count(resolution)
    # 25x25: Theta (convs + input norms) and theta (dense head) as written out by hand.
    variables = shapes(25)
    assert partition.count(variables["params"]) == 506_309
    assert partition.count(variables["params"], partition.is_feature_extractor) == 325_572
    assert partition.count(variables["params"], partition.is_head) == 180_737


def test_event_output_is_product_of_jet_sigmoids():
    model = JetCNN(**SLIM_CNN)
    images = jax.random.uniform(jax.random.key(1), (4, 2, 16, 16))
    variables = model.init(jax.random.key(2), images)
    logit = model.apply(variables, images)

    features = ConvFeatures(
        SLIM_CNN["conv_features"], SLIM_CNN["kernel_sizes"], SLIM_CNN["pool_after"]
    ).apply(
        {
            "params": variables["params"]["features"],
            "batch_stats": variables["batch_stats"]["features"],
        },
        images,
        False,
    )
    per_jet = DenseHead(SLIM_CNN["dense_features"]).apply(
        {"params": variables["params"]["head"]}, features
    )
    product = jax.nn.sigmoid(per_jet[:, 0]) * jax.nn.sigmoid(per_jet[:, 1])
    np.testing.assert_allclose(jax.nn.sigmoid(logit), product, rtol=1e-5)


def test_both_jets_share_one_subnetwork():
    model = JetCNN(**SLIM_CNN)
    images = jax.random.uniform(jax.random.key(3), (3, 2, 16, 16))
    variables = model.init(jax.random.key(4), images)
    swapped = images[:, ::-1]
    # Swapping jets swaps per-jet inputs to the shared network; the input norms are per jet
    # and identical at initialisation, so the product (and the logit) is unchanged.
    np.testing.assert_allclose(
        model.apply(variables, images), model.apply(variables, swapped), rtol=1e-5, atol=1e-6
    )


def test_mtl_network_with_unit_scale_and_zero_shift_equals_plain_cnn():
    images = jax.random.uniform(jax.random.key(5), (3, 2, 16, 16))
    plain = JetCNN(**SLIM_CNN)
    meta = JetCNN(**SLIM_CNN, meta=True)
    plain_vars = plain.init(jax.random.key(6), images)
    meta_vars = meta.init(jax.random.key(7), images)
    merged = partition.replace(
        meta_vars["params"], plain_vars["params"], lambda p: not partition.is_meta(p)
    )
    assert partition.count(meta_vars["params"], partition.is_meta) > 0
    out_meta = meta.apply({**meta_vars, "params": merged}, images)
    np.testing.assert_array_equal(out_meta, plain.apply(plain_vars, images))


def test_partition_covers_every_parameter_once():
    for model, x in (
        (JetCNN(**SLIM_CNN, meta=True), jnp.zeros((1, 2, 16, 16))),
        (MLP(), jnp.zeros((1, 7))),
    ):
        params = model.init(jax.random.key(0), x)["params"]
        total = partition.count(params)
        parts = [partition.is_feature_extractor, partition.is_head, partition.is_meta]
        assert sum(partition.count(params, p) for p in parts) == total
