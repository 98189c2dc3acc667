"""The anomaly-aware test's null with many fresh background-only data sets, without the rest.

Simulates and trains exactly as `python -m jaxws experiment=anomaly` (same keys, so the same
VAE, classifier, f_0 sample, toy bank and template), then runs only the null check
(`jaxws.methods.anomaly.steps.check_null`) on `method.test.n_null_check_sets` fresh data
sets at each R of `method.test.null_check_r`, skipping the sensitivity curves and the R scan.
Prints, per R and statistic, the KS p-value and the fractions of p below 0.05 and 0.01 with
their binomial errors and exact two-sided binomial p-values against 5% and 1%, and saves the
p-values (`--save FILE.npz`). Config overrides as for the CLI.

Usage:
    python experiments/anomaly_null_check.py method.test.n_null_check_sets=1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxws.cli import compose_config
from jaxws.config import ConfigError
from jaxws.methods.anomaly.samples import simulate_samples
from jaxws.methods.anomaly.scoring import train_scorer
from jaxws.methods.anomaly.settings import settings_from_config
from jaxws.methods.anomaly.steps import check_null, score_samples

STATISTICS = {"gof": "t (model-independent)", "q0": "q0 (template)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, default=None, help="write the p-values here (.npz)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (seed, data.*, method.*)")
    args = parser.parse_args()
    try:
        cfg = compose_config(["experiment=anomaly", *args.overrides])
        data, vae_settings, classifier_settings, test = settings_from_config(cfg)
    except ConfigError as error:
        print(f"anomaly_null_check: error: {error}", file=sys.stderr)
        sys.exit(2)
    if test.n_null_check_sets == 0:
        print("anomaly_null_check: error: method.test.n_null_check_sets is 0", file=sys.stderr)
        sys.exit(2)
    key = jax.random.key(int(cfg.seed))
    start = time.perf_counter()
    samples = simulate_samples(jax.random.fold_in(key, 0), data, test.wimp_masses)
    scorer, _ = train_scorer(key, samples, vae_settings, classifier_settings, progress=True)
    score_key = jax.random.fold_in(key, 3)
    scored = score_samples(scorer, samples, score_key)
    calibration = check_null(key, score_key, scorer, scored, data, test, progress=True)
    minutes = (time.perf_counter() - start) / 60
    print(
        f"\nseed {int(cfg.seed)}, B = {test.expected_background:g}, bank "
        f"{scored.bank[0].size} events, f_0 sample {scored.reference[0].size} events, "
        f"{test.n_null_toys} null toys, {test.n_null_check_sets} fresh data sets; "
        f"{minutes:.1f} min, load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| R | statistic | data sets | KS p | fraction p < 0.05 | binom. p | "
        "fraction p < 0.01 | binom. p |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r, entry in calibration.items():
        for name, label in STATISTICS.items():
            s = entry[name]
            print(
                f"| {r:g} | {label} | {int(s['n'])} | {s['ks_pvalue']:.2f} | "
                f"{s['fraction_below_05']:.3f} +- {s['error_05']:.3f} | "
                f"{s['binomial_pvalue_05']:.2f} | "
                f"{s['fraction_below_01']:.3f} +- {s['error_01']:.3f} | "
                f"{s['binomial_pvalue_01']:.2f} |"
            )
    if args.save is not None:
        np.savez(
            args.save,
            **{
                f"p_{name}_r{r:g}": entry[f"p_{name}"]
                for r, entry in calibration.items()
                for name in STATISTICS
            },
        )


if __name__ == "__main__":
    main()
