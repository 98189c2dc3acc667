"""How ensemble members share a compiled epoch ("auto" member_map): the rule per backend and
network, and the FLOP count it rests on."""

import jax
import jax.numpy as jnp
import pytest

from jaxws.models.cnn import PAPER_CNN, SLIM_CNN, JetCNN
from jaxws.models.mlp import MLP
from jaxws.train import Hparams, TrainConfig, Trainer, learner
from jaxws.train.state import MAP_STEP_FLOPS


def shapes(trainer: Trainer, pool: jax.ShapeDtypeStruct):
    state = jax.eval_shape(
        lambda k, p: trainer.init_state(trainer.init_variables(k, p)), jax.random.key(0), pool
    )
    return state, Hparams(jax.ShapeDtypeStruct((), jnp.float32))


def step_flops(trainer: Trainer, pool: jax.ShapeDtypeStruct) -> float:
    state, hparams = shapes(trainer, pool)
    return learner.step_flops(trainer.spec, state, pool, hparams)


def test_step_flops_of_an_mlp_are_six_per_multiply_add():
    # The trainable input normalisation needs input gradients through every layer: forward,
    # weight-gradient and input-gradient products, 2 FLOPs per multiply-add each.
    batch = 256
    trainer = Trainer(MLP(feature_widths=(64, 64), head_widths=(32,)), TrainConfig(batch))
    macs = 20 * 64 + 64 * 64 + 64 * 32 + 32 * 1
    assert step_flops(trainer, jax.ShapeDtypeStruct((1000, 20), jnp.float32)) == 6 * batch * macs


def test_step_flops_of_the_slim_cnn_match_its_layers():
    # Two 16x16 jets per event; 3x3 'same' convolutions with 8 and 16 features, each followed
    # by 2x2 pooling; dense 256 -> 32 -> 32 -> 1. Per image multiply-adds:
    macs = 16 * 16 * 9 * 1 * 8 + 8 * 8 * 9 * 8 * 16 + 4 * 4 * 16 * 32 + 32 * 32 + 32 * 1
    trainer = Trainer(JetCNN(**SLIM_CNN), TrainConfig(batch_size=250))
    flops = step_flops(trainer, jax.ShapeDtypeStruct((100, 2, 16, 16), jnp.float32))
    assert flops == 6 * 2 * 250 * macs


def test_auto_member_map_per_backend_and_network(monkeypatch):
    images25 = jax.ShapeDtypeStruct((2000, 2, 25, 25), jnp.float32)
    cases = [
        (Trainer(JetCNN(**PAPER_CNN), TrainConfig(batch_size=500)), images25),
        (Trainer(JetCNN(**PAPER_CNN), TrainConfig(batch_size=100)), images25),
        (Trainer(JetCNN(**SLIM_CNN), TrainConfig(batch_size=500)), images25),
        (
            Trainer(MLP(feature_widths=(64, 64), head_widths=(64,)), TrainConfig(250)),
            jax.ShapeDtypeStruct((2000, 64), jnp.float32),
        ),
    ]
    states = [shapes(trainer, pool) for trainer, pool in cases]
    flops = [step_flops(trainer, pool) for trainer, pool in cases]
    assert flops[2] < flops[1] < MAP_STEP_FLOPS < flops[0]

    def modes():
        return [t.member_map(s, p, h) for (t, p), (s, h) in zip(cases, states, strict=True)]

    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert modes() == ["map", "map", "map", "vmap"]  # one CPU device: any convolution fills it
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert modes() == ["map", "vmap", "vmap", "vmap"]  # one GPU: only a member that fills it
    monkeypatch.setattr(jax, "local_device_count", lambda: 2)
    assert modes() == ["vmap", "vmap", "vmap", "vmap"]  # members sharded over devices
    forced = TrainConfig(batch_size=250, member_map="map")
    assert forced.resolved_member_map(convolutional=False) == "map"
    with pytest.raises(ValueError, match="member_map must be auto, vmap or map"):
        TrainConfig(member_map="pmap")
