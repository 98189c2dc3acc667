"""Every meta-learning variant against an independent reimplementation of its outer loop.

The reference below is written from the algorithms' definitions (MAML: Finn et al. 2017,
first-order MAML, Reptile: Nichol et al. 2018, ANIL: Raghu et al. 2020, Meta-SGD: Li et al.
2017, MTL: Sun et al. 2019 / arXiv:2312.06152 eqs. 6-7) in plain JAX on flat parameter dicts,
sharing no code with `jaxws.methods.meta`. To make the comparison exact, each task's training
set is one event listed twice, so the random support/query split of an episode always gives
support = query = that event, and with `meta_batch_size = 0` every outer step averages all
tasks (their order does not matter). The reference then is a short deterministic loop: per
episode, the task-averaged meta-gradient, one outer step (SGD or Adam written out), the
task-averaged validation loss of the updated parameters, and the best parameters kept.
`jaxws` must give the same meta-trained parameters to float32 round-off.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxws.methods import meta
from jaxws.train import MemberData


class ScaledDense(nn.Module):
    """Dense layer with MTL scale/shift, named as the jet CNN's conv layers."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.normal(0.1), (self.features,))
        scale = self.param("mtl_scale", nn.initializers.ones, (x.shape[-1], self.features))
        shift = self.param("mtl_shift", nn.initializers.zeros, (self.features,))
        return x @ (kernel * scale) + bias + shift


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(ScaledDense(3, name="features")(x))
        return nn.Dense(1, name="head")(h)[..., 0]


def _not_meta(path):
    return path[-1] not in ("mtl_scale", "mtl_shift")


def _head(path):
    return path[0] == "head"


# (adapted, meta-trained, estimator, learned per-parameter inner rates)
REFERENCE = {
    "maml": (_not_meta, _not_meta, "second_order", False),
    "fomaml": (_not_meta, _not_meta, "first_order", False),
    "reptile": (_not_meta, _not_meta, "reptile", False),
    "anil": (_head, _not_meta, "second_order", False),
    "meta_sgd": (_not_meta, _not_meta, "second_order", True),
    "mtl": (_head, lambda p: _head(p) or not _not_meta(p), "second_order", False),
}

INNER_LR, OUTER_LR, INNER_EPOCHS, EPISODES = 0.3, 0.05, 2, 4


def problem():
    rng = np.random.default_rng(7)
    n_tasks, n_val = 3, 5
    x = rng.normal(size=(40, 2)).astype(np.float32)
    slopes = rng.normal(size=(n_tasks, 2)).astype(np.float32)
    point = rng.choice(40, n_tasks, replace=False)
    train = np.stack([point, point], axis=1).astype(np.int32)
    val = rng.integers(0, 40, (n_tasks, n_val)).astype(np.int32)

    def target(index):
        return np.einsum("tnd,td->tn", x[index], slopes).astype(np.float32)

    tasks = MemberData.from_arrays(train, target(train), val, target(val))
    params = Tiny().init(jax.random.key(3), x[:1])["params"]
    return x, tasks, params


