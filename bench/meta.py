"""Meta-step time of jaxws against a plain JAX + optax loop, side by side in one process.

The protocol (Finn et al. 2017, sinusoids): 1-40-40-1 ReLU network, K = 5 or 10 support and
10 query points per task, 25 tasks per meta-batch drawn fresh on the device every step, one
full-batch inner step at 0.01 (Reptile: 5 steps on support + query), Adam 1e-3. jaxws runs
`SampledMetaTrainer` (the outer loop of `meta_train_sampled`) on `SinusoidTasks`; the plain
loop is written below from the algorithms' definitions on flat parameter dicts, sharing no
code with jaxws. Both run `--steps` meta-steps in one compiled scan; cases are interleaved
and repeated, and the table shows the fastest repeat of each (ms per meta-step, as wall time
and as the process's CPU time), the ratios, and the time to trace and compile each program
(run the command twice: the second run's compile times are with a warm persistent cache).

`--profile` adds the episodic loop over a finite task set (`MetaTrainer`, how the issue's
numbers were taken: all tasks materialised, one episode) with its settings switched one at a
time, to show where its extra time went.

    nice -n 19 python bench/meta.py                  # all variants, K = 5 and 10
    nice -n 19 python bench/meta.py --profile --variants maml --shots 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxws.methods import meta
from jaxws.train import MemberData

N_QUERY, META_BATCH, INNER_LR, OUTER_LR = 10, 25, 0.01, 1e-3
REPTILE_STEPS = 5


class MLP(nn.Module):
    """1-40-40-1 ReLU (the head is what ANIL adapts)."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(40, name="features_0")(x))
        h = nn.relu(nn.Dense(40, name="features_1")(h))
        return nn.Dense(1, name="head")(h)[..., 0]


def squared_error(outputs, labels):
    return (outputs - labels) ** 2


# ----- the plain loop (independent of jaxws) -------------------------------------------------


def plain_net(p, x):
    h = jax.nn.relu(x @ p["w0"] + p["b0"])
    h = jax.nn.relu(h @ p["w1"] + p["b1"])
    return (h @ p["w2"] + p["b2"])[..., 0]


def plain_mse(p, x, y):
    return jnp.mean((plain_net(p, x) - y) ** 2)


def plain_tasks(key, k):
    ka, kp, kx = jax.random.split(key, 3)
    amplitude = jax.random.uniform(ka, (META_BATCH, 1), minval=0.1, maxval=5.0)
    phase = jax.random.uniform(kp, (META_BATCH, 1), minval=0.0, maxval=jnp.pi)
    x = jax.random.uniform(kx, (META_BATCH, k + N_QUERY, 1), minval=-5.0, maxval=5.0)
    y = amplitude * jnp.sin(x[..., 0] + phase)
    return x[:, :k], y[:, :k], x[:, k:], y[:, k:]


def plain_train(variant, k, n_steps):
    """`(params, key) -> params` after n_steps meta-steps of `variant`, one compiled scan."""
    opt = optax.adam(OUTER_LR)
    head = ("w2", "b2")

    def inner(p, rates, x, y, n, first_order, only_head):
        for _ in range(n):
            g = jax.grad(plain_mse)(p, x, y)
            if first_order:
                g = jax.lax.stop_gradient(g)
            p = {
                name: v - rates[name] * g[name] if (name in head or not only_head) else v
                for name, v in p.items()
            }
        return p

    learned = variant == "meta_sgd"

    def split(theta):
        return theta if learned else (theta, jax.tree.map(lambda v: INNER_LR, theta))

    def task_loss(theta, xs, ys, xq, yq):
        p, rates = split(theta)
        adapted = inner(p, rates, xs, ys, 1, variant == "fomaml", variant == "anil")
        return plain_mse(adapted, xq, yq)

    def step(carry, key):
        theta, state = carry
        xs, ys, xq, yq = plain_tasks(key, k)
        if variant == "reptile":
            p, rates = split(theta)
            x = jnp.concatenate([xs, xq], 1)
            y = jnp.concatenate([ys, yq], 1)
            ends = jax.vmap(lambda x, y: inner(p, rates, x, y, REPTILE_STEPS, True, False))(x, y)
            grads = jax.tree.map(lambda a, b: a - jnp.mean(b, 0), p, ends)
        else:
            mean_loss = lambda t: jnp.mean(
                jax.vmap(task_loss, (None, 0, 0, 0, 0))(t, xs, ys, xq, yq)
            )
            grads = jax.grad(mean_loss)(theta)
        updates, state = opt.update(grads, state, theta)
        return (optax.apply_updates(theta, updates), state), None

    def train(p, key):
        theta = (p, jax.tree.map(lambda v: jnp.full_like(v, INNER_LR), p)) if learned else p
        keys = jax.random.split(key, n_steps)
        (theta, _), _ = jax.lax.scan(step, (theta, opt.init(theta)), keys)
        return theta

    return train


