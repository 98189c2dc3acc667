"""Choose the neural weak-supervision defaults on LHCO validation data, never on sr_test.

nice -n 19 python experiments/lhco_neural_tuning.py --config NAME [--config NAME ...] [--seed 0]
    [--folds K] [--logit-average]

A tuning copy of the idealised setting of `experiments/lhco_trees.py` that leaves `sr_test`
alone: "data" = all 60k rows of `sr_train` (as there) against background rows of `sr_val`
(there: all 59,631), validated on background rows of `sr_val` never trained on and on the pure
signal of `sr_extrasig_val` (27,264, never trained on by any idealised row). Two protocols:

* `--folds 1` (hold-out, the default): one fit against the first 45k background rows, validated
  on the remaining 14,631 and all the extra signal. Its eps_B floor (10 background events) is
  6.8e-4, above the eps_B of about 3e-4 where the test's max SIC is read.
* `--folds K` (K >= 2, K-fold cross-fitting): the 59,631 background rows and the 27,264 signal
  events are split into K parts by one fixed permutation (`FOLD_SEED`); fit k trains sr_train
  against the other K-1 background parts and scores background part k and signal part k. Every
  validation event is scored once, by a fit that never saw it, and the ROC is pooled over all
  59,631 background events: floor 10 / 59,631 = 1.7e-4. K = 4 trains on 44.7k background rows
  per fit (as the hold-out's 45k) and costs K fits per configuration. Two rows per
  configuration: the raw scores pooled, and "[fold-aligned]" (`fold_aligned`: each fold's
  scores mapped to its own held-out background efficiency before pooling, so the ROC is the
  folds' ROCs averaged at fixed eps_B and differences between the folds' score scales do not
  count against a classifier; the test set is scored by one fit, so this is the row that
  estimates it).

Features standardised on sr_train (the same rows in every fit). Each `--config` is "trees" or
neural settings (`parse_config`); the table gives validation max SIC (at least 10 validation
background events kept), SIC at eps_B = 3e-4, 1e-3 and 1e-2 (blank below the floor), AUC,
mean epochs per member, wall-clock and CPU seconds (all folds). With `--logit-average`, each
neural configuration gets a second row from the same fitted members ("[logit mean]"): the
ensemble score is the mean member logit instead of the API's mean member probability
(members that diverged left out either way), so
the two ways of averaging are compared without refitting.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import time
from pathlib import Path

import numpy as np

from experiments.lhco_trees import evaluate, load_average, machine
from jaxws.data import lhco
from jaxws.files import atomic_write_bytes
from jaxws.methods.cwola import weak_supervision
from jaxws.models.mlp import MLP
from jaxws.stats.roc import roc_curve
from jaxws.train import TrainConfig

N_BACKGROUND = 45_000
#: Seed of the fixed permutation that assigns validation events to folds.
FOLD_SEED = 20_251_207
#: Background efficiencies at which SIC is printed (blank below the protocol's floor).
SIC_AT = (3e-4, 1e-3, 1e-2)
MIN_VAL_BACKGROUND = 10


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fit of a protocol: "data" against "background", scored on (x_val, y_val) (raw)."""

    data: np.ndarray
    background: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def parse_config(text: str) -> dict:
    """`weak_supervision` keyword arguments from "trees" or "key=value,..." (neural).

    Keys: members, batch, epochs, patience, lr, decay (per epoch), widths (hidden widths
    joined by "-", the last one the head), inputs ("raw" or "quantile"; not given: the
    API's default), e.g.
    "members=10,batch=256,epochs=100,patience=10,lr=1e-3,decay=1,widths=64-64-32".
    """
    if text == "trees":
        return {"classifier": "trees", "n_members": 10}
    given = dict(item.split("=", 1) for item in text.split(","))
    settings = {**NEURAL_OLD, **given}
    widths = tuple(int(w) for w in settings["widths"].split("-"))
    inputs = {"inputs": settings["inputs"]} if "inputs" in settings else {}
    return {
        **inputs,
        "n_members": int(settings["members"]),
        "learning_rate": float(settings["lr"]),
        "learning_rate_decay": float(settings["decay"]),
        "model": MLP(feature_widths=widths[:-1], head_widths=widths[-1:]),
        "config": TrainConfig(
            batch_size=int(settings["batch"]),
            max_epochs=int(settings["epochs"]),
            patience=int(settings["patience"]),
        ),
    }