def reference_meta_train(name, x, tasks, params, optimizer, first_order=False):
    """The meta-trained parameters, from the definitions (see the module docstring)."""
    adapted_part, trained_part, estimator, learned_rates = REFERENCE[name]
    if first_order:
        estimator = "first_order"
    model = Tiny()
    flat = traverse_util.flatten_dict(params)

    def loss(flat_params, xs, ys):
        out = model.apply({"params": traverse_util.unflatten_dict(flat_params)}, xs)
        return jnp.mean((out - ys) ** 2)

    def adapt(flat_params, rates, xs, ys):
        fast = {k: v for k, v in flat_params.items() if adapted_part(k)}
        for _ in range(INNER_EPOCHS):
            grads = jax.grad(lambda f: loss({**flat_params, **f}, xs, ys))(fast)
            if estimator == "first_order":
                grads = jax.lax.stop_gradient(grads)
            fast = {k: fast[k] - rates[k] * grads[k] for k in fast}
        return {**flat_params, **fast}

    def task_gradient(outer, frozen, t):
        xs, ys = x[tasks.train_index[t, :1]], tasks.train_label[t, :1]

        def query_loss(outer):
            trained, rates = outer
            if not learned_rates:
                rates = {k: INNER_LR for k in flat if adapted_part(k)}
            return loss(adapt({**frozen, **trained}, rates, xs, ys), xs, ys)

        if estimator == "reptile":
            rates = {k: INNER_LR for k in flat if adapted_part(k)}
            end = adapt({**frozen, **outer[0]}, rates, xs, ys)
            return ({k: outer[0][k] - end[k] for k in outer[0]}, {})
        return jax.grad(query_loss)(outer)

    def validation_loss(flat_params):
        return np.mean(
            [
                loss(flat_params, x[tasks.val_index[t]], tasks.val_label[t])
                for t in range(len(tasks.val_index))
            ]
        )

    gradient = jax.jit(task_gradient, static_argnums=2)
    trained = {k: v for k, v in flat.items() if trained_part(k)}
    frozen = {k: v for k, v in flat.items() if not trained_part(k)}
    rates = {k: jnp.full(v.shape, INNER_LR) for k, v in flat.items() if adapted_part(k)}
    outer = (trained, rates if learned_rates else {})
    moments = jax.tree.map(jnp.zeros_like, (outer, outer))
    best, best_loss = flat, np.inf
    for episode in range(1, EPISODES + 1):
        grads = [gradient(outer, frozen, t) for t in range(len(tasks.train_index))]
        grads = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
        if optimizer == "sgd":
            step = grads
        else:  # Adam as Keras defines it (b1 = 0.9, b2 = 0.999, eps = 1e-7)
            first, second = moments
            first = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, first, grads)
            second = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g**2, second, grads)
            moments = (first, second)
            c1, c2 = 1 - 0.9**episode, 1 - 0.999**episode
            step = jax.tree.map(
                lambda m, v, c1=c1, c2=c2: (m / c1) / (jnp.sqrt(v / c2) + 1e-7), first, second
            )
        outer = jax.tree.map(lambda p, s: p - OUTER_LR * s, outer, step)
        current = {**frozen, **outer[0]}
        value = validation_loss(current)
        if value < best_loss:
            best, best_loss = current, value
    return best


def jaxws_meta_train(name, x, tasks, params, optimizer, first_order=False):
    """The meta-trained parameters from `jaxws.methods.meta` (flat path dict)."""
    config = meta.MetaConfig(
        inner_epochs=INNER_EPOCHS,
        inner_batch_size=4,
        meta_batch_size=0,
        max_episodes=EPISODES,
        patience=EPISODES,
        outer_optimizer=optimizer,
        early_stopping_on="updated",
        first_order=first_order or None,
    )
    model = Tiny()
    problem = meta.InnerProblem.from_config(
        lambda p, s, xs: model.apply({"params": p}, xs), config, lambda out, y: (out - y) ** 2
    )
    hparams = meta.MetaHparams(inner_lr=INNER_LR, outer_lr=OUTER_LR)
    result = meta.meta_train(
        meta.VARIANTS[name], problem, config, jax.random.key(0), params, {}, x, tasks, hparams
    )
    assert int(result.episodes) == EPISODES
    return traverse_util.flatten_dict(result.state.params)


CASES = [(name, "sgd", False) for name in REFERENCE] + [
    ("maml", "adam", False),
    ("meta_sgd", "adam", False),
    ("reptile", "adam", False),
    ("mtl", "adam", True),  # the paper's setting (conf/method/mtl_paper.yaml)
]


@pytest.mark.parametrize(("name", "optimizer", "first_order"), CASES)
def test_meta_trained_parameters_match_the_reference(name, optimizer, first_order):
    x, tasks, params = problem()
    expected = reference_meta_train(name, x, tasks, params, optimizer, first_order)
    got = jaxws_meta_train(name, x, tasks, params, optimizer, first_order)
    assert set(got) == set(expected)
    start = traverse_util.flatten_dict(params)
    moved = 0.0
    for path, value in expected.items():
        np.testing.assert_allclose(got[path], value, rtol=2e-5, atol=2e-6, err_msg=str(path))
        moved = max(moved, float(np.max(np.abs(np.asarray(value) - start[path]))))
    assert moved > 2e-5  # meta-training really moved the parameters (beyond round-off)


def test_first_and_second_order_differ_on_this_problem():
    """The problem above distinguishes the estimators (so the matches above mean something)."""
    x, tasks, params = problem()
    second = reference_meta_train("maml", x, tasks, params, "sgd")
    first = reference_meta_train("fomaml", x, tasks, params, "sgd")
    gap = max(float(np.max(np.abs(second[k] - first[k]))) for k in second)
    assert gap > 1e-4
