"""Transfer learning: leave-one-out source, cached pretraining, freezing, re-initialisation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxws.data.samples import benchmark_names
from jaxws.methods import pretrain as pretrain_module
from jaxws.methods.fine_tune import TransferConfig, fine_tune, member_initial_variables
from jaxws.methods.pretrain import PretrainConfig, pretrain, source_models, split_signal_counts
from jaxws.models import partition
from jaxws.models.mlp import MLP
from jaxws.track import checkpoints
from jaxws.train import MemberData, TrainConfig, Trainer

MODEL = MLP(feature_widths=(8,), head_widths=(4,))
PRETRAIN = PretrainConfig(max_epochs=3, patience=2, batch_size=64, n_signal=200, n_background=200)


def pool(n=400, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.float32)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[:, 0] += labels
    return x, labels


def members(labels, n_members=3, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_members):
        index = rng.permutation(len(labels))
        rows.append(
            MemberData.from_arrays(
                index[:300], labels[index[:300]], index[300:], labels[index[300:]]
            )
        )
    return jax.tree.map(lambda *a: np.stack(a), *rows)


def flat(params, predicate):
    selected, _ = partition.split(params, predicate)
    return selected


def test_leave_one_out_source_never_contains_the_target():
    names = benchmark_names()
    for target in names:
        sources = source_models(names, target)
        assert target not in sources
        assert sorted([*sources, target]) == sorted(names)
    assert split_signal_counts(10, 3).tolist() == [4, 3, 3]


def test_unknown_target_benchmark_is_refused():
    with pytest.raises(ValueError, match="not in the model list"):
        source_models(["id_lambda10", "dd_lambda10"], "id_lambda99")
    with pytest.raises(ValueError, match="no source models"):
        source_models(["id_lambda10"], "id_lambda10")


def test_pretraining_artifact_is_reused_not_retrained(tmp_path, monkeypatch):
    x, labels = pool()
    spec = {
        "architecture": {"name": "mlp", "feature_widths": [8], "head_widths": [4]},
        "resolution": 0,
        "sources": ["a", "b"],
        "seed": 3,
    }
    first, loaded = pretrain(
        jax.random.key(3), MODEL, x, labels, PRETRAIN, artifact_root=tmp_path, artifact_config=spec
    )
    assert not loaded

    def no_training(*args, **kwargs):
        raise AssertionError("pretraining ran again although its artifact exists")

    monkeypatch.setattr(pretrain_module, "fit", no_training)
    second, loaded = pretrain(
        jax.random.key(3),
        MODEL,
        x,
        labels,
        PRETRAIN,
        artifact_root=tmp_path,
        artifact_config=dict(reversed(spec.items())),
    )
    assert loaded
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(a, b)
    # Any change of the config is another artifact, which would be trained.
    with pytest.raises(AssertionError, match="ran again"):
        pretrain(
            jax.random.key(3),
            MODEL,
            x,
            labels,
            PRETRAIN,
            artifact_root=tmp_path,
            artifact_config={**spec, "seed": 4},
        )


def test_artifact_for_another_architecture_or_resolution_is_refused(tmp_path):
    variables = {"params": {"w": np.ones((2, 3), np.float32)}}
    meta = {"architecture": {"conv_features": [8, 16]}, "resolution": 25}
    path = checkpoints.save_variables(tmp_path / "a", variables, meta)
    with pytest.raises(checkpoints.ArtifactMismatchError, match=r"resolution 25.*50"):
        checkpoints.load_variables(path, expected={**meta, "resolution": 50})
    with pytest.raises(checkpoints.ArtifactMismatchError, match="architecture"):
        checkpoints.load_variables(path, expected={**meta, "architecture": {"conv_features": [8]}})
    with pytest.raises(checkpoints.ArtifactMismatchError, match="stored \\(2, 3\\)"):
        checkpoints.load_variables(path, template={"params": {"w": np.ones((3, 3))}})
    loaded = checkpoints.load_variables(path, expected=meta, template=variables)
    np.testing.assert_array_equal(loaded["params"]["w"], variables["params"]["w"])


def test_fine_tuning_freezes_theta_and_reinitialises_theta_head():
    x, labels = pool()
    pretrained = Trainer(MODEL, TrainConfig()).init_variables(jax.random.key(0), x)
    # Make the pretrained head recognisably different from any fresh init.
    pretrained["params"]["head"] = jax.tree.map(lambda a: a + 0.5, pretrained["params"]["head"])
    keys = jax.random.split(jax.random.key(11), 3)
    config = TransferConfig(
        max_epochs=4, patience=4, batch_size=64, learning_rate=1e-2, cache_features=False
    )
    result = fine_tune(keys, MODEL, x, members(labels), pretrained, config)
    for i in range(3):
        tuned = jax.tree.map(lambda a, i=i: a[i], result.variables)
        for k, v in flat(pretrained["params"], partition.is_feature_extractor).items():
            np.testing.assert_array_equal(np.asarray(flat(tuned["params"], lambda p: True)[k]), v)
        # Frozen Theta includes the input batch norm's running statistics.
        for a, b in zip(
            jax.tree.leaves(tuned["batch_stats"]),
            jax.tree.leaves(pretrained["batch_stats"]),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert int(result.epochs[i]) >= 1
    # Training the head on cached features of the frozen Theta gives the same network.
    cached = fine_tune(
        keys,
        MODEL,
        x,
        members(labels),
        pretrained,
        dataclasses.replace(config, cache_features=True),
    )
    np.testing.assert_array_equal(np.asarray(cached.epochs), np.asarray(result.epochs))
    for a, b in zip(
        jax.tree.leaves(cached.variables), jax.tree.leaves(result.variables), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)

    # The starting head is a fresh init from each member's key, not the pretrained head.
    frozen_model = MODEL.clone(frozen_norm=True)
    trainer = Trainer(frozen_model, config.train_config(), trainable=partition.is_head)
    start = member_initial_variables(trainer, keys, x, pretrained, partition.is_head)
    for i in range(3):
        fresh = trainer.init_variables(jax.random.split(keys[i])[0], x)
        for k, v in flat(fresh["params"], partition.is_head).items():
            got = np.asarray(flat(start["params"], lambda p: True)[k][i])
            np.testing.assert_array_equal(got, np.asarray(v))
            assert not np.allclose(got, flat(pretrained["params"], partition.is_head)[k])
    heads = [np.asarray(start["params"]["head"]["output"]["kernel"][i]) for i in range(3)]
    assert not np.allclose(heads[0], heads[1])


def test_keep_head_option_starts_from_the_pretrained_head():
    x, _ = pool()
    pretrained = Trainer(MODEL, TrainConfig()).init_variables(jax.random.key(0), x)
    trainer = Trainer(MODEL, TrainConfig(), trainable=partition.is_head)
    keys = jax.random.split(jax.random.key(1), 2)
    config = TransferConfig(reinit_head=False)
    start = member_initial_variables(trainer, keys, x, pretrained, config.reinit)
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(pretrained), strict=True):
        np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b))
    assert jnp.shape(start["params"]["head"]["output"]["bias"])[0] == 2
