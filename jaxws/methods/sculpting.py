"""The mjj sculpting check of a CWoLa study: does a cut on the classifier bend the background?

CWoLa estimates the signal-region background from the sidebands. That holds only if the
classifier's background efficiency is the same in the signal region (SR) and the sidebands
(SB), i.e. if a cut leaves the background mjj spectrum's shape unchanged. The check uses the
classifiers trained without signal (injection 0): for each, the cut that keeps a fraction
eps of the SR background is applied to all background events, and the check reports
  * the SB efficiency and its pull (eps_SB - eps_SR) / sigma, sigma the binomial error of the
    difference: |pull| > 3 flags sculpting;
  * the background efficiency in bins of mjj (flat means no sculpting), for the figure.
Each classifier is checked on the background events it never trained or validated on (the
study passes `usable`): on its own training events a classifier taught "SR = 1" scores SR
above SB by memorisation, which at the paper's luminosity (half the pool trains each member)
reads as sculpting where held-out events show none (docs/results/paper_luminosity/).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxws.data.events import SIDEBAND, SIGNAL_REGION

MJJ_BINS = np.linspace(4400.0, 5800.0, 15)
EFFICIENCIES = (0.1, 0.01)


@dataclasses.dataclass
class Sculpting:
    """Sculpting numbers of the no-signal members (leading axis: member, then efficiency).

    Attributes:
      efficiencies: target SR background efficiencies eps (K,).
      efficiency_sr, efficiency_sb: achieved efficiencies (M, K).
      pull: (eps_SB - eps_SR) / sigma (M, K).
      mjj_bins: bin edges (B + 1,); efficiency_by_mjj: (M, K, B).
    """

    efficiencies: np.ndarray
    efficiency_sr: np.ndarray
    efficiency_sb: np.ndarray
    pull: np.ndarray
    mjj_bins: np.ndarray
    efficiency_by_mjj: np.ndarray


def sculpting_check(
    scores: np.ndarray,
    mjj: np.ndarray,
    region: np.ndarray,
    efficiencies: Sequence[float] = EFFICIENCIES,
    usable: np.ndarray | None = None,
) -> Sculpting:
    """Sculpting numbers from no-signal classifier scores on background events.

    Args:
      scores: (M, N) scores of M no-signal classifiers on N background events.
      mjj: (N,) dijet masses of the same events [GeV].
      region: (N,) regions of the same events (0 SR, 1 SB).
      efficiencies: SR background efficiencies that define the cuts.
      usable: (M, N) bool, the events each classifier may be checked on (those it never
        trained or validated on); None = all.
    """
    scores = np.atleast_2d(np.asarray(scores, float))
    usable = np.ones(scores.shape, bool) if usable is None else np.asarray(usable, bool)
    eps = np.asarray(efficiencies, float)
    which = np.digitize(mjj, MJJ_BINS) - 1
    n_bins = len(MJJ_BINS) - 1
    eff_sr = np.empty((len(scores), len(eps)))
    eff_sb = np.empty_like(eff_sr)
    n_sr = np.empty((len(scores), 1))
    n_sb = np.empty_like(n_sr)
    by_mjj = np.full((len(scores), len(eps), n_bins), np.nan)
    for m, s in enumerate(scores):
        sr = (region == SIGNAL_REGION) & usable[m]
        sb = (region == SIDEBAND) & usable[m]
        n_sr[m, 0], n_sb[m, 0] = sr.sum(), sb.sum()
        if n_sr[m, 0] == 0 or n_sb[m, 0] == 0:
            raise ValueError(
                f"sculpting check needs SR and SB background, got {int(n_sr[m, 0])} and "
                f"{int(n_sb[m, 0])} for classifier {m}"
            )
        for k, e in enumerate(eps):
            cut = np.quantile(s[sr], 1.0 - e)
            passed = s > cut
            eff_sr[m, k] = passed[sr].mean()
            eff_sb[m, k] = passed[sb].mean()
            for b in range(n_bins):
                in_bin = (which == b) & usable[m]
                if in_bin.any():
                    by_mjj[m, k, b] = passed[in_bin].mean()
    sigma = np.sqrt(eff_sr * (1 - eff_sr) * (1 / n_sr + 1 / n_sb))
    pull = (eff_sb - eff_sr) / np.where(sigma > 0, sigma, np.inf)
    return Sculpting(eps, eff_sr, eff_sb, pull, MJJ_BINS.copy(), by_mjj)


def sculpting_rows(method: str, result: Sculpting) -> list[dict]:
    """One row per (member, efficiency) for `sculpting.csv`."""
    rows = []
    for m in range(result.efficiency_sr.shape[0]):
        for k, e in enumerate(result.efficiencies):
            rows.append(
                {
                    "method": method,
                    "member": m,
                    "target_efficiency": float(e),
                    "efficiency_sr": float(result.efficiency_sr[m, k]),
                    "efficiency_sb": float(result.efficiency_sb[m, k]),
                    "pull": float(result.pull[m, k]),
                }
            )
    return rows
