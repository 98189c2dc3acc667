"""The few-shot sinusoid benchmark (Finn et al. 2017) for every meta-learner, resumable.

Protocol (arXiv:1703.03400 sec. 5.1): a 1-40-40-1 ReLU network; tasks y = A sin(x + phi),
A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]; K support and 10 query points per task; 25 fresh
tasks per meta-step drawn on the device (`SinusoidTasks`); one full-batch inner step at 0.01
(Reptile: `--reptile-inner-steps` steps on support + query, as Reptile needs several); outer
optimizer Adam at 1e-3 (Keras' epsilon). Evaluation: `--test-tasks` new tasks (a key of their
own), each adapted on K support points with the training inner steps and scored by the MSE on
100 query points; the table gives the mean and its 95% interval (1.96 standard errors over
the tasks) before and after adaptation. The published protocol runs 70k meta-steps.

Every variant x K is meta-trained with `meta_train_sampled` into `<out>/checkpoints/<name>`
(the state is saved after every episode of `--steps-per-episode` steps), so a killed run
(kill -9 included) resumes where it stopped and ends at the same numbers; finished results
are kept in `<out>/results.json` and not recomputed.

    nice -n 19 python experiments/meta_sinusoid.py --iterations 70000 --out outputs/meta_sinusoid
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VARIANTS = ("maml", "fomaml", "meta_sgd", "anil", "reptile")
N_QUERY, META_BATCH, N_TEST_QUERY = 10, 25, 100
INNER_LR, OUTER_LR = 0.01, 1e-3


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments; a bad one exits with one line and code 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=70_000, help="meta-steps per run")
    parser.add_argument("--steps-per-episode", type=int, default=1000,
                        help="meta-steps between checkpoints")  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--shots", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--test-tasks", type=int, default=1000)
    parser.add_argument("--reptile-inner-steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/meta_sinusoid"))
    args = parser.parse_args(argv)
    problems = [
        (args.iterations < 1, "--iterations must be >= 1"),
        (args.steps_per_episode < 1, "--steps-per-episode must be >= 1"),
        (
            args.iterations % max(args.steps_per_episode, 1) != 0,
            "--iterations must be a multiple of --steps-per-episode",
        ),
        (args.test_tasks < 2, "--test-tasks must be >= 2"),
        (any(k < 1 for k in args.shots), "--shots must be >= 1"),
        (args.reptile_inner_steps < 1, "--reptile-inner-steps must be >= 1"),
        (
            bool(set(args.variants) - set(VARIANTS)),
            f"--variants must be among {', '.join(VARIANTS)}",
        ),
    ]
    for bad, message in problems:
        if bad:
            print(f"meta_sinusoid: {message}", file=sys.stderr)
            sys.exit(2)
    return args


def run_one(variant: str, shots: int, args: argparse.Namespace) -> dict:
    """Meta-train one variant at K = `shots` (resumably) and evaluate it on the test tasks."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxws.methods import meta
    from jaxws.methods.meta.tasks import with_meta_batch_size

    class SinusoidMLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(40, name="features_0")(x))
            h = nn.relu(nn.Dense(40, name="features_1")(h))
            return nn.Dense(1, name="head")(h)[..., 0]

    model = SinusoidMLP()
    inner_steps = args.reptile_inner_steps if variant == "reptile" else 1
    config = meta.MetaConfig(
        inner_steps=inner_steps,
        support_size=shots,
        query_size=N_QUERY,
        meta_batch_size=META_BATCH,
        steps_per_episode=args.steps_per_episode,
        max_episodes=args.iterations // args.steps_per_episode,
        early_stopping_on="none",
    )
    learner = meta.configure(meta.get(variant), config)
    problem = meta.InnerProblem.from_config(
        lambda p, s, x: model.apply({"params": p}, x), config, lambda o, y: (o - y) ** 2
    )
    hparams = meta.MetaHparams(inner_lr=INNER_LR, outer_lr=OUTER_LR)
    init_key, train_key, test_key = jax.random.split(jax.random.key(args.seed), 3)
    params = model.init(init_key, jnp.zeros((1, 1)))["params"]
    sampler = meta.SinusoidTasks(n_support=shots, n_query=N_QUERY, meta_batch_size=META_BATCH)
    result = meta.meta_train_sampled(
        learner,
        problem,
        config,
        train_key,
        params,
        {},
        sampler,
        hparams,
        checkpoint_dir=args.out / "checkpoints" / f"{variant}_{shots}shot",
        progress=f"{variant} K={shots}",
    )
    test = with_meta_batch_size(
        meta.SinusoidTasks(n_support=shots, n_query=N_TEST_QUERY), args.test_tasks
    ).sample(test_key)
    hparams = jax.tree.map(jnp.float32, hparams)

    @jax.jit
    def losses(state, task):
        params = meta.adapt(problem, learner, state, {}, task.support, hparams, test_key)
        return problem.task_loss(state.params, {}, task.query), problem.task_loss(
            params, {}, task.query
        )

    before, after = (np.asarray(v) for v in jax.vmap(losses, (None, 0))(result.state, test))
    history = np.asarray(result.history)

    def mean_and_interval(values: np.ndarray) -> tuple[float, float]:
        return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))

    return {
        "variant": variant,
        "shots": shots,
        "iterations": int(result.episodes) * args.steps_per_episode,
        "inner_steps": inner_steps,
        "mse_before": mean_and_interval(before),
        "mse_after": mean_and_interval(after),
        "first_episode_query_loss": float(history[0]),
        "last_episode_query_loss": float(history[int(result.episodes) - 1]),
    }


def table(results: list[dict]) -> str:
    """Markdown table of the results (mean +- 95% interval over the test tasks)."""
    lines = [
        "| variant | K | inner steps | iterations | MSE before adaptation | MSE after adaptation |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        (b, db), (a, da) = r["mse_before"], r["mse_after"]
        lines.append(
            f"| {r['variant']} | {r['shots']} | {r['inner_steps']} | {r['iterations']} | "
            f"{b:.3f} +- {db:.3f} | {a:.3f} +- {da:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from jaxws.files import atomic_write_json, atomic_write_text

    path = args.out / "results.json"
    settings = {k: str(v) for k, v in sorted(vars(args).items()) if k not in ("out", "variants")}
    done = json.loads(path.read_text()) if path.exists() else {}
    if done.get("settings") != settings:
        done = {"settings": settings, "runs": {}}
    for shots in args.shots:
        for variant in args.variants:
            name = f"{variant}_{shots}shot"
            if name not in done["runs"]:
                done["runs"][name] = run_one(variant, shots, args)
                atomic_write_json(path, done)
    results = [done["runs"][f"{v}_{k}shot"] for k in args.shots for v in args.variants]
    text = table(results)
    atomic_write_text(args.out / "table.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
