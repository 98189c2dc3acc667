"""Margins of the statistical assertions, in standard errors (issue 21, docs/testing.md).

Each statistical assertion calls `record` (or `record_p` for a p-value) right before it
asserts. With the environment variable JAXWS_MARGINS set to a file, one JSON line per call is
appended to it; without it nothing happens. `tests/margins_table.py` runs the tests marked
`statistical` in two code generations and prints the margins side by side.

The margin is the distance from the measured value to the asserted threshold, in standard
errors of the measured value, positive when the assertion holds:
`(value - threshold) / se` for `value > threshold`, `(threshold - value) / se` for `value <
threshold`. For a p-value the value is its one-sided Gaussian equivalent z = Phi^-1(1 - p),
whose standard error under the null is 1: `p > alpha` has margin z(alpha) - z(p) (p = 0.5
gives 2.33 SE at alpha = 0.01), and a power check `p < alpha` has margin z(p) - z(alpha).

`kind` says what the standard error is and what moves the value on another machine:
SAMPLING (random draws through closed-form transforms: another CPU changes last digits, far
less than one SE), FIT (a converged fit of sampled data: likewise), TRAINED (a trained network:
another CPU gives another network, so the value moves by about its seed-to-seed spread, which
is what the SE measures there).
"""

from __future__ import annotations

import json
import math
import os

from scipy import special, stats

SAMPLING = "sampling"
FIT = "fit"
TRAINED = "trained"
KINDS = (SAMPLING, FIT, TRAINED)
_P_FLOOR = 1e-300  # z(1e-300) = 37: a p-value of 0 is reported as that bound


def record(
    quantity: str,
    value: float,
    threshold: float,
    se: float,
    kind: str,
    above: bool = True,
    se_from: str = "",
    **shown: float,
) -> None:
    """Append one assertion's margin to $JAXWS_MARGINS (nothing when it is unset).

    Args:
      quantity: what is asserted, short (the table's row label; a loop uses one label and the
        table keeps its smallest margin).
      value: the measured value.
      threshold: the value it must not cross.
      se: its standard error (the seed-to-seed spread for TRAINED).
      kind: SAMPLING, FIT or TRAINED.
      above: True when the assertion is `value > threshold`, False for `value < threshold`.
      se_from: where the standard error comes from when it is not the obvious one (for
        TRAINED: "seeds" when measured over training seeds, "test sample" when only the
        evaluation sample's error is known).
      **shown: numbers the table shows instead of `value` (a p-value and its alpha).
    """
    path = os.environ.get("JAXWS_MARGINS")
    if not path:
        return
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    value, threshold, se = float(value), float(threshold), float(se)
    margin = (value - threshold if above else threshold - value) / se
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    line = {
        "test": test,
        "quantity": quantity,
        "value": value,
        "threshold": threshold,
        "se": se,
        "margin_se": margin if math.isfinite(margin) else None,
        "kind": kind,
        "above": above,
        "se_from": se_from,
        **{name: float(number) for name, number in shown.items()},
    }
    with open(path, "a") as stream:
        stream.write(json.dumps(line) + "\n")


def record_p(
    quantity: str, p: float, alpha: float, kind: str, power: bool = False, se_from: str = ""
) -> None:
    """`record` for a p-value assertion `p > alpha` (or `p < alpha` when `power`).

    The value recorded is the p-value; the margin is on its Gaussian equivalent z (module
    docstring).
    """
    if not os.environ.get("JAXWS_MARGINS"):
        return
    z = stats.norm.isf(max(float(p), _P_FLOOR))
    z_alpha = stats.norm.isf(alpha)
    record(quantity, z, z_alpha, 1.0, kind, above=power, se_from=se_from, p=p, alpha=alpha)


def quantile_se(q: float, n: int, density: float) -> float:
    """Standard error of an empirical q-quantile of n draws: sqrt(q (1 - q) / n) / density,
    with `density` the distribution's density at that quantile."""
    return math.sqrt(q * (1 - q) / n) / density


def median_se(values) -> float:
    """Standard error of a sample median, normal approximation: sqrt(pi / 2) sd / sqrt(n)."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return math.sqrt(math.pi / 2) * sd / math.sqrt(n)


def chi2_dof_se(dof: float, n: int) -> float:
    """Standard error of the maximum-likelihood dof of a chi2 fitted to n draws (Fisher
    information psi'(k / 2) / 4 per draw)."""
    return 2.0 / math.sqrt(n * float(special.polygamma(1, dof / 2)))


def auc_se(auc: float, n_signal: int, n_background: int) -> float:
    """Standard error of an ROC AUC from its evaluation sample (Hanley and McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_signal - 1) * (q1 - auc**2) + (n_background - 1) * (q2 - auc**2)
    ) / (n_signal * n_background)
    return math.sqrt(variance)


def member_auc_se(member_scores, labels, same_events: bool = False) -> float:
    """Standard error of a trained ensemble's AUC over training seeds.

    The spread (standard deviation) of the members' AUCs, each member trained from its own
    seed, divided by sqrt(members) for the ensemble's mean score (an approximation: averaging
    scores is not averaging AUCs). Unless `same_events` (the AUC is compared with another
    score's on the same evaluation events, whose sampling error then largely cancels), the
    evaluation sample's error is added in quadrature.
    """
    labels = [bool(label) for label in labels]
    n_signal = sum(labels)
    n_background = len(labels) - n_signal
    aucs = []
    for scores in member_scores:
        ranks = stats.rankdata(scores)
        signal_rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label)
        aucs.append((signal_rank_sum - n_signal * (n_signal + 1) / 2) / (n_signal * n_background))
    mean = sum(aucs) / len(aucs)
    spread = math.sqrt(sum((a - mean) ** 2 for a in aucs) / (len(aucs) - 1))
    seeds = spread / math.sqrt(len(aucs))
    return seeds if same_events else math.hypot(seeds, auc_se(mean, n_signal, n_background))
