"""Choose the neural weak-supervision defaults on LHCO validation data, never on sr_test.

nice -n 19 python experiments/lhco_neural_tuning.py --config NAME [--config NAME ...] [--seed 0]
    [--logit-average]

A tuning copy of the idealised setting of `experiments/lhco_trees.py` that leaves `sr_test`
alone: "data" = all 60k rows of `sr_train` (as there) against the first 45k
background rows of `sr_val` (there: all 59,631); the validation set = the remaining background
rows of `sr_val` (14,631, never trained on) against the pure signal of `sr_extrasig_val`
(27,264, never trained on by any idealised row). Features standardised on the training
"data". Each `--config` is "trees" or neural settings (`parse_config`); the table gives
validation max SIC (at least 10 validation background events kept), SIC at eps_B = 1e-3 and
1e-2, AUC and mean epochs per member. With `--logit-average`, each neural configuration gets a
second row from the same fitted members ("[logit mean]"): the ensemble score is the mean
member logit instead of the API's mean member probability (members that diverged left out
either way), so the two ways of averaging are compared without refitting.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments.lhco_trees import evaluate, load_average, machine
from jaxws.data import lhco
from jaxws.methods.cwola import weak_supervision
from jaxws.models.mlp import MLP
from jaxws.stats.roc import roc_curve
from jaxws.train import TrainConfig

N_BACKGROUND = 45_000


def parse_config(text: str) -> dict:
    """`weak_supervision` keyword arguments from "trees" or "key=value,..." (neural).

    Keys: members, batch, epochs, patience, lr, decay (per epoch), widths (hidden widths
    joined by "-", the last one the head), e.g.
    "members=10,batch=256,epochs=100,patience=10,lr=1e-3,decay=1,widths=64-64-32".
    """
    if text == "trees":
        return {"classifier": "trees", "n_members": 10}
    given = dict(item.split("=", 1) for item in text.split(","))
    settings = {**NEURAL_OLD, **given}
    widths = tuple(int(w) for w in settings["widths"].split("-"))
    return {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True, help=parse_config.__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--logit-average",
        action="store_true",
        help="also score each neural configuration by its mean member logit",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}; load average at start: {load_average()}")

    train = lhco.load_split("sr_train")
    val = lhco.load_split("sr_val")
    extra = lhco.load_split("sr_extrasig_val")
    val_background = val.features[val.labels == 0]
    scaler = lhco.Standardizer.fit(train.features)
    data = scaler.transform(train.features)
    background = scaler.transform(val_background[:N_BACKGROUND])
    x_val = scaler.transform(np.concatenate([val_background[N_BACKGROUND:], extra.features]))
    y_val = np.concatenate([np.zeros(len(val_background) - N_BACKGROUND), np.ones(len(extra))])
    print(
        f"data: {len(data)} ({int(train.labels.sum())} signal) vs background "
        f"{len(background)}; validation: {int(y_val.sum())} signal, {int((y_val == 0).sum())} "
        "background"
    )
    rows = []
    for name in args.config:
        start = time.perf_counter()
        scorer = weak_supervision(data, background, seed=args.seed, **parse_config(name))
        scores = {name: scorer(x_val)}
        seconds = time.perf_counter() - start
        if args.logit_average and name != "trees":
            logits = scorer.member_scores(x_val)
            usable = np.array([not reason for reason in scorer.diverged], bool)
            if usable.any():  # as `Scorer.__call__`: all members if every one diverged
                logits = logits[usable]
            scores[f"{name} [logit mean]"] = logits.mean(axis=0)
        epochs = getattr(getattr(scorer, "history", None), "epochs", None)
        epochs = "" if epochs is None else f"{np.mean(np.asarray(epochs)):.0f}"
        for label, score in scores.items():
            max_sic, eps_s, auc = evaluate(score, y_val)
            row = (
                label,
                f"{max_sic:.1f}",
                f"{eps_s:.2f}",
                f"{sic_at(score, y_val, 1e-3):.1f}",
                f"{sic_at(score, y_val, 1e-2):.1f}",
                f"{auc:.4f}",
                epochs,
                f"{seconds:.0f}",
            )
            rows.append(row)
            print(" | ".join(row), flush=True)
    print(f"\nseed {args.seed}; load average at end: {load_average()}\n")
    print(
        "| config | val max SIC | eps_S | SIC(eps_B 1e-3) | SIC(eps_B 1e-2) | val AUC | epochs "
        "| time [s] |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
