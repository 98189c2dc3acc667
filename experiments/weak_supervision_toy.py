"""CWoLa on user arrays: two Gaussian mixtures, compared with the Neyman-Pearson optimum.

python experiments/weak_supervision_toy.py [--events 20000] [--seed 0]
"""

import argparse

import numpy as np

from jaxws.methods.cwola import weak_supervision
from jaxws.stats.roc import area_under_curve, roc_curve
from jaxws.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    signal_mean = np.array([1.0, -0.5, 0.0, 0.0])

    def mixture(n: int, fraction: float) -> np.ndarray:
        x = rng.normal(size=(n, len(signal_mean)))
        x[rng.random(n) < fraction] += signal_mean
        return x.astype(np.float32)

    scorer = weak_supervision(
        mixture(args.events, 0.3),
        mixture(args.events, 0.1),
        n_members=5,
        seed=args.seed,
        learning_rate=3e-3,
        config=TrainConfig(batch_size=512, max_epochs=50, patience=5),
    )
    test = np.concatenate(
        [rng.normal(size=(10_000, 4)) + signal_mean, rng.normal(size=(10_000, 4))]
    ).astype(np.float32)
    labels = np.r_[np.ones(10_000), np.zeros(10_000)]
    print(f"CWoLa AUC   {area_under_curve(roc_curve(scorer(test), labels)):.4f}")
    print(f"optimal AUC {area_under_curve(roc_curve(test @ signal_mean, labels)):.4f}")


if __name__ == "__main__":
    main()