# ----- jaxws ----------------------------------------------------------------------------------


def jaxws_trainer(variant, k, n_steps, **overrides):
    inner_steps = REPTILE_STEPS if variant == "reptile" else 1
    settings = dict(
        inner_steps=inner_steps,
        support_size=k,
        meta_batch_size=META_BATCH,
        steps_per_episode=n_steps,
        max_episodes=1,
        early_stopping_on="none",
        outer_optimizer="adam",
    )
    config = meta.MetaConfig(**{**settings, **overrides})
    learner = meta.configure(meta.get(variant), config)
    # optax.adam's epsilon (1e-8) as in the plain loop, not Keras' 1e-7
    learner = dataclasses.replace(learner, outer_optimizer=optax.scale_by_adam())
    model = MLP()
    problem = meta.InnerProblem.from_config(
        lambda p, s, x: model.apply({"params": p}, x), config, squared_error
    )
    return learner, problem, config


def timed(fn, *args):
    """(wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - wall, time.process_time() - cpu


def compile_once(jitted, *args, static=()):
    """The compiled program and its (wall, CPU) seconds to trace and compile.

    A second run of the bench reads the programs from the persistent compilation cache
    (`jaxws.train.compile_cache`, on for every jaxws import): its compile times are the
    warm-cache ones.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    compiled = jitted.lower(*args, *static).compile()
    return compiled, (time.perf_counter() - wall, time.process_time() - cpu)


def cases(variant, k, n_steps, params, hparams):
    """(name, compiled, args, compile times) of the plain loop and of jaxws."""
    flat = {
        "w0": params["features_0"]["kernel"],
        "b0": params["features_0"]["bias"],
        "w1": params["features_1"]["kernel"],
        "b1": params["features_1"]["bias"],
        "w2": params["head"]["kernel"],
        "b2": params["head"]["bias"],
    }
    key = jax.random.key(1)
    plain, plain_compile = compile_once(jax.jit(plain_train(variant, k, n_steps)), flat, key)
    learner, problem, config = jaxws_trainer(variant, k, n_steps)
    trainer = meta.SampledMetaTrainer(learner, problem, config)
    sampler = meta.SinusoidTasks(n_support=k, n_query=N_QUERY, meta_batch_size=META_BATCH)
    outer = trainer.init(learner.init(params, hparams))
    args = (outer, key, sampler, None, {}, hparams)
    ours, ours_compile = compile_once(trainer._episodes, *args, static=(1,))
    return [("plain", plain, (flat, key), plain_compile), ("jaxws", ours, args, ours_compile)]


