"""Clip calibration for NPLM: which weight clip makes the null follow chi2(n_params)?

Trains the same null toys at every clip value (one compiled program; the clip is a vmapped
leaf) and prints, per clip, KS against chi2(dof), the 95% and 99% quantiles against chi2's with
the binomial p-values of the counts beyond them, and the fitted dof (arXiv:1912.12155 calibrates
the clip this way). Config overrides as for `python -m jaxws experiment=nplm ...`.

Usage:
    python experiments/nplm_clip_calibration.py --clips 3 9 30 --n-toys 200 \\
        data.n_reference=2000 data.n_expected=100 method.learning_rate=0.1 method.epochs=8000
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

from jaxws.cli import compose_config
from jaxws.config import ConfigError, from_section
from jaxws.methods import nplm as nplm_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=float, nargs="+", required=True)
    parser.add_argument("--n-toys", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (data.*, method.*)")
    args = parser.parse_args()
    try:
        cfg = compose_config(["experiment=nplm", *args.overrides])
        data = from_section(nplm_method.ExponentialToyConfig, cfg.data, "data")
        settings = from_section(nplm_method.NPLMConfig, cfg.method, "method")
        if any(c <= 0 for c in args.clips) or args.n_toys < 2:
            raise ConfigError("--clips must be > 0 and --n-toys >= 2")
    except ConfigError as error:
        print(f"nplm_clip_calibration: error: {error}", file=sys.stderr)
        sys.exit(2)
    rows = nplm_method.clip_calibration(
        jax.random.key(args.seed), data, settings, tuple(args.clips), args.n_toys
    )
    print(
        f"N_R = {data.n_reference}, N(R) = {data.n_expected:g}, {settings.optimizer} "
        f"lr {settings.learning_rate:g}, {settings.epochs} epochs, clip scope "
        f"{settings.clip_scope}, {args.n_toys} toys, dof {rows[0]['dof']:g}; load average "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| clip | mean t | var t | fitted dof | KS p | q95 (chi2) | n > chi2 q95 (exp.) | "
        "binom. p | q99 (chi2) | n > chi2 q99 (exp.) | binom. p | follows chi2 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['clip']:g} | {r['mean']:.2f} | {r['variance']:.1f} | {r['fitted_dof']:.1f} | "
            f"{r['ks_pvalue']:.3f} | {r['q95_empirical']:.1f} ({r['q95_chi2']:.1f}) | "
            f"{r['n_beyond_q95']} ({r['expected_beyond_q95']:.1f}) | "
            f"{r['binomial_pvalue_q95']:.3f} | {r['q99_empirical']:.1f} ({r['q99_chi2']:.1f}) | "
            f"{r['n_beyond_q99']} ({r['expected_beyond_q99']:.1f}) | "
            f"{r['binomial_pvalue_q99']:.3f} | {'yes' if r['follows_chi2'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
