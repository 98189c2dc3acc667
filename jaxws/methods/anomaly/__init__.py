"""Anomaly-aware search in a toy TPC: a background-only beta-VAE plus an ER/NR classifier.

Follows Scaffidi and Trotta (DARWIN, arXiv:2410.00755):
1. simulate electron-recoil background and nuclear-recoil events (`samples`, with
   `jaxws.simulate.tpc`);
2. train a beta-VAE on background only and an MLP classifier ER vs NR (flat NR spectrum, so
   the classifier does not know the WIMP mass), both with `jaxws.train.fit` (`scoring`);
3. score events with TS = -ELBO + R H_B, H_B = -log(1 - p(NR | x)) (`steps`);
4. test in TS: f_0 from held-out background, the seed's model-independent unbinned
   likelihood test and the model-dependent q0 against a signal template, p-values from toys
   (`jaxws.stats.anomaly`); the null checked on fresh background-only data (`calibration`);
5. outputs: latent view, TS distributions, median sensitivity versus signal rate, and the scan
   of the median p-value versus R for three WIMP-mass benchmarks (`jaxws.plotting.anomaly`).

`run` (in `pipeline`) reads as these steps. Config: `data` (`jaxws.simulate.tpc.TPCConfig`) and
`method` with subsections `vae`, `classifier` and `test` (`settings`; see docs/anomaly.md).
"""

from jaxws.methods.anomaly.calibration import null_calibration
from jaxws.methods.anomaly.pipeline import run
from jaxws.methods.anomaly.samples import (
    Standardiser,
    features_of,
    fresh_background_sets,
    simulate_samples,
)
from jaxws.methods.anomaly.scoring import Scorer, train_classifier, train_scorer, train_vae
from jaxws.methods.anomaly.settings import (
    AnomalyTestConfig,
    ClassifierConfig,
    VAEConfig,
    settings_from_config,
    validate,
)

__all__ = [
    "AnomalyTestConfig",
    "ClassifierConfig",
    "Scorer",
    "Standardiser",
    "VAEConfig",
    "features_of",
    "fresh_background_sets",
    "null_calibration",
    "run",
    "settings_from_config",
    "simulate_samples",
    "train_classifier",
    "train_scorer",
    "train_vae",
    "validate",
]