def episodic_cases(k, n_steps, params, hparams):
    """The episodic loop over materialised tasks (MAML), settings switched one at a time."""
    rng = np.random.default_rng(0)
    n_tasks, n_train = META_BATCH * n_steps, k + N_QUERY
    amplitude = rng.uniform(0.1, 5, (n_tasks, 1))
    phase = rng.uniform(0, np.pi, (n_tasks, 1))
    x = rng.uniform(-5, 5, (n_tasks, n_train + 1)).astype(np.float32)
    y = (amplitude * np.sin(x + phase)).astype(np.float32)
    index = np.arange(x.size, dtype=np.int32).reshape(x.shape)
    tasks = MemberData.from_arrays(index[:, :n_train], y[:, :n_train], index[:, n_train:],
                                   y[:, n_train:])  # fmt: skip
    tasks = jax.tree.map(jnp.asarray, tasks)
    pool = jnp.asarray(x.reshape(-1, 1))
    base = dict(
        inner_steps=0,
        inner_epochs=1,
        inner_batch_size=64,
        support_size=k,
        meta_batch_size=META_BATCH,
        early_stopping_on="adapted",
    )
    settings = {
        "episodic (issue: adapted ES, epochs)": base,
        "episodic, ES on updated": {**base, "early_stopping_on": "updated"},
        "episodic, no ES": {**base, "early_stopping_on": "none"},
        "episodic, no ES, inner_steps=1": {**base, "early_stopping_on": "none", "inner_steps": 1},
    }
    out = []
    for name, overrides in settings.items():
        learner, problem, config = jaxws_trainer("maml", k, n_steps, **overrides)
        trainer = meta.MetaTrainer(learner, problem, config)
        outer = trainer.init(learner.init(params, hparams))
        args = (outer, jax.random.key(1), pool, tasks, {}, hparams)
        compiled, times = compile_once(trainer._episodes, *args, static=(1,))
        out.append((name, compiled, args, times))
    return out


def machine() -> str:
    model = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0]}"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+",
                        default=["maml", "fomaml", "meta_sgd", "anil", "reptile"])  # fmt: skip
    parser.add_argument("--shots", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--steps", type=int, default=1000, help="meta-steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"load average at start: {loadavg()}")
    model = MLP()
    params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    hparams = meta.MetaHparams(jnp.float32(INNER_LR), jnp.float32(OUTER_LR))
    groups = {}
    for k in args.shots:
        for variant in args.variants:
            groups[(variant, k)] = cases(variant, k, args.steps, params, hparams)
        if args.profile:
            groups[("maml", k, "episodic")] = episodic_cases(k, args.steps, params, hparams)
    best = {}
    for _ in range(args.repeats):  # interleaved: every case once per repeat
        for group, entries in groups.items():
            for name, compiled, call_args, _ in entries:
                wall, cpu = timed(compiled, *call_args)
                old = best.get((group, name), (np.inf, np.inf))
                best[(group, name)] = (min(old[0], wall), min(old[1], cpu))
    ms = lambda group, name, i: 1e3 * best[(group, name)][i] / args.steps
    print(f"load average at end: {loadavg()}")
    print(
        f"\n{args.steps} meta-steps per call, best of {args.repeats} interleaved repeats; ms per "
        "meta-step as wall time and as CPU time of the process (all threads: robust to other "
        "jobs on a loaded machine); compile: trace + compile, wall / CPU s\n"
    )
    print(
        "| variant | K | plain wall ms | jaxws wall ms | ratio wall | plain CPU ms | jaxws CPU ms "
        "| ratio CPU | compile plain s | compile jaxws s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for group, entries in groups.items():
        if len(group) == 3:
            continue
        variant, k = group
        (_, _, _, pc), (_, _, _, oc) = entries
        cells = []
        for i in (0, 1):
            plain, ours = ms(group, "plain", i), ms(group, "jaxws", i)
            cells.append(f"{plain:.3f} | {ours:.3f} | {ours / plain:.2f}")
        compiles = f"{pc[0]:.1f} / {pc[1]:.1f} | {oc[0]:.1f} / {oc[1]:.1f}"
        print(f"| {variant} | {k} | {cells[0]} | {cells[1]} | {compiles} |")
    if args.profile:
        print("\nProfile: MAML, episodic loop over materialised tasks (ratio to the plain loop)\n")
        print("| K | setting | wall ms | ratio wall | CPU ms | ratio CPU | compile s |")
        print("|---|---|---|---|---|---|---|")
        for group, entries in groups.items():
            if len(group) != 3:
                continue
            for name, _, _, times in entries:
                cells = []
                for i in (0, 1):
                    t, plain = ms(group, name, i), ms(("maml", group[1]), "plain", i)
                    cells.append(f"{t:.3f} | {t / plain:.2f}")
                compiles = f"{times[0]:.1f} / {times[1]:.1f}"
                print(f"| {group[1]} | {name} | {cells[0]} | {cells[1]} | {compiles} |")


if __name__ == "__main__":
    main()
