"""Meta-learning interface: registry, exact second-order gradient, adaptation gain, bad input.

The adaptation test uses the sinusoid-regression task family of Finn et al. 2017 (amplitude in
[0.1, 5], phase in [0, pi], x in [-5, 5]): tasks share their shape, so a meta-trained network
adapts from a 10-shot support set better than the same network without meta-training. It is a
one-sided sign test over 120 held-out tasks at the 1% level (>= 74 wins of 120 under the null
of no gain); a real gain of the size seen (mean query MSE falls several-fold) wins nearly every
task, so the test has power close to 1 while a fluke passes with < 1%. With 40 held-out tasks
ANIL's p-value (2e-5) sat 1.8 standard errors of z inside the line, so a retrained network on
another CPU could cross it; 120 tasks cost only evaluation (docs/testing.md).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from margins import TRAINED, record_p
from scipy import stats

from jaxws.config import ConfigError
from jaxws.methods import meta
from jaxws.models import partition
from jaxws.train import MemberData

PAPER_VARIANTS = {"mtl", "maml", "fomaml", "reptile", "anil", "meta_sgd"}
VARIANTS = meta.available()  # a new entry of `meta.VARIANTS` is tested too


class MetaDense(nn.Module):
    """Dense layer carrying MTL scale/shift (like the conv layers of the jet CNN)."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        scale = self.param("mtl_scale", nn.initializers.ones, (x.shape[-1], self.features))
        shift = self.param("mtl_shift", nn.initializers.zeros, (self.features,))
        return x @ (kernel * scale) + bias + shift


class Toy(nn.Module):
    width: int = 40

    @nn.compact
    def __call__(self, x, train=False):
        h = _Features(self.width, name="features")(x)
        return nn.Dense(1, name="head")(h)[..., 0]


class _Features(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        h = nn.relu(MetaDense(self.width, name="l0")(x))
        return nn.relu(MetaDense(self.width, name="l1")(h))


def squared_error(outputs, targets):
    return (outputs - targets) ** 2


def make_apply(model):
    return lambda params, model_state, x: model.apply({"params": params}, x)


def sinusoid_family(seed, n_tasks, n_train, n_val, n_pool=4000):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 5, (n_pool, 1)).astype(np.float32)
    amplitude = rng.uniform(0.1, 5.0, n_tasks)
    phase = rng.uniform(0.0, np.pi, n_tasks)
    train = rng.integers(0, n_pool, (n_tasks, n_train))
    val = rng.integers(0, n_pool, (n_tasks, n_val))

    def target(index):
        return (amplitude[:, None] * np.sin(x[index, 0] - phase[:, None])).astype(np.float32)

    return x, MemberData.from_arrays(train, target(train), val, target(val))


@pytest.fixture(scope="module")
def family():
    model = Toy()
    x, tasks = sinusoid_family(0, n_tasks=64, n_train=20, n_val=20)
    x_test, test = sinusoid_family(1, n_tasks=120, n_train=10, n_val=100)
    params = model.init(jax.random.key(0), x[:1])["params"]
    return model, params, x, tasks, x_test, test


def held_out_losses(learner, problem, states, hparams, x, tasks):
    """Query MSE on each held-out task after adapting on its 10-shot support set, for each
    of `states` (one compiled function for all of them)."""
    x = jnp.asarray(x)
    tasks = jax.tree.map(jnp.asarray, tasks)

    def one(state, t, key):
        support = (x[tasks.train_index[t]], tasks.train_label[t], tasks.train_weight[t])
        query = (x[tasks.val_index[t]], tasks.val_label[t], tasks.val_weight[t])
        params = meta.adapt(problem, learner, state, {}, support, hparams, key)
        return problem.task_loss(params, {}, query)

    n = tasks.train_index.shape[0]
    losses = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
    keys = jax.random.split(jax.random.key(5), n)
    return [np.asarray(losses(state, jnp.arange(n), keys)) for state in states]


def test_registry_holds_every_variant():
    assert set(VARIANTS) >= PAPER_VARIANTS
    assert meta.get("fomaml").estimator is meta.first_order
    with pytest.raises(ConfigError, match="unknown meta-learner 'protonet'"):
        meta.get("protonet")
    # `method=<variant>` finds the variant's study through the method loader.
    from jaxws import methods

    for name in VARIANTS:
        module = methods.load(name)
        assert callable(module.study)
        assert callable(module.run)


@pytest.mark.statistical
@pytest.mark.parametrize("name", VARIANTS)
def test_meta_training_adapts_better_than_no_meta_training(family, name):
    model, params, x, tasks, x_test, test = family
    config = meta.MetaConfig(
        inner_epochs=3,
        inner_batch_size=100,
        meta_batch_size=16,
        max_episodes=30,
        patience=30,
        early_stopping_on="adapted",
        hard_tasks=4 if name == "mtl" else 0,
    )
    learner = meta.configure(meta.get(name), config)
    problem = meta.InnerProblem.from_config(make_apply(model), config, squared_error)
    hparams = meta.MetaHparams(inner_lr=0.01, outer_lr=0.005)
    result = meta.meta_train(
        learner, problem, config, jax.random.key(1), params, {}, x, tasks, hparams
    )
    assert int(result.episodes) >= 1
    assert np.isfinite(float(np.nanmin(result.history)))
    initial = learner.init(params, hparams)
    states = [initial, result.state]
    before, after = held_out_losses(learner, problem, states, hparams, x_test, test)
    wins = int(np.sum(after < before))
    p_value = stats.binomtest(wins, len(before), 0.5, alternative="greater").pvalue
    record_p("power: binomial, meta-training wins", p_value, 0.01, TRAINED, True, "held-out tasks")
    assert p_value < 0.01, (name, wins, before.mean(), after.mean())
    # Frozen parts stay bit-identical (MTL and ANIL adapt only the head).
    if name == "mtl":
        for k, v in partition.split(params, partition.is_feature_extractor)[0].items():
            np.testing.assert_array_equal(
                np.asarray(partition.split(result.state.params, partition.everything)[0][k]), v
            )


