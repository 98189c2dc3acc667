"""Where the neural default's time goes on the LHCO R&D features (issue 25, item 7).

`weak_supervision`'s default for feature vectors (`VECTOR_DEFAULTS`: 10 members of a
128-128-128 MLP, batch 256) on the idealised LHCO setting of `experiments/lhco_trees.py`
(sr_train against the background of sr_val, 20% of the pool held out per member). Cases,
interleaved in one process (bench/timing.py), each one compiled call:

- one member, one epoch (`learner.epoch` under jit: shuffle, scan over minibatches,
  validation, early-stopping bookkeeping);
- one member, the validation loss alone (`learner.evaluate_loss`);
- one member, one training step dispatched from the host (the minibatch already on the
  device), times the steps of an epoch: what a Python loop per batch would cost;
- `--members` members, one epoch, `vmap` and `lax.map` (`Trainer.members_block`).

Printed per case: wall and process CPU seconds (median [min-max]), CPU seconds per
member-epoch, and the training FLOPs of an epoch (`learner.step_flops` x steps; a multiply-add
counts 2) per CPU second. On this shared machine, compare CPU seconds, not wall-clock.

    OMP_NUM_THREADS=1 nice -n 19 python bench/lhco_epoch.py [--members 10] [--rounds 3]

`--compare-maps N`: instead, fit 4 members of the default network with `weak_supervision` on the
first N rows of each training file (up to 12 epochs, patience 3) once with `member_map="vmap"`
and once with "map", and print whether the member logits on 2000 events are equal bit for bit
and their largest difference.

    OMP_NUM_THREADS=1 nice -n 19 python bench/lhco_epoch.py --compare-maps 6000
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing

from jaxws.data import lhco
from jaxws.data.members import MemberData
from jaxws.methods.cwola import VECTOR_DEFAULTS, weak_supervision
from jaxws.models.mlp import MLP
from jaxws.train import Hparams, TrainConfig, Trainer, learner


def problem(max_events: int | None, n_members: int, seed: int = 0) -> tuple:
    """The pool, its labels and `n_members` random train/validation splits (as the API)."""
    splits = lhco.load_lhco()
    train, val = splits["sr_train"], splits["sr_val"]
    scaler = lhco.Standardizer.fit(train.features[:max_events])
    data = scaler.transform(train.features[:max_events])
    background = scaler.transform(val.features[:max_events][val.labels[:max_events] == 0])
    pool = np.concatenate([data, background]).astype(np.float32)
    labels = np.concatenate([np.ones(len(data)), np.zeros(len(background))]).astype(np.float32)
    rng = np.random.default_rng(seed)
    n_val = round(0.2 * len(pool))
    rows = []
    for _ in range(n_members):
        order = rng.permutation(len(pool))
        val_rows, train_rows = order[:n_val], order[n_val:]
        rows.append(
            MemberData.from_arrays(train_rows, labels[train_rows], val_rows, labels[val_rows])
        )
    return pool, labels, jax.tree.map(lambda *a: np.stack(a), *rows)


def compare_maps(n_rows: int) -> None:
    """Fit the default network with vmap and with lax.map; print how far the results differ."""
    splits = lhco.load_lhco()
    train, val = splits["sr_train"], splits["sr_val"]
    scaler = lhco.Standardizer.fit(train.features[:n_rows])
    data = scaler.transform(train.features[:n_rows])
    background = scaler.transform(val.features[:n_rows][val.labels[:n_rows] == 0])
    widths = VECTOR_DEFAULTS["widths"]
    logits, epochs = {}, {}
    for mode in ("vmap", "map"):
        config = TrainConfig(
            batch_size=VECTOR_DEFAULTS["batch_size"], max_epochs=12, patience=3, member_map=mode
        )
        scorer = weak_supervision(
            data,
            background,
            n_members=4,
            seed=0,
            config=config,
            model=MLP(feature_widths=widths[:-1], head_widths=widths[-1:]),
        )
        logits[mode] = scorer.member_scores(data[:2000])
        epochs[mode] = np.asarray(scorer.history.epochs).tolist()
    print("\n".join(timing.machine_lines()))
    print(f"- load average: {timing.load_average()}")
    print(f"- epochs per member: vmap {epochs['vmap']}, lax.map {epochs['map']}")
    difference = float(np.abs(logits["vmap"] - logits["map"]).max())
    print(
        f"- member logits equal bit for bit: {np.array_equal(logits['vmap'], logits['map'])}; "
        f"largest difference {difference:.3g}"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the cases and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=VECTOR_DEFAULTS["n_members"])
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-maps", type=int, default=None, metavar="N")
    args = parser.parse_args(argv)
    if args.compare_maps is not None:
        compare_maps(args.compare_maps)
        return

    pool, labels, members = problem(args.max_events, args.members)
    widths = VECTOR_DEFAULTS["widths"]
    model = MLP(feature_widths=widths[:-1], head_widths=widths[-1:])
    config = TrainConfig(
        batch_size=VECTOR_DEFAULTS["batch_size"],
        max_epochs=VECTOR_DEFAULTS["max_epochs"],
        patience=VECTOR_DEFAULTS["patience"],
    )
    trainer = Trainer(model, config)
    spec = trainer.spec
    pool_device = jnp.asarray(pool)
    members = jax.tree.map(jnp.asarray, members)
    one = jax.tree.map(lambda a: a[0], members)
    keys = jax.random.split(jax.random.key(0), args.members)
    rates = Hparams(jnp.full(args.members, 1e-3, jnp.float32))
    rate = Hparams(jnp.float32(1e-3))
    train_keys = jax.vmap(lambda k: learner.split_key(k)[1])(keys)
    states = trainer.start_members(keys, pool_device, rates, None)
    state = jax.tree.map(lambda a: a[0], states)
    n_train = int(one.train_index.shape[0])
    n_steps = math.ceil(n_train / config.batch_size)
    epoch_gflop = learner.step_flops(spec, state, pool_device, rate) * n_steps / 1e9

    epoch_one = jax.jit(lambda s: learner.epoch(spec, s, train_keys[0], pool_device, one, rate))
    validation = jax.jit(
        lambda s: learner.evaluate_loss(
            spec,
            {"params": s.params, **s.model_state},
            pool_device,
            one.val_index,
            one.val_label,
            one.val_weight,
        )
    )
    batch = (
        pool_device[: config.batch_size],
        jnp.asarray(labels[: config.batch_size]),
        jnp.ones(config.batch_size, jnp.float32),
        jax.random.key(1),
    )
    step = jax.jit(lambda c: learner.train_step(spec, c, batch, rate))
    carry = (state.params, state.model_state, state.opt_state)
    host_steps = 50

    def host_loop() -> None:
        current = carry
        for _ in range(host_steps):
            current, _ = step(current)
        jax.block_until_ready(current)

    blocks = {
        mode: jax.jit(trainer.members_block(mode), static_argnums=5) for mode in ("vmap", "map")
    }

    def members_epoch(mode: str) -> None:
        jax.block_until_ready(blocks[mode](states, train_keys, pool_device, members, rates, 1))

    cases = {
        "1 member, epoch": lambda: jax.block_until_ready(epoch_one(state)),
        "1 member, validation only": lambda: jax.block_until_ready(validation(state)),
        f"1 member, {host_steps} host-dispatched steps": host_loop,
        f"{args.members} members vmap, epoch": functools.partial(members_epoch, "vmap"),
        f"{args.members} members lax.map, epoch": functools.partial(members_epoch, "map"),
    }
    times = timing.interleave(cases, args.rounds)
    print("\n".join(timing.machine_lines()))
    print(f"- load average before/after: {times['_load']['before']} / {times['_load']['after']}")
    print(
        f"- pool {len(pool)} events, {n_train} training and {int(one.val_index.shape[0])} "
        f"validation per member; {n_steps} steps of {config.batch_size} per epoch; "
        f"{epoch_gflop:.1f} training GFLOP per member-epoch; {args.rounds} interleaved rounds\n"
    )
    print("| case | wall s [min-max] | CPU s [min-max] | CPU s per member-epoch | GFLOP / CPU s |")
    print("| --- | --- | --- | --- | --- |")
    for name, samples in times.items():
        if name.startswith("_"):
            continue
        cpu = timing.summary(samples["cpu"])[0]
        if "members" in name:
            per, work = cpu / args.members, epoch_gflop * args.members
        elif "host" in name:
            per, work = cpu * n_steps / host_steps, epoch_gflop * host_steps / n_steps
        elif "validation" in name:
            per, work = None, None
        else:
            per, work = cpu, epoch_gflop
        per_text = "" if per is None else f"{per:.2f}"
        rate_text = "" if work is None else f"{work / max(cpu, 1e-9):.0f}"
        print(
            f"| {name} | {timing.fmt_spread(samples['wall'], digits=2)} | "
            f"{timing.fmt_spread(samples['cpu'], digits=2)} | {per_text} | {rate_text} |"
        )


if __name__ == "__main__":
    main()
