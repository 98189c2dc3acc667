"""The neural feature-vector defaults on a small sample, against the earlier ones.

Old (64-64-32, patience 10), the default (`VECTOR_DEFAULTS`: 128-128-128, early stopping with
patience 30) and the default network trained 100 epochs without early stopping (the setting
that reaches the boosted trees at LHCO's tight cuts, docs/cwola.md).

PYTHONPATH=$PWD nice -n 19 python experiments/weak_supervision_small_sample.py [--events 4000]
    [--members 2]

The 4-D Gaussian toy of tests/methods/test_cwola.py (tests/methods/gaussian_mixtures.py):
mixtures with signal fractions 0.35 and 0.1 of S = N(mu, 1), B = N(0, 1), `--events` each;
test AUC on 5000 + 5000 pure events against the Neyman-Pearson optimal ranking mu . x.
"old" passes the first defaults explicitly (`model=MLP()`, batch 256, up to 100 epochs,
patience 10); "default" passes nothing but `n_members`; "no early stopping" passes
`TrainConfig(batch_size=256, max_epochs=100, early_stopping=False)`. Prints per
configuration the AUC, each member's epochs and best epoch, seconds.
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
    no_stop = {"config": TrainConfig(batch_size=256, max_epochs=100, early_stopping=False)}
    for name, settings in (("old", old), ("default", {}), ("no early stopping", no_stop)):
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