def test_second_order_meta_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        model = Toy(width=3)
        x, tasks = sinusoid_family(2, n_tasks=2, n_train=12, n_val=4, n_pool=50)
        x = jnp.asarray(x, jnp.float64)
        params = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64), model.init(jax.random.key(0), x[:1])["params"]
        )
        params = jax.tree.map(lambda a: a + 0.1, params)  # S != 1, S-bar != 0: generic point
        rows = tasks.train_index[0]
        batch = lambda r: (
            x[rows[r]],
            jnp.asarray(tasks.train_label[0][r], jnp.float64),
            jnp.ones(len(r), jnp.float64),
        )
        task = meta.Task(
            support=batch(np.arange(6)),
            query=batch(np.arange(6, 12)),
            validation=batch(np.arange(6, 12)),
        )
        hparams = meta.MetaHparams(inner_lr=jnp.float64(0.05), outer_lr=jnp.float64(1e-3))
        key = jax.random.key(0)
        config = meta.MetaConfig(inner_epochs=2, inner_batch_size=3)
        problem = meta.InnerProblem.from_config(make_apply(model), config, squared_error)
        exact = meta.configure(meta.get("mtl"), config)
        first = meta.configure(meta.get("mtl"), meta.MetaConfig(first_order=True))
        assert exact.estimator is meta.second_order
        assert first.estimator is meta.first_order
        state = exact.init(params, hparams)
        (grads, _), _ = exact.estimator(problem, exact, state, {}, task, hparams, key)
        (grads_fo, _), _ = first.estimator(problem, first, state, {}, task, hparams, key)
        flat = partition.split(params, partition.everything)[0]

        def query_loss(p):
            start = meta.MetaState(params=p, extra={})
            adapted = meta.adapt(problem, exact, start, {}, task.support, hparams, key)
            return problem.task_loss(adapted, {}, task.query)

        meta_loss = jax.jit(query_loss)
        eps = 1e-6
        worst_exact, worst_first = 0.0, 0.0
        for path in [
            ("features", "l1", "mtl_scale"),
            ("features", "l0", "mtl_shift"),
            ("head", "kernel"),
        ]:
            for index in [
                (0,) * flat[path].ndim,
                (flat[path].shape[0] - 1,) + (0,) * (flat[path].ndim - 1),
            ]:

                def shifted(delta, path=path, index=index):
                    moved = dict(flat)
                    moved[path] = flat[path].at[index].add(delta)
                    return float(meta_loss(partition.merge(moved)))

                numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
                scale = max(abs(numeric), 1e-3)
                worst_exact = max(worst_exact, abs(float(grads[path][index]) - numeric) / scale)
                worst_first = max(worst_first, abs(float(grads_fo[path][index]) - numeric) / scale)
        assert worst_exact < 1e-5
        assert worst_first > 1e-3  # the first-order update is really an approximation


def test_bad_input_is_refused(family):
    model, params, x, tasks, _, _ = family
    config = meta.MetaConfig(max_episodes=1)
    problem = meta.InnerProblem.from_config(make_apply(model), config, squared_error)

    def train(learner, tasks, hparams, config=config):
        key = jax.random.key(0)
        return meta.meta_train(learner, problem, config, key, params, {}, x, tasks, hparams)

    one_task = jax.tree.map(lambda a: a[:1], tasks)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        train(meta.get("maml"), one_task, meta.MetaHparams(0.01, 0.01))
    for inner, outer in [(0.0, 0.01), (0.01, -1e-4), (float("nan"), 0.01)]:
        with pytest.raises(ValueError, match="must be finite and > 0"):
            train(meta.get("maml"), tasks, meta.MetaHparams(inner, outer))
    with pytest.raises(ConfigError, match="outer_optimizer"):
        meta.MetaConfig(outer_optimizer="rmsprop")
    # Combinations that mean nothing are refused, naming the key.
    with pytest.raises(ConfigError, match=r"meta.first_order means nothing .*'reptile'"):
        train(
            meta.get("reptile"),
            tasks,
            meta.MetaHparams(0.01, 0.01),
            meta.MetaConfig(first_order=True),
        )
    with pytest.raises(ConfigError, match=r"meta\.first_order = false contradicts"):
        meta.configure(meta.get("fomaml"), meta.MetaConfig(first_order=False))
    with pytest.raises(ValueError, match="learned inner step size gets no gradient"):
        meta.MetaLearner(estimator=meta.reptile, step_size=meta.learned_step_sizes())
    nothing_adapted = meta.MetaLearner(adapted=lambda path: path[0] == "no such module")
    with pytest.raises(ValueError, match="adapts no parameter"):
        train(nothing_adapted, tasks, meta.MetaHparams(0.01, 0.01))