#: The neural default before this tuning (issue 25).
NEURAL_OLD = {
    "members": "5",
    "batch": "256",
    "epochs": "100",
    "patience": "10",
    "lr": "1e-3",
    "decay": "1",
    "widths": "64-64-32",
}


def sic_at(scores: np.ndarray, labels: np.ndarray, background_efficiency: float) -> float:
    """SIC at the first ROC point whose background efficiency reaches `background_efficiency`."""
    curve = roc_curve(scores, labels)
    index = int(np.argmax(curve.background_efficiency >= background_efficiency))
    return float(curve.signal_efficiency[index] / np.sqrt(curve.background_efficiency[index]))


def holdout_sets(train, val_background, extra, n_background: int = N_BACKGROUND) -> list[Fold]:
    """The hold-out protocol: one fit, `n_background` rows trained on, the rest validated on."""
    return [
        Fold(
            data=train.features,
            background=val_background[:n_background],
            x_val=np.concatenate([val_background[n_background:], extra.features]),
            y_val=np.concatenate(
                [np.zeros(len(val_background) - n_background), np.ones(len(extra))]
            ),
        )
    ]


def kfold_sets(train, val_background, extra, folds: int) -> list[Fold]:
    """Cross-fitting: fold k trains sr_train against the other folds' background rows.

    The background rows of sr_val and the pure signal of sr_extrasig_val are each split into
    `folds` parts by one fixed permutation (FOLD_SEED, the same for every configuration and
    training seed, so comparisons are paired); fold k's fit validates on background part k and
    signal part k, so every validation event is scored exactly once, by a fit that never saw it.
    """
    rng = np.random.default_rng(FOLD_SEED)
    background_parts = np.array_split(rng.permutation(len(val_background)), folds)
    signal_parts = np.array_split(rng.permutation(len(extra.features)), folds)
    sets = []
    for k in range(folds):
        others = np.sort(np.concatenate([p for j, p in enumerate(background_parts) if j != k]))
        held = np.sort(background_parts[k])
        signal = extra.features[np.sort(signal_parts[k])]
        sets.append(
            Fold(
                data=train.features,
                background=val_background[others],
                x_val=np.concatenate([val_background[held], signal]),
                y_val=np.concatenate([np.zeros(len(held)), np.ones(len(signal))]),
            )
        )
    return sets


