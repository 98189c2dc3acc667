"""NPLM with a systematic nuisance: the null of t = tau - Delta and of plain NPLM, against chi2.

Draws null toys of the exponential example at several true values of the nuisances (units of
their sigma; the auxiliary measurements fluctuate around them, arXiv:2111.13633) and prints,
per truth, the null of t = tau - Delta and of plain NPLM's t on the same toys against
chi2(n_params): mean, variance, median, KS p, the 95% and 99% quantiles against chi2's with the
counts beyond them and their binomial p-values, and the mean fitted nuisances. Config
overrides as for `python -m jaxws experiment=nplm ...` (the sigmas come from them).

Usage:
    python experiments/nplm_nuisances.py --truths 0 2 --n-toys 200 data.n_reference=1000 \\
        data.n_expected=50 method.learning_rate=0.1 method.epochs=3000 \\
        method.normalisation_sigma=0.2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from hydra import compose, initialize_config_dir

from jaxws.config import ConfigError, from_section
from jaxws.methods import nplm as nplm_method
from jaxws.methods.nplm.nuisances import nuisance_toy_statistics
from jaxws.schemas import register
from jaxws.stats import nplm

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _row(label: str, t: np.ndarray, dof: int) -> str:
    r = nplm.compare_with_chi2(t, dof)
    return (
        f"| {label} | {r['mean']:.2f} | {r['variance']:.1f} | {np.median(t):.2f} | "
        f"{r['ks_pvalue']:.3g} | {r['q95_empirical']:.1f} ({r['q95_chi2']:.1f}) | "
        f"{r['n_beyond_q95']} ({r['expected_beyond_q95']:.1f}) | {r['binomial_pvalue_q95']:.3g} | "
        f"{r['q99_empirical']:.1f} ({r['q99_chi2']:.1f}) | "
        f"{r['n_beyond_q99']} ({r['expected_beyond_q99']:.1f}) | {r['binomial_pvalue_q99']:.3g} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--truths",
        type=float,
        nargs="+",
        required=True,
        help="true normalisation nuisances (units of sigma)",
    )
    parser.add_argument("--true-scale", type=float, default=0.0)
    parser.add_argument("--n-toys", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (data.*, method.*)")
    args = parser.parse_args()
    register()  # the structured-config schemas, as `python -m jaxws` does
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=nplm", *args.overrides])
    try:
        data = from_section(nplm_method.ExponentialToyConfig, cfg.data, "data")
        settings = from_section(nplm_method.NPLMConfig, cfg.method, "method")
        if not settings.has_nuisances() or args.n_toys < 2:
            raise ConfigError(
                "set method.normalisation_sigma or method.scale_sigma > 0, and --n-toys >= 2"
            )
    except ConfigError as error:
        print(f"nplm_nuisances: error: {error}", file=sys.stderr)
        sys.exit(2)
    dof = nplm.n_parameters(settings.network(1))
    sigmas = settings.nuisance_sigmas()
    print(
        f"N_R = {data.n_reference}, N(R) = {data.n_expected:g}, sigma (normalisation, scale) = "
        f"{sigmas}, Adam lr {settings.learning_rate:g}, {settings.epochs} epochs, clip "
        f"{settings.clip}, {args.n_toys} toys per truth, dof {dof}; load average "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| true nu (N, S) / test | mean t | var t | median t | KS p | q95 (chi2) | "
        "n > chi2 q95 (exp.) | binom. p | q99 (chi2) | n > chi2 q99 (exp.) | binom. p |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for i, truth in enumerate(args.truths):
        start = time.perf_counter()
        truths = (truth, args.true_scale)
        result = nuisance_toy_statistics(
            jax.random.fold_in(jax.random.key(args.seed), i),
            data,
            settings,
            args.n_toys,
            sigmas,
            truths,
            without_nuisances=True,
        )
        print(_row(f"{truths} / with nuisances", result["t"], dof))
        print(_row(f"{truths} / plain NPLM", result["t_without_nuisances"], dof))
        notes.append(
            f"true nu {truths}: mean nu-hat (Delta fit) {np.mean(result['nu_delta'], 0).round(3)}, "
            f"mean A {np.mean(result['auxiliary'], 0).round(3)}, "
            f"{time.perf_counter() - start:.0f} s (load {os.getloadavg()[0]:.1f})"
        )
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
