"""Ensemble members in one program: `vmap` against `lax.map`, against one member (issue 10).

`TrainConfig.member_map` decides how a chunk of E members shares one compiled epoch: batched
(`vmap`) or one after another inside the program (`lax.map`); "auto" picks `map` on a CPU with
one device. This bench trains the slim CNN (or an MLP) for a fixed number of epochs (no early
stopping) with E = 1 (`fit`) and E = --members under both forms, interleaved in one process
(bench/timing.py), and prints member-epochs per second, their ratio to E = 1 and the load.

    python bench/member_map.py                 # slim CNN, E = 8, 16x16 images
    python bench/member_map.py --model mlp --members 16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing

from jaxws.data.members import MemberData
from jaxws.models.cnn import SLIM_CNN, JetCNN
from jaxws.models.mlp import MLP
from jaxws.train import Hparams, TrainConfig, Trainer


def problem(model: str, n_events: int, resolution: int) -> tuple:
    """A model, a pool of random events with a learnable signal, and their labels."""
    rng = np.random.default_rng(0)
    labels = (rng.random(n_events) < 0.5).astype(np.float32)
    if model == "mlp":
        pool = rng.normal(size=(n_events, 64)).astype(np.float32) + labels[:, None] * 0.3
        return MLP(feature_widths=(64, 64), head_widths=(64,)), pool, labels
    pool = rng.random((n_events, 2, resolution, resolution)).astype(np.float32)
    pool[labels == 1, :, 4:8, 4:8] += 0.5
    return JetCNN(**SLIM_CNN), pool, labels


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("slim_cnn", "mlp"), default="slim_cnn")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    model, pool, labels = problem(args.model, args.events, args.resolution)
    n_val = args.events // 5
    member = MemberData.from_arrays(
        np.arange(n_val, args.events), labels[n_val:], np.arange(n_val), labels[:n_val]
    )
    base = TrainConfig(batch_size=250, max_epochs=args.epochs, patience=args.epochs)
    pool_device = jnp.asarray(pool)

    def case(members: int, member_map: str):
        config = dataclasses.replace(base, member_map=member_map, compact_members=False)
        trainer = Trainer(model, config)
        keys = jax.random.split(jax.random.key(0), members)
        data = jax.tree.map(lambda a: np.stack([a] * members), member)
        rates = Hparams(jnp.full(members, 1e-3, jnp.float32))

        def run() -> None:
            states = trainer.start_members(keys, pool_device, rates, None)
            out = trainer.run(states, keys, pool_device, data, rates, vmapped=True)
            jax.block_until_ready(out)

        return run

    cases = {
        "E=1": case(1, "vmap"),
        f"E={args.members} vmap": case(args.members, "vmap"),
        f"E={args.members} lax.map": case(args.members, "map"),
    }
    times = timing.interleave(cases, args.rounds)
    print("\n".join(timing.machine_lines()))
    print(f"- load average before/after: {times['_load']['before']} / {times['_load']['after']}")
    print(
        f"- {args.model}, {args.events} events ({args.resolution}x{args.resolution} images for "
        f"the CNN), batch 250, {args.epochs} epochs, {args.rounds} interleaved rounds\n"
    )
    print("| case | wall s [min-max] | CPU s | member-epochs / wall s | vs E=1 |")
    print("| --- | --- | --- | --- | --- |")
    reference = None
    for name, samples in times.items():
        if name.startswith("_"):
            continue
        members = 1 if name == "E=1" else args.members
        wall = timing.summary(samples["wall"])[0]
        rate = members * args.epochs / wall
        reference = reference or rate
        print(
            f"| {name} | {timing.fmt_spread(samples['wall'], digits=2)} | "
            f"{timing.summary(samples['cpu'])[0]:.2f} | {rate:.2f} | {rate / reference:.2f} |"
        )


if __name__ == "__main__":
    main()
