"""Does averaging a member's best epochs lift the neural CWoLa default at LHCO's tight cuts?

PYTHONPATH=$PWD nice -n 19 python experiments/lhco_epoch_average.py [--seed 0] [--epochs 50]
    [--folds 4] [--widths 128-128-128]

The 4-fold cross-fitted validation of `experiments/lhco_neural_tuning.py` (sr_train against
sr_val background rows, scored on held-out sr_val background and sr_extrasig_val signal;
sr_test untouched), with the members of `weak_supervision`'s neural default built the same
way (same seeds, splits, network, Adam at 1e-3, batch 256) but trained for a fixed `--epochs`
without early stopping, and every member scored on its fold's validation events after every
epoch. From those one training run per fold gives, paired:

* "best epoch (patience P)": each member's lowest inner-validation-loss epoch among those it
  would have run with early stopping at patience P: the API's default (P = 30) when
  `--epochs` covers the stops.
* "top-K epochs": each member's probability averaged over its K lowest-inner-validation-loss
  epochs (the CATHODE classifier's protocol, arXiv:2109.00546), then over members.
* "epochs a-b mean": the probabilities of epochs a to b (1-based) averaged over them and the
  members (no selection: a fixed training length, with the mean of its last ten epochs).

The table: fold-aligned validation max SIC (floor: 10 background events), SIC at eps_B
3e-4 / 1e-3 / 1e-2, AUC; machine and load averages printed with it.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lhco_neural_tuning import SIC_AT, fold_aligned, kfold_sets, sic_at
from experiments.lhco_trees import evaluate, load_average, machine
from jaxws.data import lhco
from jaxws.methods.cwola import member_splits
from jaxws.models.mlp import MLP
from jaxws.train import TrainConfig
from jaxws.train.learner import split_key
from jaxws.train.predict import predict_ensemble
from jaxws.train.state import Hparams
from jaxws.train.trainer import Trainer

N_MEMBERS = 10
VALIDATION_FRACTION = 0.2
LEARNING_RATE = 1e-3


def epoch_scores(
    data: np.ndarray, background: np.ndarray, x_val: np.ndarray, seed: int, epochs: int, widths
) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, members, N) validation probabilities and (members, epochs) inner val losses."""
    model = MLP(feature_widths=widths[:-1], head_widths=widths[-1:])
    config = TrainConfig(batch_size=256, max_epochs=epochs, patience=epochs)
    trainer = Trainer(model, config)
    pool = jnp.asarray(np.concatenate([data, background]), jnp.float32)
    labels = np.concatenate([np.ones(len(data)), np.zeros(len(background))]).astype(np.float32)
    members = jax.tree.map(jnp.asarray, member_splits(labels, N_MEMBERS, seed, VALIDATION_FRACTION))
    keys = jax.random.split(jax.random.key(seed), N_MEMBERS)
    hparams = Hparams(jnp.full(N_MEMBERS, LEARNING_RATE, jnp.float32))
    states = trainer.start_members(keys, pool, hparams, None)
    train_keys = jax.vmap(lambda k: split_key(k)[1])(keys)
    block = jax.jit(trainer.members_block("vmap"), static_argnums=5)
    x_val = jnp.asarray(x_val, jnp.float32)
    probabilities = []
    for _ in range(epochs):
        states = block(states, train_keys, pool, members, hparams, 1)
        variables = {"params": states.params, **states.model_state}
        logits = predict_ensemble(model, variables, x_val, batch_size=8192)
        probabilities.append(np.asarray(jax.nn.sigmoid(logits)))
    return np.stack(probabilities), np.asarray(states.val_loss)


def early_stopped_epoch(val_loss: np.ndarray, patience: int) -> int:
    """The epoch Keras-style early stopping at `patience` keeps (min_delta 0)."""
    best, best_epoch, bad = np.inf, -1, 0
    for epoch, loss in enumerate(val_loss):
        if loss < best:
            best, best_epoch, bad = loss, epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best_epoch


def ensemble_scores(probabilities: np.ndarray, val_loss: np.ndarray) -> dict[str, np.ndarray]:
    """The ensemble scores of one fold under each epoch rule."""
    n_epochs = probabilities.shape[0]
    members = range(probabilities.shape[1])
    out = {}
    for patience in (10, 30):
        chosen = [early_stopped_epoch(val_loss[m], patience) for m in members]
        out[f"best epoch (patience {patience})"] = np.mean(
            [probabilities[e, m] for m, e in zip(members, chosen, strict=True)], axis=0
        )
    for k in (5, 10):
        out[f"top-{k} epochs"] = np.mean(
            [probabilities[np.argsort(val_loss[m])[:k], m].mean(axis=0) for m in members], axis=0
        )
    for first in range(0, n_epochs - 9, 10):
        window = probabilities[first : first + 10].mean(axis=(0, 1))
        out[f"epochs {first + 1}-{first + 10} mean"] = window
    out[f"epoch {n_epochs} only"] = probabilities[-1].mean(axis=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--widths", default="128-128-128")
    args = parser.parse_args()
    widths = tuple(int(w) for w in args.widths.split("-"))
    print(f"machine: {machine()}; load average at start: {load_average()}")
    train = lhco.load_split("sr_train")
    val = lhco.load_split("sr_val")
    extra = lhco.load_split("sr_extrasig_val")
    sets = kfold_sets(train, val.features[val.labels == 0], extra, args.folds)
    scaler = lhco.Standardizer.fit(train.features)
    start, cpu_start = time.perf_counter(), time.process_time()
    per_rule: dict[str, list] = {}
    best_epochs = []
    for fold in sets:
        probabilities, val_loss = epoch_scores(
            scaler.transform(fold.data),
            scaler.transform(fold.background),
            scaler.transform(fold.x_val),
            args.seed,
            args.epochs,
            widths,
        )
        best_epochs += [early_stopped_epoch(loss, 30) for loss in val_loss]
        for rule, score in ensemble_scores(probabilities, val_loss).items():
            per_rule.setdefault(rule, []).append(score)
        print(f"fold done: {time.perf_counter() - start:.0f} s", flush=True)
    labels = [fold.y_val for fold in sets]
    y_val = np.concatenate(labels)
    floor = 10 / int((y_val == 0).sum())
    print(
        f"\nseed {args.seed}; widths {args.widths}; {args.epochs} epochs; {args.folds} folds; "
        f"best epochs (patience 30) {sorted(best_epochs)}; {time.perf_counter() - start:.0f} s, "
        f"{time.process_time() - cpu_start:.0f} CPU s; load average at end: {load_average()}\n"
    )
    columns = " | ".join(f"SIC(eps_B {eps_b:g})" for eps_b in SIC_AT)
    print(f"| rule [fold-aligned] | val max SIC | eps_S | {columns} | val AUC |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in SIC_AT) + " | --- |")
    for rule, parts in per_rule.items():
        score = fold_aligned(parts, labels)
        max_sic, eps_s, auc = evaluate(score, y_val)
        sics = (f"{sic_at(score, y_val, e):.1f}" if e >= floor else "" for e in SIC_AT)
        print(f"| {rule} | {max_sic:.1f} | {eps_s:.2f} | {' | '.join(sics)} | {auc:.4f} |")


if __name__ == "__main__":
    main()
