"""CWoLa pseudo-experiments (arXiv:2312.06152, sec. 3) as one ensemble of index sets.

A pseudo-experiment is one "data set" at a fixed luminosity:
- background in the signal region (SR): `n_background_sr` events; in the sidebands (SB): the
  same luminosity, i.e. `n_background_sr * B_SB / B_SR`, with the SB/SR ratio measured on the
  background sample;
- signal injected in the SR by amount (`injection` events); its SB share follows the signal's
  own mjj distribution, `injection * S_SB / S_SR`, measured on the signal sample;
- CWoLa labels: SR = 1, SB = 0 (truth labels are never used for training);
- a random `validation_fraction` of each pseudo-experiment is held out for early stopping;
- separate pure-signal and pure-background SR test sets (reserved first, never trained on),
  shared by all pseudo-experiments, give the ROC and efficiencies.

Each pseudo-experiment draws new events from the sample without replacement (within the
experiment); different experiments overlap as bootstrap replicas of a finite sample do.
Counts are fixed, not Poisson-fluctuated, as in the paper. All (injection, experiment) pairs
become members of one ensemble; ragged sizes are padded with weight 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxws.config import ConfigError, check
from jaxws.data.events import SIDEBAND, SIGNAL_REGION, JetEvents
from jaxws.data.members import MemberData


@dataclasses.dataclass(frozen=True)
class StudyDesign:
    """The pseudo-experiment design.

    Defaults: conf/study/cpu.yaml (pinned by tests/test_config_schemas.py); the paper's
    numbers are conf/study/paper.yaml.

    Attributes:
      n_background_sr: SR background events at the study luminosity (training + validation);
        the paper uses 25k.
      injections: SR signal counts to inject, one study point each (0 = no-signal control).
      n_pseudo_experiments: pseudo-experiments per injection (paper: 10).
      validation_fraction: held out for early stopping (paper: a fifth).
      n_test_signal, n_test_background: pure SR test sets (paper: 20k each).
      balance_classes: weight SR and SB to equal total weight in each pseudo-experiment.
      reserve_background_sr: SR background events set aside after the test set and never drawn
        by a pseudo-experiment (0 = none): where a method's source sample must come from the
        same finite sample (Pythia shards), this makes it disjoint from the study by design.
    """

    n_background_sr: int = 1_000
    injections: tuple[int, ...] = (0, 40, 75, 150, 300, 600)
    n_pseudo_experiments: int = 5
    validation_fraction: float = 0.2
    n_test_signal: int = 2_000
    n_test_background: int = 4_000
    balance_classes: bool = False
    reserve_background_sr: int = 0

    def __post_init__(self):
        check(
            self.n_background_sr >= 10,
            f"study.n_background_sr must be >= 10, got {self.n_background_sr}",
        )
        check(len(self.injections) >= 1, "study.injections must list at least one amount")
        check(
            all(i >= 0 for i in self.injections),
            f"study.injections must be >= 0, got {list(self.injections)}",
        )
        check(
            self.n_pseudo_experiments >= 1,
            f"study.n_pseudo_experiments must be >= 1, got {self.n_pseudo_experiments}",
        )
        check(
            0 < self.validation_fraction < 1,
            f"study.validation_fraction must be in (0, 1), got {self.validation_fraction}",
        )
        check(
            self.n_test_signal >= 1 and self.n_test_background >= 1,
            "study.n_test_signal and study.n_test_background must be >= 1",
        )
        check(
            self.reserve_background_sr >= 0,
            f"study.reserve_background_sr must be >= 0, got {self.reserve_background_sr}",
        )


@dataclasses.dataclass(frozen=True)
class PseudoExperiments:
    """Index sets into the event pool [background; signal] (see `pool_events`).

    Attributes:
      members: `MemberData` with leading axis E = len(injections) * n_pseudo_experiments.
      injection: (E,) SR signal count of each member.
      experiment: (E,) pseudo-experiment number within its injection.
      n_background_sr, n_background_sb: background counts (same for every member).
      n_signal_sb: (E,) injected SB signal counts.
      test_index, test_label: pure SR test events (pool indices) and their truth labels.
    """

    members: MemberData
    injection: np.ndarray
    experiment: np.ndarray
    n_background_sr: int
    n_background_sb: int
    n_signal_sb: np.ndarray
    test_index: np.ndarray
    test_label: np.ndarray


def pool_events(background: JetEvents, signal: JetEvents) -> JetEvents:
    """The event pool the indices refer to: background first, then signal."""
    return JetEvents.concatenate([background, signal])


def _region_indices(events: JetEvents, offset: int) -> tuple[np.ndarray, np.ndarray]:
    region = np.asarray(events.region)
    return (
        np.flatnonzero(region == SIGNAL_REGION) + offset,
        np.flatnonzero(region == SIDEBAND) + offset,
    )


def build_pseudo_experiments(
    seed: int, background: JetEvents, signal: JetEvents, design: StudyDesign
) -> PseudoExperiments:
    """Draw the study's pseudo-experiments (see module docstring).

    Args:
      seed: integer seed of the numpy generator used for the draws (host-side sampling).
      background: background events with SR/SB regions.
      signal: events of the target signal model with SR/SB regions.
      design: `StudyDesign`.

    Returns:
      `PseudoExperiments` with indices into `pool_events(background, signal)`.
    """
    rng = np.random.default_rng(seed)
    bkg_sr, bkg_sb = _region_indices(background, 0)
    sig_sr, sig_sb = _region_indices(signal, len(background))
    if len(bkg_sr) == 0 or len(sig_sr) == 0:
        raise ConfigError(
            f"need SR events in both samples: background has {len(bkg_sr)}, signal {len(sig_sr)}"
        )
    background_ratio = len(bkg_sb) / len(bkg_sr)
    signal_ratio = len(sig_sb) / len(sig_sr)
    bkg_sr, sig_sr = rng.permutation(bkg_sr), rng.permutation(sig_sr)
    test_background, bkg_sr = bkg_sr[: design.n_test_background], bkg_sr[design.n_test_background :]
    test_signal, sig_sr = sig_sr[: design.n_test_signal], sig_sr[design.n_test_signal :]
    bkg_sr = bkg_sr[design.reserve_background_sr :]  # set aside: never drawn (see StudyDesign)
    n_bkg_sb = round(design.n_background_sr * background_ratio)
    injections = np.asarray(design.injections, np.int64)
    n_sig_sb = np.rint(injections * signal_ratio).astype(np.int64)
    shortfalls = [
        (what, need, have)
        for what, need, have in (
            (
                "SR background (test + reserve + training)",
                design.n_test_background + design.reserve_background_sr + design.n_background_sr,
                design.n_test_background + design.reserve_background_sr + len(bkg_sr),
            ),
            ("SB background", n_bkg_sb, len(bkg_sb)),
            (
                "SR signal (test + largest injection)",
                design.n_test_signal + int(injections.max()),
                design.n_test_signal + len(sig_sr),
            ),
            ("SB signal for the largest injection", int(n_sig_sb.max()), len(sig_sb)),
        )
        if need > have
    ]
    if shortfalls:
        details = "; ".join(f"{w}: need {n}, have {h}" for w, n, h in shortfalls)
        raise ConfigError(f"not enough events for this study design ({details})")

    rows, injection_of, experiment_of, sig_sb_of = [], [], [], []
    for injection, n_sb in zip(injections, n_sig_sb, strict=True):
        for experiment in range(design.n_pseudo_experiments):
            sr = np.concatenate(
                [
                    rng.choice(bkg_sr, design.n_background_sr, replace=False),
                    rng.choice(sig_sr, injection, replace=False),
                ]
            )
            sb = np.concatenate(
                [
                    rng.choice(bkg_sb, n_bkg_sb, replace=False),
                    rng.choice(sig_sb, n_sb, replace=False),
                ]
            )
            index = np.concatenate([sr, sb])
            label = np.concatenate([np.ones(len(sr)), np.zeros(len(sb))]).astype(np.float32)
            weight = np.ones(len(index), np.float32)
            if design.balance_classes:
                weight = np.where(
                    label == 1, len(index) / (2 * len(sr)), len(index) / (2 * len(sb))
                ).astype(np.float32)
            order = rng.permutation(len(index))
            n_val = max(1, round(design.validation_fraction * len(index)))
            val, train = order[:n_val], order[n_val:]
            rows.append(
                (index[train], label[train], weight[train], index[val], label[val], weight[val])
            )
            injection_of.append(injection)
            experiment_of.append(experiment)
            sig_sb_of.append(n_sb)

    def stack(column: int, dtype: type[np.generic]) -> np.ndarray:
        width = max(len(r[column]) for r in rows)
        return np.stack(
            [np.pad(np.asarray(r[column], dtype), (0, width - len(r[column]))) for r in rows]
        )

    members = MemberData(
        train_index=stack(0, np.int32),
        train_label=stack(1, np.float32),
        train_weight=stack(2, np.float32),
        val_index=stack(3, np.int32),
        val_label=stack(4, np.float32),
        val_weight=stack(5, np.float32),
    )
    test_index = np.concatenate([test_signal, test_background]).astype(np.int32)
    test_label = np.concatenate([np.ones(len(test_signal)), np.zeros(len(test_background))])
    return PseudoExperiments(
        members=members,
        injection=np.asarray(injection_of),
        experiment=np.asarray(experiment_of),
        n_background_sr=design.n_background_sr,
        n_background_sb=n_bkg_sb,
        n_signal_sb=np.asarray(sig_sb_of),
        test_index=test_index,
        test_label=test_label.astype(np.float32),
    )
