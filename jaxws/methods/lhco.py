"""Supervised and idealised weakly supervised classifiers on the LHC Olympics R&D features.

A check of the training engine on real, independently produced collider data (Pythia 8 +
Delphes, W' -> X Y -> 4 quarks at 3.5 TeV), following the CATHODE benchmark (Hallin et al.,
arXiv:2109.00546) on its four signal-region features (mj1, delta mj, tau21_1, tau21_2):

- supervised: truth signal (sr_train signal + the extra-signal files) against truth background;
- idealised anomaly detection (idealised CWoLa): the "data" sample sr_train (S/B ~ 0.66%)
  against a background-only sample built with the labels (the background of sr_val, the only
  other signal-region file; CATHODE's idealised detector had a larger simulated one).

Both are ensembles of MLPs trained at once with `jaxws.train.fit_ensemble` on one pool (the
members of both tasks are padded to the same size with weight 0); the ensemble score is the
mean member probability. Evaluation on sr_test (20k signal, 40k background): the significance
improvement SIC = eps_S / sqrt(eps_B) against eps_S, restricted to eps_B above
`min_test_background` test events so that a handful of background events do not dominate,
plotted with the published peak values (supervised ~17, idealised AD ~14, CWoLa with
sidebands ~10; no sideband data are available here, so CWoLa is reference only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxws import plotting
from jaxws.config import check, from_section
from jaxws.data import lhco
from jaxws.models.mlp import MLP
from jaxws.stats.roc import area_under_curve, roc_curve, significance_improvement
from jaxws.train import Hparams, MemberData, TrainConfig, fit_ensemble, predict_ensemble

if TYPE_CHECKING:
    from jaxws.track import Tracker

#: Peak SIC read off the CATHODE paper's figure for these features (S/B ~ 0.6%).
PUBLISHED_MAX_SIC = {"supervised": 17.0, "idealised AD": 14.0, "CWoLa (sidebands)": 10.0}
TASKS = ("supervised", "idealised")


@dataclasses.dataclass(frozen=True)
class LHCOConfig:
    """Section `method` for `method=lhco`."""

    name: str = "lhco"
    data_dir: str | None = None
    features: tuple[str, ...] = lhco.FEATURES
    members: int = 5
    feature_widths: tuple[int, ...] = (64, 64)
    head_widths: tuple[int, ...] = (64,)
    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10
    validation_fraction: float = 0.2
    min_test_background: int = 10
    max_events_per_file: int | None = None

    def __post_init__(self):
        check(self.members >= 1, f"method.members must be >= 1, got {self.members}")
        check(self.learning_rate > 0, f"method.learning_rate must be > 0, got {self.learning_rate}")
        check(
            0 < self.validation_fraction < 1,
            f"method.validation_fraction must be in (0, 1), got {self.validation_fraction}",
        )
        check(self.min_test_background >= 1, "method.min_test_background must be >= 1")
        unknown = [f for f in self.features if f not in lhco.COLUMNS[:-1]]
        check(not unknown, f"method.features: unknown {unknown}; choose from {lhco.COLUMNS[:-1]}")


def _split(rng: np.random.Generator, index: np.ndarray, fraction: float):
    index = rng.permutation(index)
    n_val = max(1, round(fraction * len(index)))
    return index[n_val:], index[:n_val]


def _member(
    positive_train: np.ndarray,
    negative_train: np.ndarray,
    positive_val: np.ndarray,
    negative_val: np.ndarray,
    size_train: int,
    size_val: int,
) -> MemberData:
    """Indices and labels (1 positive, 0 negative), padded with weight 0 to common sizes."""

    def side(pos: np.ndarray, neg: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
        index = np.concatenate([pos, neg]).astype(np.int32)
        label = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.float32)
        weight = np.ones(len(index), np.float32)
        pad = size - len(index)
        return (
            np.pad(index, (0, pad)),
            np.pad(label, (0, pad)),
            np.pad(weight, (0, pad)),
        )

    ti, tl, tw = side(positive_train, negative_train, size_train)
    vi, vl, vw = side(positive_val, negative_val, size_val)
    return MemberData(
        train_index=ti, train_label=tl, train_weight=tw, val_index=vi, val_label=vl, val_weight=vw
    )


def build_tasks(
    splits: Mapping[str, lhco.LHCOSplit], settings: LHCOConfig, seed: int
) -> tuple[np.ndarray, dict[str, MemberData], lhco.Standardizer]:
    """Pool (standardised features) and the two tasks' index sets.

    Returns:
        (pool, {task: MemberData}, standardizer); the pool stacks sr_train, sr_val,
        sr_extrasig_train, sr_extrasig_val in this order.
    """
    order = ("sr_train", "sr_val", "sr_extrasig_train", "sr_extrasig_val")
    offsets = np.cumsum([0] + [len(splits[s]) for s in order])
    rows = {s: np.arange(offsets[i], offsets[i + 1]) for i, s in enumerate(order)}
    raw = np.concatenate([splits[s].features for s in order])
    labels = np.concatenate([splits[s].labels for s in order])
    standardizer = lhco.Standardizer.fit(splits["sr_train"].features)  # unlabelled data only
    pool = standardizer.transform(raw)
    rng = np.random.default_rng(seed)

    def sig(split: str) -> np.ndarray:
        return rows[split][labels[rows[split]] == 1]

    def bkg(split: str) -> np.ndarray:
        return rows[split][labels[rows[split]] == 0]

    frac = settings.validation_fraction
    # supervised: truth labels, validation from the *_val files
    supervised = (
        np.concatenate([sig("sr_train"), rows["sr_extrasig_train"]]),
        bkg("sr_train"),
        np.concatenate([sig("sr_val"), rows["sr_extrasig_val"]]),
        bkg("sr_val"),
    )
    # idealised AD: data (sr_train, signal included) vs background-only (sr_val background)
    data_train, data_val = _split(rng, rows["sr_train"], frac)
    bkg_train, bkg_val = _split(rng, bkg("sr_val"), frac)
    idealised = (data_train, bkg_train, data_val, bkg_val)
    size_train = max(len(supervised[0]) + len(supervised[1]), len(data_train) + len(bkg_train))
    size_val = max(len(supervised[2]) + len(supervised[3]), len(data_val) + len(bkg_val))
    members = {
        "supervised": _member(*supervised, size_train, size_val),
        "idealised": _member(*idealised, size_train, size_val),
    }
    return pool, members, standardizer


def _load(settings: LHCOConfig) -> dict[str, lhco.LHCOSplit]:
    splits = lhco.load_lhco(settings.data_dir, features=settings.features)
    n = settings.max_events_per_file
    if n is None:
        return splits
    out = {}
    for name, split in splits.items():
        if name == "sr_test":  # keep both classes when shrinking the test set
            keep = np.concatenate([np.flatnonzero(split.labels == c)[: n // 2] for c in (0, 1)])
        else:
            keep = np.arange(min(n, len(split)))
        out[name] = lhco.LHCOSplit(
            split.features[keep], split.labels[keep], split.mjj[keep], split.names
        )
    return out


def run(cfg: Mapping[str, Any], key: jax.Array, run_dir: str | Path, tracker: Tracker) -> dict:
    """Train both ensembles, evaluate SIC on sr_test, save the figure and curves.

    Args:
      cfg: the resolved config; only the `method` section is used.
      key: typed PRNG key: fold_in 0 for the data split, 1 for the ensemble.
      run_dir: the run directory (outputs go through `tracker`).
      tracker: `jaxws.track.Tracker`-like.

    Returns:
      Flat dict of metrics: per task the ensemble's max SIC, AUC, and the members' max SIC.
    """
    del run_dir
    settings = from_section(LHCOConfig, cfg["method"], "method")
    splits = _load(settings)
    split_seed = int(jax.random.randint(jax.random.fold_in(key, 0), (), 0, 2**31 - 1))
    pool, members, standardizer = build_tasks(splits, settings, split_seed)

    e = settings.members
    stacked = jax.tree.map(
        lambda a, b: np.stack([a] * e + [b] * e), members["supervised"], members["idealised"]
    )
    keys = jax.random.split(jax.random.fold_in(key, 1), 2 * e)
    model = MLP(feature_widths=settings.feature_widths, head_widths=settings.head_widths)
    config = TrainConfig(
        batch_size=settings.batch_size, max_epochs=settings.max_epochs, patience=settings.patience
    )
    hparams = Hparams(learning_rate=np.full(2 * e, settings.learning_rate, np.float32))
    result = fit_ensemble(keys, model, pool, stacked, hparams, config, progress="lhco")

    test = splits["sr_test"]
    x_test = standardizer.transform(test.features)
    logits = np.asarray(predict_ensemble(model, result.variables, x_test))
    probs = 1.0 / (1.0 + np.exp(-logits))
    n_test_bkg = int((test.labels == 0).sum())
    min_eps_b = settings.min_test_background / n_test_bkg

    metrics: dict[str, Any] = {"n_test_background": n_test_bkg, "min_background_eff": min_eps_b}
    curves, saved = {}, {}
    for t, task in enumerate(TASKS):
        member_probs = probs[t * e : (t + 1) * e]
        curve = roc_curve(member_probs.mean(0), test.labels)
        sic = significance_improvement(curve, min_background_efficiency=min_eps_b)
        member_max = [
            float(
                significance_improvement(
                    roc_curve(p, test.labels), min_background_efficiency=min_eps_b
                ).sic.max()
            )
            for p in member_probs
        ]
        best = int(np.argmax(sic.sic))
        metrics.update(
            {
                f"{task}/max_sic": float(sic.sic[best]),
                f"{task}/eps_s_at_max_sic": float(sic.signal_efficiency[best]),
                f"{task}/auc": float(area_under_curve(curve)),
                f"{task}/member_max_sic_mean": float(np.mean(member_max)),
                f"{task}/member_max_sic_std": float(np.std(member_max)),
                f"{task}/epochs_mean": float(np.mean(result.epochs[t * e : (t + 1) * e])),
            }
        )
        label = "supervised" if task == "supervised" else "idealised AD"
        curves[f"{label} (ensemble of {e})"] = sic
        thin = np.unique(np.linspace(0, len(sic.sic) - 1, 400).astype(int))
        saved[task] = {
            "signal_efficiency": sic.signal_efficiency[thin].tolist(),
            "background_efficiency": sic.background_efficiency[thin].tolist(),
            "sic": sic.sic[thin].tolist(),
        }
    # The published peaks in the colour of the matching curve, named on their lines.
    published = {f"{label}, CATHODE paper peak": v for label, v in PUBLISHED_MAX_SIC.items()}
    ours = list(curves)  # supervised, idealised AD: the same order as the published peaks
    colours = dict(zip(published, [*ours[:2], "grey"], strict=True))
    fig = plotting.sic_figure(None, curves, references=published, reference_colors=colours)
    ax = fig.axes[0]
    ax.set_ylim(0, 1.25 * max(PUBLISHED_MAX_SIC.values()))
    ax.set_title("LHCO R&D signal region, 4 features, test on sr_test", fontsize="small")
    tracker.save_figure("lhco_sic", fig)
    tracker.save_json("lhco_sic_curves", {"curves": saved, "published_max_sic": PUBLISHED_MAX_SIC})
    tracker.log_metrics(metrics)
    return metrics
