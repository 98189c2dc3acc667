"""Toys per second of the anomaly-aware test, before and after the tabulated per-event terms.

"before": the toy code of commit 5ad9e66 (each toy drew scores from the bank and evaluated
f_0 and the template at every drawn event, by interpolation in the densities' tables, then
fitted q0 by 60 bisection steps), loaded from git into a private package; "after": the current
code (`jaxws.stats.anomaly.toy_setup` tabulates log f_0 and log f_s / f_0 once per bank and
pool event, a toy gathers them; q0 by Newton's method), without and with a TS cut at the 99%
quantile of f_0's reference sample. Scores: a skewed, heavy-tailed law (lognormal core, 3%
Pareto tail) for the background, a shifted gamma for the signal; f_0 from 50 000 reference
scores; the bank holds 20 data sets' worth (at most 5e6 events). All cases run interleaved in
one process (bench/timing.py); the table gives toys per second (wall clock and per process
CPU second) with the machine and the load average.

    JAX_PLATFORMS=cpu python bench/anomaly_toys.py --backgrounds 2000 242530 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import timing

BEFORE = "5ad9e66"
ROOT = Path(__file__).resolve().parent.parent


def load_before(directory: Path):
    """The toys module of commit BEFORE (with its density and likelihood) as a package."""
    package = directory / "anomaly_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("density", "likelihood", "toys"):
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE}:jaxws/stats/anomaly/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for module in ("density", "likelihood", "toys"):
            source = source.replace(f"jaxws.stats.anomaly.{module}", f"anomaly_before.{module}")
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(directory))
    spec = importlib.util.find_spec("anomaly_before.toys")
    assert spec is not None
    import anomaly_before.density as density
    import anomaly_before.toys as toys

    return density, toys


def scores(rng, n):
    import numpy as np

    core = rng.lognormal(0.0, 0.6, n)
    tail = 2.0 + 2.0 * rng.pareto(2.5, n)
    return np.where(rng.uniform(size=n) < 0.03, tail, core).astype("f4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backgrounds", type=float, nargs="+", default=[2000.0, 242530.0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--signal", type=float, default=300.0, help="injected signal s")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxws.stats import anomaly as at

    with tempfile.TemporaryDirectory() as tmp:
        before_density, before_toys = load_before(Path(tmp))
        rng = np.random.default_rng(0)
        reference = scores(rng, 50_000)
        signal = (3.0 + rng.gamma(2.0, 1.0, 4000)).astype("f4")
        rows = []
        for b in args.backgrounds:
            bank = scores(rng, int(min(20 * b, 5e6)))
            n_toys = max(4, round(2e6 / b))  # about 2e6 events per call
            max_events = at.max_toy_events(b, args.signal)
            old_null = before_density.fit_score_density(jnp.asarray(reference), tail_fraction=0.01)
            old_template = before_density.fit_score_density(
                jnp.asarray(signal[:2000]), tail_fraction=0.01
            )
            keys = jax.random.split(jax.random.key(1), n_toys)
            old = jax.jit(before_toys.toy_statistics, static_argnums=(7,))
            bank_j, pool_j = jnp.asarray(bank), jnp.asarray(signal[2000:])

            def before(
                old=old,
                keys=keys,
                bank_j=bank_j,
                pool_j=pool_j,
                b=b,
                m=max_events,
                densities=(old_null, old_template),
            ):
                out = old(
                    keys, bank_j, pool_j, *densities, jnp.float32(b), jnp.float32(args.signal), m
                )
                return jax.block_until_ready(out["gof"])

            null = at.fit_score_density(jnp.asarray(reference), tail_fraction=0.01)
            template = at.fit_score_density(jnp.asarray(signal[:2000]), tail_fraction=0.01)
            cases = {"before (5ad9e66)": before}
            for label, q in (("after, no cut", 0.0), ("after, cut at 99% of f_0", 0.99)):
                cut = at.cut_value(reference, q)
                setup = at.toy_setup(
                    bank,
                    signal[2000:],
                    null,
                    template,
                    b,
                    args.signal,
                    cut,
                    at.tail_fraction_above(reference, cut),
                    at.tail_fraction_above(signal[:2000], cut),
                )
                block_keys = jax.random.split(jax.random.key(2), 1)
                rate = jnp.asarray([args.signal], jnp.float32)

                def after(setup=setup, block_keys=block_keys, rate=rate, n=n_toys):
                    out = at.toy_blocks(setup, block_keys, rate, n)
                    return jax.block_until_ready(out["gof"])

                cases[label] = after
            times = timing.interleave(cases, args.rounds)
            for name, t in times.items():
                if name.startswith("_"):
                    continue
                rows.append(
                    (
                        f"{b:,.0f}",
                        name,
                        n_toys,
                        timing.fmt_spread([n_toys / w for w in t["wall"]], digits=1),
                        timing.fmt_spread([n_toys / c for c in t["cpu"]], digits=1),
                        times["_load"]["before"],
                        times["_load"]["after"],
                    )
                )
    print(*timing.machine_lines(), sep="\n")
    print(f"- injected signal s = {args.signal:g}; bank 20 B (at most 5e6); f_0 from 50 000\n")
    print("| B | code | toys per call | toys/s (wall) | toys per CPU-s | load before | after |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
