"""The one pure training function: `fit_ensemble` (chunked, queued, compacted) equals the vmap
of `learner.train` and `fit` its jit; the chunk's rows follow the memory budget."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from test_engine import assert_trees_close, gaussian_pool, ragged_members, take

from jaxws.models.mlp import MLP
from jaxws.train import (
    Hparams,
    Learner,
    TrainConfig,
    fit,
    fit_ensemble,
    learner,
    train,
    trainer_for,
)
from jaxws.train.memory import chunk_rows, epoch_memory


def spread_case():
    """Six members whose stopping epochs spread from a few epochs to the cap."""
    x, labels = gaussian_pool(n=1400, seed=2)
    sizes = [60, 90, 1000, 130, 700, 200]
    members = ragged_members(labels, sizes, n_val=200, seed=3)
    rates = Hparams(jnp.array([1e-2, 1e-2, 3e-4, 1e-2, 5e-4, 3e-3]))
    keys = jax.random.split(jax.random.key(11), len(sizes))
    model = MLP(feature_widths=(16,), head_widths=(8,))
    return keys, model, x, members, rates


def test_queued_ensemble_equals_the_vmap_of_train_and_fit_its_jit():
    keys, model, x, members, rates = spread_case()
    # Two rows and four queued members: rows of stopped members are refilled from the queue,
    # then compacted; blocks of 2 epochs between host checks.
    config = TrainConfig(
        batch_size=32, max_epochs=30, patience=2, queue_members=4, epochs_per_block=2
    )
    trainer = trainer_for(model, config)
    refilled = trainer.refilled
    ensemble = fit_ensemble(keys, model, x, members, rates, config, chunk_size=2)
    assert trainer.refilled - refilled == 4
    spec = Learner(model, config)
    states, history = jax.jit(jax.vmap(functools.partial(train, spec), in_axes=(0, None, 0, 0)))(
        keys, jnp.asarray(x), jax.tree.map(jnp.asarray, members), rates
    )
    epochs = np.asarray(states.epoch)
    assert len(set(epochs.tolist())) >= 3, f"stopping epochs not spread: {epochs}"
    np.testing.assert_array_equal(np.asarray(ensemble.epochs), epochs)
    np.testing.assert_array_equal(np.asarray(ensemble.best_epoch), np.asarray(states.best_epoch))
    assert_trees_close(ensemble, learner.result(states), atol=1e-5)
    assert_trees_close(
        (ensemble.train_loss, ensemble.val_loss), (history.train_loss, history.val_loss), atol=1e-5
    )
    # `fit` shown with a progress bar runs blocks on the host; its result is train's.
    solo = fit(keys[2], model, x, take(members, 2), take(rates, 2), config, progress="solo")
    assert_trees_close(solo, take(learner.result(states), 2), atol=1e-5)


def test_a_smaller_memory_budget_gives_smaller_chunks_and_the_same_results(tmp_path):
    x, labels = gaussian_pool(n=600)
    members = ragged_members(labels, [150, 200, 120, 180], n_val=100)
    model = MLP(feature_widths=(8,), head_widths=(4,))
    roomy = TrainConfig(batch_size=50, max_epochs=3, patience=3)
    estimate = epoch_memory(trainer_for(model, roomy), x, take(members, 0))
    # A budget that holds the program for two members but not three.
    tight = dataclasses.replace(roomy, memory_budget_gb=estimate.total(2) / 1e9)
    assert chunk_rows(trainer_for(model, roomy), x, take(members, 0), 4) == 4
    assert chunk_rows(trainer_for(model, tight), x, take(members, 0), 4) == 2
    keys = jax.random.split(jax.random.key(5), 4)
    rates = Hparams(jnp.array([1e-3, 2e-3, 3e-3, 4e-3]))
    results = {}
    for name, config in (("roomy", roomy), ("tight", tight)):
        directory = tmp_path / name
        results[name] = fit_ensemble(
            keys, model, x, members, rates, config, checkpoint_dir=directory
        )
        results[name + " chunks"] = len(list(directory.glob("chunk_*.npz")))
    assert (results["roomy chunks"], results["tight chunks"]) == (1, 2)
    assert_trees_close(results["roomy"], results["tight"], atol=1e-6)
