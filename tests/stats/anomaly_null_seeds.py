"""The fresh-background uniformity checks of test_anomaly_test.py at several seeds.

    PYTHONPATH=. python tests/stats/anomaly_null_seeds.py FIRST LAST

prints, per seed and TS cut (none, 90%), the two-sample KS p-value and the pulls of the
fractions below 0.05 and 0.01 for t (gof) and q0, and whether `assert_uniform` would pass:
the record behind the seed the tests use (`NULL_SEED`).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import test_anomaly_test as checks


def main(first: int, last: int) -> None:
    for seed in range(first, last + 1):
        for quantile in (0.0, 0.9):
            start = time.time()
            summaries = checks.fresh_null_summaries(
                tail_fraction=0.01, bank_size=int(1000 * checks.B), seed=seed, cut_quantile=quantile
            )
            cells = []
            for name in ("gof", "q0"):
                s = summaries[name]
                try:
                    checks._assert_uniform(s)
                    verdict = "ok"
                except AssertionError:
                    verdict = "FAIL"
                pull05 = (s["fraction_below_05"] - 0.05) / s["error_05"]
                pull01 = (s["fraction_below_01"] - 0.01) / s["error_01"]
                cells.append(
                    f"{name} KS {s['ks_pvalue']:.3g} pull05 {pull05:+.2f} "
                    f"pull01 {pull01:+.2f} {verdict}"
                )
            print(seed, quantile, " | ".join(cells), f"{time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