def fold_aligned(parts: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
    """Each fold's scores replaced by minus their background efficiency on that fold.

    An event's new score is -(fraction of its fold's held-out background scoring >= it): a
    threshold on the pooled new scores is the same background efficiency in every fold, so the
    pooled ROC is the folds' ROCs averaged at fixed eps_B ("vertical averaging"), the mean of
    what each fold's classifier achieves on its own. The raw pooled ROC also mixes the folds'
    score scales: a fold whose scores run higher fills the tightest cuts with its background.
    """
    aligned = []
    for score, label in zip(parts, labels, strict=True):
        background = np.sort(score[label == 0])
        at_or_above = len(background) - np.searchsorted(background, score, side="left")
        aligned.append(-at_or_above / len(background))
    return np.concatenate(aligned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True, help=parse_config.__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--folds",
        type=int,
        default=1,
        help="1: the hold-out protocol (45k background trained on, 14,631 validated on); "
        "K >= 2: K-fold cross-fitting over all 59,631 background rows of sr_val",
    )
    parser.add_argument(
        "--logit-average",
        action="store_true",
        help="also score each neural configuration by its mean member logit",
    )
    parser.add_argument(
        "--scores",
        type=Path,
        default=None,
        help="save each configuration's validation scores, labels and folds here (.npz)",
    )
    args = parser.parse_args()
    if args.folds < 1:
        parser.error(f"--folds must be >= 1, got {args.folds}")
    print(f"machine: {machine()}; load average at start: {load_average()}")

    train = lhco.load_split("sr_train")
    val = lhco.load_split("sr_val")
    extra = lhco.load_split("sr_extrasig_val")
    val_background = val.features[val.labels == 0]
    if args.folds == 1:
        sets = holdout_sets(train, val_background, extra)
    else:
        sets = kfold_sets(train, val_background, extra, args.folds)
    # Standardised on the training "data" (sr_train, the same in every fold).
    scaler = lhco.Standardizer.fit(train.features)
    y_val = np.concatenate([fold.y_val for fold in sets])
    n_val_background = int((y_val == 0).sum())
    floor = MIN_VAL_BACKGROUND / n_val_background
    print(
        f"protocol: {'hold-out' if args.folds == 1 else f'{args.folds}-fold cross-fitting'}; "
        f"data: {len(train.features)} ({int(train.labels.sum())} signal) vs background "
        f"{', '.join(str(len(f.background)) for f in sets)}; validation (pooled): "
        f"{int(y_val.sum())} signal, {n_val_background} background (eps_B floor {floor:.2g})"
    )
    rows = []
    for name in args.config:
        start, cpu_start = time.perf_counter(), time.process_time()
        scores: dict[str, list] = {name: []}
        epochs = []
        for fold in sets:
            scorer = weak_supervision(
                scaler.transform(fold.data),
                scaler.transform(fold.background),
                seed=args.seed,
                **parse_config(name),
            )
            x_val = scaler.transform(fold.x_val)
            scores[name].append(scorer(x_val))
            if args.logit_average and name != "trees":
                logits = scorer.member_scores(x_val)
                usable = np.array([not reason for reason in scorer.diverged], bool)
                if usable.any():  # as `Scorer.__call__`: all members if every one diverged
                    logits = logits[usable]
                scores.setdefault(f"{name} [logit mean]", []).append(logits.mean(axis=0))
            fold_epochs = getattr(getattr(scorer, "history", None), "epochs", None)
            if fold_epochs is not None:
                epochs.append(np.asarray(fold_epochs))
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        epochs = f"{np.mean(np.concatenate(epochs)):.0f}" if epochs else ""
        fold_labels = [fold.y_val for fold in sets]
        if args.scores is not None:
            buffer = io.BytesIO()
            np.savez(
                buffer,
                **{label: np.concatenate(parts) for label, parts in scores.items()},
                labels=y_val,
                fold=np.concatenate([np.full(len(y), k) for k, y in enumerate(fold_labels)]),
            )
            safe = "".join(c if c.isalnum() or c in "=-." else "_" for c in name)
            path = args.scores / f"{safe}_seed{args.seed}_folds{args.folds}.npz"
            atomic_write_bytes(path, buffer.getvalue())
        if len(sets) > 1:
            for label in list(scores):
                scores[f"{label} [fold-aligned]"] = [fold_aligned(scores[label], fold_labels)]
        for label, parts in scores.items():
            score = np.concatenate(parts)
            max_sic, eps_s, auc = evaluate(score, y_val)
            row = (
                label,
                f"{max_sic:.1f}",
                f"{eps_s:.2f}",
                *(
                    f"{sic_at(score, y_val, eps_b):.1f}" if eps_b >= floor else ""
                    for eps_b in SIC_AT
                ),
                f"{auc:.4f}",
                epochs,
                f"{seconds:.0f}",
                f"{cpu_seconds:.0f}",
            )
            rows.append(row)
            print(" | ".join(row), flush=True)
    print(f"\nseed {args.seed}; folds {args.folds}; load average at end: {load_average()}\n")
    columns = " | ".join(f"SIC(eps_B {eps_b:g})" for eps_b in SIC_AT)
    print(f"| config | val max SIC | eps_S | {columns} | val AUC | epochs | time [s] | CPU [s] |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in SIC_AT) + " | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
