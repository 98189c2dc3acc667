"""The symmetrized test's null at several training lengths: chi2(12), and does it drift?

Trains the same flavour null toys (A and B from one distribution, arXiv:2401.09530) once for
the longest length, with t recorded at every length inside the compiled loop, and prints per
length: mean and variance of t, the fitted dof, KS p-values against chi2(nominal dof) (12 for
1-4-1: observed counts fix the normalisation) and against chi2(fitted dof), the 95% and 99%
quantiles against chi2's with the counts beyond them and their binomial p-values. Config
overrides as for `python -m jaxws experiment=nplm ...` (``method.test=symmetrized`` is set first;
``method.test=nplm`` compares the NPLM null with chi2(13) instead).

Usage:
    python experiments/nplm_symmetrized_null.py --lengths 80 240 --n-toys 200 \\
        method.clip=null method.optimizer=newton data.n_a=500 data.n_b=500
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

from jaxws.cli import compose_config
from jaxws.config import ConfigError, from_section
from jaxws.methods import nplm as nplm_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", required=True)
    parser.add_argument("--n-toys", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (data.*, method.*)")
    args = parser.parse_args()
    overrides = ["experiment=nplm", "method.test=symmetrized", *args.overrides]
    try:
        cfg = compose_config(overrides)
        data = from_section(nplm_method.ExponentialToyConfig, cfg.data, "data")
        settings = from_section(nplm_method.NPLMConfig, cfg.method, "method")
        if any(n < 1 for n in args.lengths) or args.n_toys < 2:
            raise ConfigError("--lengths must be >= 1 and --n-toys >= 2")
    except ConfigError as error:
        print(f"nplm_symmetrized_null: error: {error}", file=sys.stderr)
        sys.exit(2)
    start = time.perf_counter()
    rows = nplm_method.training_length_scan(
        jax.random.key(args.seed), data, settings, tuple(args.lengths), args.n_toys
    )
    sizes = (
        f"N_A = {data.n_a:g}, N_B = {data.n_b:g}"
        if settings.test == "symmetrized"
        else f"N_R = {data.n_reference}, N(R) = {data.n_expected:g}"
    )
    rate = f" lr {settings.learning_rate:g}" if settings.optimizer == "adam" else ""
    print(
        f"{settings.test}, {sizes}, {settings.optimizer}{rate}, clip {settings.clip}, "
        f"{args.n_toys} toys, seed {args.seed}, nominal dof {rows[0]['dof']:g}; "
        f"{time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f}\n"
    )
    dof, variance = f"{rows[0]['dof']:g}", f"{2 * rows[0]['dof']:g}"
    print(
        f"| epochs | mean t | var t (chi2: {variance}) | fitted dof | KS p chi2({dof}) | "
        "KS p chi2(fitted) | q95 (chi2) | n > chi2 q95 (exp.) | binom. p | q99 (chi2) | "
        f"n > chi2 q99 (exp.) | binom. p | follows chi2({dof}) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['epochs']} | {r['mean']:.2f} | {r['variance']:.1f} | {r['fitted_dof']:.1f} | "
            f"{r['ks_pvalue']:.3f} | {r['fitted_ks_pvalue']:.3f} | "
            f"{r['q95_empirical']:.1f} ({r['q95_chi2']:.1f}) | "
            f"{r['n_beyond_q95']} ({r['expected_beyond_q95']:.1f}) | "
            f"{r['binomial_pvalue_q95']:.3f} | {r['q99_empirical']:.1f} ({r['q99_chi2']:.1f}) | "
            f"{r['n_beyond_q99']} ({r['expected_beyond_q99']:.1f}) | "
            f"{r['binomial_pvalue_q99']:.3f} | {'yes' if r['follows_chi2'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
