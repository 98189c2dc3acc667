"""The neural defaults on a small sample: old (5 x 64-64-32, patience 10) vs new (VECTOR_DEFAULTS).

PYTHONPATH=$PWD nice -n 19 python experiments/weak_supervision_small_sample.py [--events 4000]
    [--members 2]

The 4-D Gaussian toy of tests/methods/test_cwola.py (tests/methods/gaussian_mixtures.py):
mixtures with signal fractions 0.35 and 0.1 of S = N(mu, 1), B = N(0, 1), `--events` each;
test AUC on 5000 + 5000 pure events against the Neyman-Pearson optimal ranking mu . x.
"old" passes the former defaults explicitly (`model=MLP()`, batch 256, up to 100 epochs,
patience 10); "new" passes nothing but `n_members`. Prints per configuration the AUC, each
member's epochs and best epoch, seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxws.methods.cwola import weak_supervision
from jaxws.models.mlp import MLP
from jaxws.stats.roc import area_under_curve, roc_curve
from jaxws.train import TrainConfig
from tests.methods.gaussian_mixtures import labelled_test, mixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--members", type=int, default=2)
    args = parser.parse_args()
    old = {"model": MLP(), "config": TrainConfig(batch_size=256, max_epochs=100, patience=10)}
    for name, settings in (("old", old), ("new", {})):
        rng = np.random.default_rng(0)
        mixed_a, mixed_b = mixture(rng, args.events, 0.35), mixture(rng, args.events, 0.10)
        start = time.perf_counter()
        scorer = weak_supervision(mixed_a, mixed_b, n_members=args.members, seed=1, **settings)
        seconds = time.perf_counter() - start
        test = labelled_test(rng)
        auc = area_under_curve(roc_curve(scorer(test.events), test.labels))
        print(
            f"{name}: AUC {auc:.3f} (optimal {test.optimal_auc:.3f}); epochs "
            f"{np.asarray(scorer.history.epochs).tolist()}, best epochs "
            f"{np.asarray(scorer.history.best_epoch).tolist()}; {seconds:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
