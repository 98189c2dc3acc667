"""Per-event likelihood terms tabulated once per sample, and the TS cut.

Both statistics of `jaxws.stats.anomaly.likelihood` are sums over a data set's events of two
per-event numbers that depend only on the event's TS, f_0 and the template:

* a_i = log f_0(TS_i), so that t = -2 log L(TS | H0) = 2 B_c - 2 sum_i (log B + a_i);
* l_i = log f_s(TS_i) - log f_0(TS_i) - log P_s(TS > c), so that the signal-to-background
  ratio of the extended likelihood is r_i = exp(l_i) / B.

A toy data set draws its events from a bank (background) and a pool (signal) of scored
events; instead of evaluating f_0 and f_s at every drawn event (an interpolation in the
densities' tables for every event of every toy), `event_terms` evaluates a_i and l_i once for
each event of the bank and the pool, and a toy only gathers them. The per-event cost of a toy
is then one gather, independent of the size of f_0's reference sample and of the densities'
tables; the numbers are the same as those of the direct evaluation (the same function of the
same TS, `log_density_at`).

**TS cut** (the seed mentions "a cut value on TS"): with a cut c only events with TS > c enter
the test. For the background this is a thinned Poisson process: N_c ~ Poisson(B_c) events with
B_c = B P_0(TS > c), distributed as f_0 restricted to TS > c, so that

    log L(TS | H0, c) = -B_c + sum_{TS_i > c} log(B f_0(TS_i))        (B_c f_0 / P_0 = B f_0),

and likewise the signal: s_c = s P_s(TS > c) events of density f_s / P_s(TS > c), so q0 is fitted
in s_c with r_i = f_s(TS_i) / (P_s(TS > c) B f_0(TS_i)). P_0(TS > c) and P_s(TS > c) are the
fractions of f_0's reference sample and of the template's sample above c (the samples the
densities were fitted to). The toys of a cut draw N_c ~ Poisson(B q_bank) events from the
bank's events above c, q_bank the bank's fraction above c (the toy's stand-in for the true
background law, as without a cut), so a toy with a cut costs B_c, not B, events. No cut is
c = -inf (B_c = B, P = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxws.stats.anomaly.density import ScoreDensity, log_density_at

NO_CUT = -np.inf


@struct.dataclass
class EventTerms:
    """a = log f_0 and l = log f_s - log f_0 - log P_s(TS > c) of the events above a cut (pytree).

    The arrays are padded to a fixed length; only the first `count` entries are events.

    Attributes:
      log_null: (n,) a_i.
      log_ratio: (n,) l_i.
      count: number of real entries (int32 scalar).
    """

    log_null: jax.Array
    log_ratio: jax.Array
    count: jax.Array


def tail_fraction_above(samples: jax.Array | np.ndarray, cut: float) -> float:
    """Fraction of `samples` with TS > cut (1 for no cut, c = -inf)."""
    samples = np.asarray(samples)
    return float(np.mean(samples > cut)) if np.isfinite(cut) else 1.0


@jax.jit
def _terms(
    scores: jax.Array, null: ScoreDensity, template: ScoreDensity, log_signal_fraction: jax.Array
) -> tuple[jax.Array, jax.Array]:
    log_null = log_density_at(null, scores)
    return log_null, log_density_at(template, scores) - log_null - log_signal_fraction


def event_terms(
    scores: jax.Array | np.ndarray,
    null: ScoreDensity,
    template: ScoreDensity,
    signal_fraction: float = 1.0,
    cut: float = NO_CUT,
) -> EventTerms:
    """The per-event terms of the events of `scores` with TS > cut, padded to len(scores).

    Args:
      scores: (n,) scores of a sample (a toy bank, a signal pool).
      null: f_0.
      template: f_s.
      signal_fraction: P_s(TS > cut) of the template (1 without a cut).
      cut: the TS cut c (-inf: none).

    Returns:
      `EventTerms` of the events above the cut, in their order, then padding.
    """
    scores = np.asarray(scores, np.float32)
    keep = scores > cut if np.isfinite(cut) else np.ones(scores.shape, bool)
    kept = np.concatenate([scores[keep], np.zeros(scores.size - keep.sum(), np.float32)])
    log_null, log_ratio = _terms(
        jnp.asarray(kept), null, template, jnp.float32(np.log(signal_fraction))
    )
    return EventTerms(log_null, log_ratio, jnp.int32(keep.sum()))


def data_set_terms(
    scores: jax.Array,
    mask: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    signal_fraction: float | jax.Array = 1.0,
    cut: float | jax.Array = NO_CUT,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(a, l, mask above the cut) of one padded data set (traceable; observed data and tests).

    Args:
      scores: (n,) scores, padded.
      mask: (n,) True for real events.
      null: f_0.
      template: f_s.
      signal_fraction: P_s(TS > cut).
      cut: the TS cut (-inf: none).

    Returns:
      (log_null, log_ratio, mask & (scores > cut)), each (n,).
    """
    log_null = log_density_at(null, scores)
    log_ratio = log_density_at(template, scores) - log_null - jnp.log(signal_fraction)
    return log_null, log_ratio, mask & (scores > cut)
