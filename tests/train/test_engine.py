"""The ensemble engine: vmapped members equal solo fits (also when a chunk is compacted as
members stop, and with the member axis sharded over two devices); early stopping; freezing;
compiled programs reused; bad input."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxws.models import partition
from jaxws.models.cnn import SLIM_CNN, JetCNN
from jaxws.models.mlp import MLP
from jaxws.train import Hparams, MemberData, TrainConfig, Trainer, fit, fit_ensemble, trainer_for
from jaxws.train.chunks import compact_width
from jaxws.train.losses import sigmoid_binary_cross_entropy

ROOT = Path(__file__).resolve().parents[2]
CONFIG = TrainConfig(batch_size=64, max_epochs=12, patience=3)


def gaussian_pool(n=1200, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.5).astype(np.float32)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[:, 0] += 1.5 * labels
    return x, labels


def ragged_members(labels, sizes, n_val=200, seed=1):
    """Members with different training-set sizes, padded to the largest with weight 0."""
    rng = np.random.default_rng(seed)
    n_train_pool = len(labels) - n_val
    width = max(sizes)
    rows = []
    for size in sizes:
        index = np.zeros(width, np.int32)
        index[:size] = rng.choice(n_train_pool, size, replace=False)
        weight = (np.arange(width) < size).astype(np.float32)
        val_index = np.arange(n_train_pool, len(labels))
        rows.append(
            MemberData.from_arrays(index, labels[index], val_index, labels[val_index], weight)
        )
    return jax.tree.map(lambda *a: np.stack(a), *rows)


def take(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def assert_trees_close(a, b, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


@pytest.mark.parametrize("member_map", ["vmap", "map"])
def test_ensemble_member_equals_solo_fit_with_ragged_data_and_per_member_lr(member_map):
    x, labels = gaussian_pool()
    members = ragged_members(labels, [700, 430, 1000, 250, 600])
    rates = jnp.array([1e-3, 3e-3, 2e-3, 1e-2, 5e-4])
    keys = jax.random.split(jax.random.key(7), 5)
    model = MLP(feature_widths=(16,), head_widths=(8,))
    config = dataclasses.replace(CONFIG, member_map=member_map)
    trainer = Trainer(model, config)
    ensemble = fit_ensemble(
        keys, model, x, members, Hparams(rates), config, chunk_size=2, trainer=trainer
    )
    assert np.asarray(ensemble.epochs).min() < config.max_epochs  # some member stopped early
    for i in range(5):
        solo = fit(keys[i], model, x, take(members, i), Hparams(rates[i]), config, trainer=trainer)
        assert int(solo.epochs) == int(ensemble.epochs[i])
        assert int(solo.best_epoch) == int(ensemble.best_epoch[i])
        assert_trees_close(take(ensemble.variables, i), solo.variables, atol=1e-5)
        np.testing.assert_allclose(ensemble.val_loss[i], solo.val_loss, atol=1e-5)


def test_ensemble_of_cnns_equals_solo_fit():
    rng = np.random.default_rng(3)
    images = rng.random((300, 2, 12, 12)).astype(np.float32)
    labels = (rng.random(300) < 0.5).astype(np.float32)
    images[labels == 1, :, 5:7, 5:7] += 1.0
    members = ragged_members(labels, [200, 150], n_val=60)
    keys = jax.random.split(jax.random.key(0), 2)
    model = JetCNN(**SLIM_CNN)
    config = TrainConfig(batch_size=50, max_epochs=3, patience=2)
    trainer = Trainer(model, config)
    ensemble = fit_ensemble(
        keys, model, images, members, Hparams(jnp.full(2, 1e-3)), config, trainer=trainer
    )
    for i in range(2):
        solo = fit(keys[i], model, images, take(members, i), Hparams(1e-3), config, trainer=trainer)
        assert_trees_close(take(ensemble.variables, i), solo.variables, atol=1e-5)


def test_early_stopping_keeps_the_best_parameters():
    x, labels = gaussian_pool(seed=4)
    member = take(ragged_members(labels, [300]), 0)
    model = MLP(feature_widths=(32, 32), head_widths=(32,))
    config = TrainConfig(batch_size=32, max_epochs=40, patience=4)
    result = fit(jax.random.key(1), model, x, member, Hparams(3e-3), config)
    history = np.asarray(result.val_loss)
    run = int(result.epochs)
    assert run < config.max_epochs, "overfitting 300 events should trigger early stopping"
    assert np.all(np.isfinite(history[:run]))
    assert np.all(np.isnan(history[run:]))
    best = int(np.nanargmin(history))
    assert int(result.best_epoch) == best
    assert run == best + 1 + config.patience
    trainer = Trainer(model, config)
    recomputed = trainer.evaluate_loss(
        result.variables, jnp.asarray(x), member.val_index, member.val_label, member.val_weight
    )
    np.testing.assert_allclose(recomputed, history[best], rtol=1e-5)


def test_without_early_stopping_members_run_max_epochs_and_keep_the_last_epoch():
    x, labels = gaussian_pool(seed=4)
    members = ragged_members(labels, [300, 500])
    keys = jax.random.split(jax.random.key(1), 2)
    model = MLP(feature_widths=(32, 32), head_widths=(32,))
    hparams = Hparams(jnp.full(2, 3e-3))
    stopping = TrainConfig(batch_size=32, max_epochs=14, patience=2)
    fixed = dataclasses.replace(stopping, early_stopping=False)
    early = fit_ensemble(keys, model, x, members, hparams, stopping)
    result = fit_ensemble(keys, model, x, members, hparams, fixed)
    stopped = np.asarray(early.epochs)
    assert stopped.max() < fixed.max_epochs, "patience 2 should stop these small members early"
    np.testing.assert_array_equal(np.asarray(result.epochs), fixed.max_epochs)
    np.testing.assert_array_equal(np.asarray(result.best_epoch), fixed.max_epochs - 1)
    trainer = Trainer(model, fixed)
    for i in range(2):
        # The same trajectory as with early stopping, for as long as that one ran.
        np.testing.assert_allclose(
            result.val_loss[i, : stopped[i]], early.val_loss[i, : stopped[i]], atol=1e-6
        )
        # The kept variables are the final state's, not the lowest-loss epoch's.
        state, _ = trainer.train_program(
            keys[i], jnp.asarray(x), take(members, i), take(hparams, i)
        )
        final = {"params": state.params, **state.model_state}
        assert_trees_close(take(result.variables, i), final, atol=1e-5)
        assert int(np.argmin(result.val_loss[i])) != fixed.max_epochs - 1
        member = take(members, i)
        recomputed = trainer.evaluate_loss(
            take(result.variables, i), jnp.asarray(x), member.val_index, member.val_label,
            member.val_weight,
        )  # fmt: skip
        np.testing.assert_allclose(recomputed, result.best_val_loss[i], rtol=1e-5)
    with pytest.raises(ValueError, match="early_stopping must be true or false"):
        TrainConfig(early_stopping="no")


def test_frozen_feature_extractor_is_bit_identical():
    rng = np.random.default_rng(5)
    images = rng.random((200, 2, 12, 12)).astype(np.float32)
    labels = (rng.random(200) < 0.5).astype(np.float32)
    member = take(ragged_members(labels, [150], n_val=50), 0)
    model = JetCNN(**SLIM_CNN, frozen_norm=True)
    start = model.init(jax.random.key(2), images[:1])
    config = TrainConfig(batch_size=50, max_epochs=3, patience=3)
    result = fit(
        jax.random.key(3),
        model,
        images,
        member,
        Hparams(1e-2),
        config,
        trainable=partition.is_head,
        init_variables=start,
    )
    before, _ = partition.split(start["params"], partition.is_feature_extractor)
    after, _ = partition.split(result.variables["params"], partition.is_feature_extractor)
    for path in before:
        np.testing.assert_array_equal(before[path], after[path])
    assert_trees_close(result.variables["batch_stats"], start["batch_stats"], atol=0)
    head_before, _ = partition.split(start["params"], partition.is_head)
    head_after, _ = partition.split(result.variables["params"], partition.is_head)
    assert any(not np.array_equal(head_before[p], head_after[p]) for p in head_before)


def test_epoch_compiles_once():
    x, labels = gaussian_pool(n=400)
    members = ragged_members(labels, [150, 200], n_val=100)
    model = MLP(feature_widths=(8,), head_widths=(4,))
    trainer = Trainer(model, TrainConfig(batch_size=50, max_epochs=3, patience=3))
    keys = jax.random.split(jax.random.key(0), 2)
    for rates in ([1e-3, 2e-3], [5e-3, 1e-4]):
        fit_ensemble(
            keys, model, x, members, Hparams(jnp.array(rates)), trainer.config, trainer=trainer
        )
    assert trainer._block_members_program._cache_size() == 1


def test_bad_input_is_refused_with_a_clear_message():
    x, labels = gaussian_pool(n=300)
    member = take(ragged_members(labels, [100], n_val=50), 0)
    model = MLP(feature_widths=(4,), head_widths=(4,))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        fit(jax.random.key(0), model, bad, member, Hparams(1e-3), CONFIG)
    empty = member.replace(val_weight=np.zeros_like(member.val_weight))
    with pytest.raises(ValueError, match="no validation events"):
        fit(jax.random.key(0), model, x, empty, Hparams(1e-3), CONFIG)
    outside = member.replace(train_index=member.train_index + 10_000)
    with pytest.raises(ValueError, match="outside the pool"):
        fit(jax.random.key(0), model, x, outside, Hparams(1e-3), CONFIG)
    members = jax.tree.map(lambda a: np.stack([a, a]), member)
    with pytest.raises(ValueError, match="leading member axis of size 3"):
        fit_ensemble(
            jax.random.split(jax.random.key(0), 3), model, x, members, Hparams(jnp.ones(3)), CONFIG
        )


def test_ensemble_resumes_finished_chunks_and_ignores_stale_ones(tmp_path):
    x, labels = gaussian_pool(n=500)
    members = ragged_members(labels, [150, 200, 120], n_val=100)
    model = MLP(feature_widths=(8,), head_widths=(4,))
    config = TrainConfig(batch_size=50, max_epochs=3, patience=3)
    trainer = Trainer(model, config)
    keys = jax.random.split(jax.random.key(0), 3)
    rates = Hparams(jnp.array([1e-3, 2e-3, 3e-3]))
    first = fit_ensemble(
        keys,
        model,
        x,
        members,
        rates,
        config,
        chunk_size=2,
        trainer=trainer,
        checkpoint_dir=tmp_path,
    )
    assert sorted(p.name for p in tmp_path.glob("chunk_*.npz")) == [
        "chunk_00000.npz",
        "chunk_00001.npz",
    ]
    # A "crash" after the first chunk: drop the second; the rerun loads chunk 0 and retrains 1.
    (tmp_path / "chunk_00001.npz").unlink()
    calls = []
    original = trainer.run
    trainer.run = lambda *a, **k: calls.append(1) or original(*a, **k)
    second = fit_ensemble(
        keys,
        model,
        x,
        members,
        rates,
        config,
        chunk_size=2,
        trainer=trainer,
        checkpoint_dir=tmp_path,
    )
    assert len(calls) == 1
    assert_trees_close(first, second, atol=0)
    # A changed learning rate for member 0: chunk 0 no longer matches and is retrained; chunk 1
    # (member 2, unchanged inputs) is still valid and reused.
    fit_ensemble(
        keys,
        model,
        x,
        members,
        Hparams(jnp.array([5e-3, 2e-3, 3e-3])),
        config,
        chunk_size=2,
        trainer=trainer,
        checkpoint_dir=tmp_path,
    )
    assert len(calls) == 2
    # Different data behind the same indices: nothing is reused.
    fit_ensemble(
        keys,
        model,
        x + 1.0,
        members,
        Hparams(jnp.array([5e-3, 2e-3, 3e-3])),
        config,
        chunk_size=2,
        trainer=trainer,
        checkpoint_dir=tmp_path,
    )
    assert len(calls) == 4


def test_second_fit_with_the_same_model_and_config_does_not_retrace():
    traces = []

    def counting_loss(outputs, labels):  # runs only while a program is traced
        traces.append(1)
        return sigmoid_binary_cross_entropy(outputs, labels)

    x, labels = gaussian_pool(n=300)
    members = ragged_members(labels, [100, 120], n_val=60)
    model = MLP(feature_widths=(4,), head_widths=(4,))
    config = TrainConfig(batch_size=50, max_epochs=2, patience=2)
    keys = jax.random.split(jax.random.key(0), 2)
    rates = Hparams(jnp.array([1e-3, 2e-3]))
    run_ensemble = lambda: fit_ensemble(
        keys, model, x, members, rates, config, loss_fn=counting_loss
    )
    run_solo = lambda: fit(
        keys[0], model, x, take(members, 0), Hparams(1e-3), config, loss_fn=counting_loss
    )
    first = run_ensemble()
    run_solo()
    traced = len(traces)
    assert traced > 0
    second = run_ensemble()
    run_solo()
    assert len(traces) == traced, "the second fit and fit_ensemble retraced"
    assert_trees_close(first, second, atol=0)
    assert trainer_for(model, config, counting_loss) is trainer_for(model, config, counting_loss)


def test_trainer_for_other_arguments_is_refused():
    x, labels = gaussian_pool(n=300)
    member = take(ragged_members(labels, [100], n_val=50), 0)
    model = MLP(feature_widths=(4,), head_widths=(4,))
    trainer = Trainer(model, CONFIG)
    with pytest.raises(ValueError, match="another model, config"):
        fit(
            jax.random.key(0),
            model,
            x,
            member,
            Hparams(1e-3),
            CONFIG,
            trainer=trainer,
            trainable=partition.is_head,
        )


def test_compacted_ensemble_with_a_spread_of_stopping_epochs_equals_solo_fits():
    # Training sets from 60 to 1000 events and learning rates over 1.5 decades: the members
    # stop between a few epochs and the cap, so the chunk of 6 is compacted to 4, 2 and 1.
    x, labels = gaussian_pool(n=1400, seed=2)
    sizes = [60, 90, 1000, 130, 700, 200]
    members = ragged_members(labels, sizes, n_val=200, seed=3)
    rates = jnp.array([1e-2, 1e-2, 3e-4, 1e-2, 5e-4, 3e-3])
    keys = jax.random.split(jax.random.key(11), len(sizes))
    model = MLP(feature_widths=(16,), head_widths=(8,))
    config = TrainConfig(batch_size=32, max_epochs=30, patience=2)
    trainer = Trainer(model, config)
    ensemble = fit_ensemble(keys, model, x, members, Hparams(rates), config, trainer=trainer)
    epochs = np.asarray(ensemble.epochs)
    assert len(set(epochs.tolist())) >= 3, f"stopping epochs not spread: {epochs}"
    assert trainer._block_members_program._cache_size() >= 2, "the chunk was never compacted"
    for i in range(len(sizes)):
        solo = fit(keys[i], model, x, take(members, i), Hparams(rates[i]), config, trainer=trainer)
        assert int(solo.epochs) == int(epochs[i])
        assert int(solo.best_epoch) == int(ensemble.best_epoch[i])
        assert_trees_close(take(ensemble.variables, i), solo.variables, atol=1e-5)
        np.testing.assert_allclose(ensemble.val_loss[i], solo.val_loss, atol=1e-5)


def test_compact_width_is_a_power_of_two_multiple_of_the_devices():
    assert [compact_width(a) for a in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 4, 8, 16]
    assert [compact_width(a, devices=2) for a in (1, 3, 5)] == [2, 4, 8]
    assert compact_width(5, devices=3) == 9


SHARDED_CHILD = """
import sys
import jax, numpy as np
sys.path.insert(0, sys.argv[2])
from test_engine import sharding_case
assert jax.local_device_count() == 2, jax.local_devices()
result = sharding_case()
np.savez(sys.argv[1], *[np.asarray(a) for a in jax.tree.leaves(result)])
"""


def sharding_case():
    """An ensemble of 5 members (padded to 6 on 2 devices), compacted as members stop."""
    x, labels = gaussian_pool(n=900, seed=5)
    members = ragged_members(labels, [80, 600, 120, 400, 60], n_val=150, seed=6)
    rates = Hparams(jnp.array([1e-2, 5e-4, 1e-2, 1e-3, 1e-2]))
    keys = jax.random.split(jax.random.key(4), 5)
    model = MLP(feature_widths=(8,), head_widths=(4,))
    config = TrainConfig(batch_size=32, max_epochs=15, patience=2)
    return fit_ensemble(keys, model, x, members, rates, config)


def test_member_axis_sharded_over_two_devices_equals_one_device(tmp_path):
    out = tmp_path / "sharded.npz"
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    subprocess.run(
        [sys.executable, "-c", SHARDED_CHILD, str(out), str(ROOT / "tests" / "train")],
        env=env,
        check=True,
        timeout=1800,  # seconds on 2 idle cores; generous for a shared machine
    )
    one_device = jax.tree.leaves(sharding_case())
    with np.load(out) as sharded:
        two_devices = [sharded[f"arr_{i}"] for i in range(len(sharded.files))]
    assert len(two_devices) == len(one_device)
    for a, b in zip(one_device, two_devices, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-6, rtol=0)


def test_resume_tells_two_trainable_lambdas_apart(tmp_path):
    """Two anonymous predicates (both named '<lambda>') that freeze different parameters must
    not reuse each other's chunk: the fingerprint holds the parameters they select."""
    x, labels = gaussian_pool(n=300)
    members = ragged_members(labels, [100, 120], n_val=60)
    model = MLP(feature_widths=(4,), head_widths=(4,))
    config = TrainConfig(batch_size=50, max_epochs=2, patience=2)
    keys = jax.random.split(jax.random.key(0), 2)
    rates = Hparams(jnp.array([1e-3, 2e-3]))

    def run(trainable):
        return fit_ensemble(
            keys, model, x, members, rates, config, trainable=trainable, checkpoint_dir=tmp_path
        )

    heads_only = run(lambda path: path[0] == "head")
    features_only = run(lambda path: path[0] == "features")
    assert_trees_close(features_only, run(lambda path: path[0] == "features"), atol=0)
    head = heads_only.variables["params"]["head"]
    # Different frozen parts -> different results; a reused chunk would make them equal.
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(head),
            jax.tree.leaves(features_only.variables["params"]["head"]),
            strict=True,
        )
    )
    fresh = fit_ensemble(keys, model, x, members, rates, config, trainable=lambda p: p[0] == "head")
    assert_trees_close(heads_only, fresh, atol=0)
