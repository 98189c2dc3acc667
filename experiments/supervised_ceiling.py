"""The supervised ceiling of the paper-luminosity study's inputs (issue: paper scale).

CWoLa can at best learn the fully supervised classifier of the same inputs. This script trains
that classifier (pure SR signal against pure SR background, `weak_supervision` with the true
labels as its two samples; 3 members, 20k + 20k events, a fifth for validation) for each input
choice and reports its test AUC (20k + 20k) and the signal it needs for 5 sigma at the study's
luminosity (B = 25k SR background, eq. 2, best of the study's working points eps_b): no
weakly supervised method on these inputs can need less.
    python experiments/supervised_ceiling.py [overrides]     # about 10 min on 2 idle cores
"""

import sys
import time

import numpy as np

from jaxws.cli import compose_config
from jaxws.config import ConfigError
from jaxws.data.events import SIGNAL_REGION
from jaxws.methods.cwola import weak_supervision
from jaxws.methods.injection_study.inputs import event_pool_images
from jaxws.models.registry import build_model
from jaxws.simulate.sources import make_source
from jaxws.stats.roc import auc_of_samples
from jaxws.stats.significance import signal_for_significance
from jaxws.train import TrainConfig

CHOICES = {  # label: overrides of experiment=paper_luminosity (with SIZES)
    "12x12, pT": [],
    "12x12, pT + constituent count": ["data.channels=[pt,count]"],
    "25x25, pT": ["data.resolution=25"],
}
N_TRAIN, N_TEST, N_BACKGROUND_SR = 20_000, 20_000, 25_000
SIZES = ["data.n_background=90000", "data.n_signal=50000"]  # >= 40k SR events of each


def signal_for_5_sigma(signal_scores: np.ndarray, background_scores: np.ndarray, eps_b) -> float:
    """Fewest injected SR signal events for Z = 5 (eq. 2) over the working points eps_b."""
    best = np.inf
    for efficiency in eps_b:
        cut = np.quantile(background_scores, 1 - efficiency)
        eps_s = float(np.mean(signal_scores > cut))
        if eps_s > 0:
            need = signal_for_significance(5.0, N_BACKGROUND_SR * efficiency) / eps_s
            best = min(best, float(need))
    return best


def main() -> None:
    print("| inputs | supervised AUC (3 members) | signal for 5 sigma (best member) |")
    print("|---|---|---|")
    start = time.perf_counter()
    for label, overrides in CHOICES.items():
        try:
            cfg = compose_config(["experiment=paper_luminosity", *SIZES, *overrides, *sys.argv[1:]])
            source = make_source(cfg.data)
        except ConfigError as error:
            print(f"supervised_ceiling: error: {error}", file=sys.stderr)
            sys.exit(2)
        background, signal = source.background(), source.signal(source.config.signal)
        background_sr = np.flatnonzero(np.asarray(background.region) == SIGNAL_REGION)
        signal_sr = np.flatnonzero(np.asarray(signal.region) == SIGNAL_REGION)
        images = event_pool_images(background.take(background_sr[: N_TRAIN + N_TEST]), cfg.data)
        signal_images = event_pool_images(signal.take(signal_sr[: N_TRAIN + N_TEST]), cfg.data)
        scorer = weak_supervision(
            signal_images[:N_TRAIN], images[:N_TRAIN], model=build_model(cfg.model),
            n_members=3, seed=0, learning_rate=2e-3,
            config=TrainConfig(batch_size=256, max_epochs=30, patience=4),
        )  # fmt: skip
        test_signal = np.asarray(scorer.member_scores(signal_images[N_TRAIN:]))
        test_background = np.asarray(scorer.member_scores(images[N_TRAIN:]))
        aucs = [auc_of_samples(s, b) for s, b in zip(test_signal, test_background, strict=True)]
        eps_b = cfg.study.background_efficiencies
        needs = [
            signal_for_5_sigma(s, b, eps_b)
            for s, b in zip(test_signal, test_background, strict=True)
        ]
        print(f"| {label} | {np.mean(aucs):.3f} ({', '.join(f'{a:.3f}' for a in aucs)}) "
              f"| {min(needs):.0f} ({', '.join(f'{n:.0f}' for n in needs)}) |")  # fmt: skip
    plain = signal_for_significance(5.0, N_BACKGROUND_SR)
    print(f"\nno classifier (all SR events, B = {N_BACKGROUND_SR}): {plain:.0f} signal events")
    with open("/proc/loadavg") as file:
        load = " ".join(file.read().split()[:3])
    print(f"{(time.perf_counter() - start) / 60:.1f} min, load average {load}")


if __name__ == "__main__":
    main()
