"""Ensemble memory estimate: linear in the members, bounded from the jaxpr, and the chunk size
that fits a budget."""

import jax
import numpy as np
import pytest

from jaxws.models.mlp import MLP
from jaxws.train import Hparams, MemberData, TrainConfig, Trainer
from jaxws.train.memory import (
    EpochMemory,
    _program_bytes,
    choose_chunk_size,
    epoch_memory,
    epoch_program,
    member_bytes_bound,
)


def test_epoch_memory_predicts_a_larger_ensemble():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(3000, 8)).astype(np.float32)
    labels = (rng.random(3000) < 0.5).astype(np.float32)
    member = MemberData.from_arrays(
        np.arange(2000), labels[:2000], np.arange(2000, 3000), labels[2000:]
    )
    trainer = Trainer(MLP(feature_widths=(32, 32)), TrainConfig(batch_size=100, max_epochs=5))
    memory = epoch_memory(trainer, pool, member)
    # The pool (96 kB) is shared; each member carries at least its parameters, Adam's two
    # moments and the best parameters (4 copies) and its own index/label/weight arrays.
    n_params = sum(
        a.size for a in jax.tree.leaves(trainer.init_variables(jax.random.key(0), pool)["params"])
    )
    assert memory.per_member >= 4 * 4 * n_params + 3 * 4 * 3000
    assert memory.shared >= pool.nbytes
    members = jax.tree.map(lambda a: np.stack([a] * 4), member)
    keys = jax.random.split(jax.random.key(0), 4)
    states = jax.vmap(lambda k: trainer.init_state(trainer.init_variables(k, pool)))(keys)
    compiled = (
        epoch_program(trainer)
        .lower(states, keys, pool, members, Hparams(learning_rate=np.full(4, 1e-3, np.float32)))
        .compile()
    )
    assert _program_bytes(compiled) == pytest.approx(memory.total(4), rel=0.1)
    # The uncompiled bound (every value of the epoch's jaxpr kept) is above XLA's report.
    assert member_bytes_bound(trainer, pool, member) >= memory.per_member


def test_choose_chunk_size():
    memory = EpochMemory(shared=100, per_member=10)
    assert choose_chunk_size(8, memory, budget_bytes=1000) == 8  # everything fits
    assert choose_chunk_size(8, memory, budget_bytes=145) == 4  # 4 fit: two chunks of 4
    assert choose_chunk_size(10, memory, budget_bytes=170) == 5  # 7 fit: two chunks of 5
    assert choose_chunk_size(8, memory, budget_bytes=50) == 1  # nothing fits: one at a time
    with pytest.raises(ValueError, match="n_members"):
        choose_chunk_size(0, memory, budget_bytes=1000)
    with pytest.raises(ValueError, match="budget_bytes"):
        choose_chunk_size(3, memory, budget_bytes=0)
