"""Toy data sets of the anomaly-aware test: the toy bank, null and signal toys, sensitivity.

A toy data set holds N_B ~ Poisson(B) background scores, drawn with replacement from a bank of
background scores that were simulated afresh and *not* used to build f_0 (validity comes from
the toys following the background law; f_0 only sets the power), plus N_S ~ Poisson(s) signal
scores drawn from a pool held out from the template's sample; it is padded to a fixed size
with a mask. The per-event terms log f_0 and log f_s / f_0 are tabulated once for the bank and
the pool (`jaxws.stats.anomaly.terms`), so a toy only gathers them: its per-event cost does not
depend on f_0's reference sample. With a TS cut the toys draw only the events above it (a thinned
Poisson process). Statistics as in `jaxws.stats.anomaly.likelihood` (large = signal-like);
p-values as in `jaxws.stats.anomaly.p_values`. Everything here is pure JAX, vmapped over toys.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jaxws.hashing import tree_digest
from jaxws.stats.anomaly.density import ScoreDensity
from jaxws.stats.anomaly.likelihood import statistics_from_terms
from jaxws.stats.anomaly.p_values import median_p_value
from jaxws.stats.anomaly.terms import NO_CUT, EventTerms, event_terms, tail_fraction_above
from jaxws.train.resume import map_chunks


def max_toy_events(expected_background: float, largest_signal: float) -> int:
    """Padded toy size: mean + 8 sigma + 10 of the largest Poisson total (static).

    Args:
      expected_background: B.
      largest_signal: the largest expected signal count s of any toy.

    Returns:
      The number of event slots of every toy.
    """
    total = expected_background + largest_signal
    return math.ceil(total + 8.0 * math.sqrt(total) + 10.0)


def poisson_by_inversion(key: jax.Array, mean: jax.Array, max_count: int) -> jax.Array:
    """Poisson count by inverting the CDF tabulated on 0..max_count (max_count + 1 = beyond).

    Exact up to float32 rounding of the CDF (the pmf is built from ratios, so it stays accurate
    at means of 1e5 and more), and much cheaper to compile than
    `jax.random.poisson` (whose rejection loop costs seconds in every program that holds it).
    For large `max_count` only a window of `_poisson_window(max_count)` counts from
    max(0, mean - 12 sqrt(mean)) is tabulated, starting from the CDF below it (the regularised
    incomplete gamma function, P(N < k) = Q(k, mean)); the window reaches beyond mean + 12
    sqrt(mean), so the cost per draw is O(sqrt(B)) instead of O(B) (a toy of B = 2.4e5 events).

    Args:
      key: PRNG key.
      mean: Poisson mean.
      max_count: largest tabulated count (static).

    Returns:
      The count (int32 scalar).
    """
    width = _poisson_window(max_count)
    safe_mean = jnp.maximum(mean, 1e-30)
    if width == max_count + 1:
        low = jnp.float32(0.0)
        below = jnp.float32(0.0)
    else:
        low = jnp.clip(
            jnp.floor(safe_mean - 12.0 * jnp.sqrt(safe_mean)), 0.0, max_count + 1 - width
        )
        below = jnp.where(
            low > 0, jax.scipy.special.gammaincc(jnp.maximum(low, 1.0), safe_mean), 0.0
        )
    counts = low + jnp.arange(width, dtype=jnp.float32)
    # log pmf without cancellation in float32 (k log mean - mean - log k! loses ~0.2 in the
    # log at mean 2.4e5): log p(low) by Stirling's series in the small difference low - mean
    # (direct below 50), then the ratios p(k) / p(k - 1) = mean / k as log1p((mean - k) / k).
    d = low - safe_mean
    safe_low = jnp.maximum(low, 1.0)
    stirling = (
        d
        - low * jnp.log1p(d / safe_mean)
        - 0.5 * jnp.log(2.0 * jnp.pi * safe_low)
        - 1.0 / (12.0 * safe_low)
        + 1.0 / (360.0 * safe_low**3)
    )
    direct = low * jnp.log(safe_mean) - safe_mean - jax.scipy.special.gammaln(low + 1.0)
    log_first = jnp.where(low >= 50.0, stirling, direct)
    steps = jnp.log1p((safe_mean - counts[1:]) / counts[1:])
    log_pmf = log_first + jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])
    pmf = jnp.where(mean > 0, jnp.exp(log_pmf), (counts == 0).astype(jnp.float32))
    # Normalised so that the CDF ends at 1: the rounding of the running sum of log ratios
    # must not leave a gap above the table's end (a draw there would return width, an
    # overflow); the mass beyond the table (> 8 or 12 standard deviations) is negligible.
    pmf = pmf * (1.0 - below) / jnp.sum(pmf)
    cdf = below + jnp.cumsum(pmf)
    return (low + jnp.minimum(jnp.sum(cdf < jax.random.uniform(key)), width - 1)).astype(jnp.int32)


def _poisson_window(max_count: int) -> int:
    """Counts tabulated per Poisson draw: all of 0..max_count, or 24 sqrt(max_count) + 64."""
    return min(max_count + 1, math.ceil(24.0 * math.sqrt(max_count + 1)) + 64)


def sample_toy(
    key: jax.Array,
    bank: EventTerms,
    pool: EventTerms,
    expected_background: float | jax.Array,
    expected_signal: float | jax.Array,
    max_events: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """One pseudo-data set: N_B ~ Poisson(B) background and N_S ~ Poisson(s) signal events.

    Events are drawn with replacement from the first `count` entries of the tabulated terms of
    the bank and the pool (`jaxws.stats.anomaly.terms`); the set is padded to `max_events`.
    With a TS cut the terms hold only the events above it, and B, s are the expected counts
    above it (a thinned Poisson process).

    Args:
      key: PRNG key.
      bank: per-event terms of the background bank.
      pool: per-event terms of the signal pool.
      expected_background: expected background events (above the cut).
      expected_signal: expected signal events (above the cut).
      max_events: padded size (static).

    Returns:
      log_null (max_events,), log_ratio (max_events,), mask (max_events,) bool, overflow (bool:
      N_B + N_S > max_events, the excess dropped; `max_toy_events` makes this a > 8 sigma event).
    """
    count_key, background_key, signal_key, _ = jax.random.split(key, 4)
    background_count_key, signal_count_key = jax.random.split(count_key)
    n_background = poisson_by_inversion(background_count_key, expected_background, max_events)
    n_signal = poisson_by_inversion(signal_count_key, expected_signal, max_events)
    position = jnp.arange(max_events)
    background = jax.random.randint(background_key, (max_events,), 0, jnp.maximum(bank.count, 1))
    signal = jax.random.randint(signal_key, (max_events,), 0, jnp.maximum(pool.count, 1))
    from_bank = position < n_background
    log_null = jnp.where(from_bank, bank.log_null[background], pool.log_null[signal])
    log_ratio = jnp.where(from_bank, bank.log_ratio[background], pool.log_ratio[signal])
    mask = position < n_background + n_signal
    return log_null, log_ratio, mask, n_background + n_signal > max_events


def toy_statistics(
    keys: jax.Array,
    bank: EventTerms,
    pool: EventTerms,
    expected_background: float | jax.Array,
    toy_background: float | jax.Array,
    toy_signal: float | jax.Array,
    max_events: int,
    null_fraction: float | jax.Array = 1.0,
) -> dict[str, jax.Array]:
    """q0, s_hat and the goodness-of-fit t for one toy per key (vmapped over `keys`).

    Args:
      keys: (n_toys,) PRNG keys.
      bank: per-event terms of the background bank (above the cut).
      pool: per-event terms of the signal pool (above the cut).
      expected_background: B (the statistic's).
      toy_background: expected background events of a toy above the cut (B without a cut).
      toy_signal: expected signal events of a toy above the cut.
      max_events: padded size (static).
      null_fraction: P_0(TS > c) of f_0 (1 without a cut): B_c = B null_fraction in t.

    Returns:
      dict of (n_toys,) arrays: q0, s_hat, gof, converged, n_events, overflow.
    """

    def one(key: jax.Array) -> dict[str, jax.Array]:
        log_null, log_ratio, mask, overflow = sample_toy(
            key, bank, pool, toy_background, toy_signal, max_events
        )
        statistics = statistics_from_terms(
            log_null, log_ratio, mask, expected_background, expected_background * null_fraction
        )
        return {**statistics, "n_events": jnp.sum(mask), "overflow": overflow}

    return jax.vmap(one)(keys)


@dataclasses.dataclass(frozen=True)
class ToySetup:
    """Everything a block of toys needs at one R, template and cut (host object).

    Attributes:
      bank: terms of the bank's events above the cut.
      pool: terms of the signal pool's events above the cut.
      expected_background: B.
      toy_background: B q_bank, q_bank the bank's fraction above the cut.
      signal_fraction_pool: the pool's fraction above the cut (s_c = s x this).
      null_fraction: P_0(TS > c) from f_0's reference sample.
      max_events: padded toy size for the largest signal count.
    """

    bank: EventTerms
    pool: EventTerms
    expected_background: float
    toy_background: float
    signal_fraction_pool: float
    null_fraction: float
    max_events: int


def toy_setup(
    background_bank: ArrayLike,
    signal_pool: ArrayLike,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float,
    largest_signal: float,
    cut: float = NO_CUT,
    null_fraction: float = 1.0,
    signal_fraction: float = 1.0,
) -> ToySetup:
    """Tabulate the per-event terms of bank and pool (once) for toys at one R and cut.

    Args:
      background_bank: (n,) scores of the toy bank.
      signal_pool: (m,) scores of the injected signal.
      null: f_0.
      template: f_s.
      expected_background: B.
      largest_signal: the largest s of these toys (sets the padded size).
      cut: TS cut (-inf: none).
      null_fraction: P_0(TS > cut) from f_0's reference sample.
      signal_fraction: P_s(TS > cut) from the template's sample.

    Returns:
      The `ToySetup`.
    """
    bank = np.asarray(background_bank, np.float32)
    pool = np.asarray(signal_pool, np.float32)
    q_bank = tail_fraction_above(bank, cut)
    q_pool = tail_fraction_above(pool, cut)
    if np.isfinite(cut) and (q_bank == 0 or q_pool == 0):
        raise ValueError(
            f"TS cut {cut:.4g} leaves no event of the toy bank ({q_bank:g}) or of the signal "
            f"pool ({q_pool:g}) above it"
        )
    return ToySetup(
        bank=event_terms(bank, null, template, signal_fraction, cut),
        pool=event_terms(pool, null, template, signal_fraction, cut),
        expected_background=float(expected_background),
        toy_background=float(expected_background) * q_bank,
        signal_fraction_pool=q_pool,
        null_fraction=float(null_fraction),
        max_events=max_toy_events(float(expected_background) * q_bank, largest_signal * q_pool),
    )


def sensitivity_toys(
    key: jax.Array,
    background_bank: ArrayLike,
    signal_pool: ArrayLike,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float,
    signal_rates: ArrayLike,
    n_null_toys: int,
    n_signal_toys: int,
    checkpoint_dir: str | Path | None = None,
    blocks_per_chunk: int = 4,
    cut: float = NO_CUT,
    null_fraction: float = 1.0,
    signal_fraction: float = 1.0,
) -> dict[str, jax.Array]:
    """Null toys and signal toys at several expected signal counts (vmapped over toys).

    Background events in every toy are drawn with replacement from `background_bank`: scores of
    background events simulated afresh and *not* used to build f_0, many times more than one
    data set holds (a bank of a few data sets misses the rare tail that fresh data show, and the
    p-values then come out too small; `null_calibration` measures this). Signal events are
    drawn from `signal_pool`, held out from the template's sample. The per-event terms are
    tabulated once for bank and pool (`toy_setup`); a toy gathers them.

    The toys run in blocks of `n_signal_toys` (the null toys are the first ceil(n_null_toys /
    n_signal_toys) blocks, at rate 0; block b uses the b-th key of `split(key, n_blocks)`),
    `blocks_per_chunk` blocks per compiled call, through `jaxws.train.resume.map_chunks`: with
    `checkpoint_dir` every finished chunk is saved under a digest of all the inputs, and a rerun
    after a kill loads them and ends with the same numbers; changed inputs never reuse a chunk.

    Args:
      key: PRNG key.
      background_bank: (n,) background scores, disjoint from f_0's sample.
      signal_pool: (m,) signal scores to inject.
      null: f_0.
      template: f_s.
      expected_background: B.
      signal_rates: (K,) expected signal counts s (before the cut).
      n_null_toys: null toys.
      n_signal_toys: toys per signal rate.
      checkpoint_dir: where finished chunks are saved (None: nowhere).
      blocks_per_chunk: blocks per compiled call.
      cut: TS cut c (-inf: none); see `jaxws.stats.anomaly.terms`.
      null_fraction: P_0(TS > c) (f_0's reference sample).
      signal_fraction: P_s(TS > c) (the template's sample).

    Returns:
      dict with (K,) signal_rates, (n_null_toys,) null_gof and null_q0, (K, n_signal_toys)
      signal_gof, signal_q0 and signal_s_hat, overflow (bool: some toy was truncated) and
      not_converged (number of toys whose q0 fit did not converge).
    """
    signal_rates = jnp.asarray(signal_rates, jnp.float32)
    setup = toy_setup(
        background_bank,
        signal_pool,
        null,
        template,
        expected_background,
        float(jnp.max(signal_rates)),
        cut,
        null_fraction,
        signal_fraction,
    )
    null_blocks = -(-n_null_toys // n_signal_toys)
    rates = np.concatenate([np.zeros(null_blocks, np.float32), np.asarray(signal_rates)])
    block_keys = jax.random.split(key, rates.size)
    fingerprint = tree_digest(
        "anomaly sensitivity toys v3 (asinh coordinate for two-scale scores)",
        block_keys,
        setup.bank,
        setup.pool,
        null,
        template,
        np.float64(expected_background),
        rates,
        n_signal_toys,
        setup.max_events,
        np.asarray([cut, setup.toy_background, setup.signal_fraction_pool, null_fraction]),
    )

    def compute(index: np.ndarray) -> dict[str, np.ndarray]:
        padded = np.concatenate([index, np.full(blocks_per_chunk - index.size, index[-1])])
        out = toy_blocks(setup, block_keys[padded], jnp.asarray(rates[padded]), n_signal_toys)
        return {k: np.asarray(v)[: index.size] for k, v in out.items()}

    def template_of(index: np.ndarray) -> dict[str, jax.ShapeDtypeStruct]:
        shape = (index.size, n_signal_toys)
        return {
            "gof": jax.ShapeDtypeStruct(shape, np.float32),
            "q0": jax.ShapeDtypeStruct(shape, np.float32),
            "s_hat": jax.ShapeDtypeStruct(shape, np.float32),
            "converged": jax.ShapeDtypeStruct(shape, np.bool_),
            "overflow": jax.ShapeDtypeStruct(shape, np.bool_),
        }

    blocks = map_chunks(
        compute,
        rates.size,
        blocks_per_chunk,
        directory=checkpoint_dir,
        fingerprint=fingerprint,
        template=template_of,
    )
    null_stats = {k: v[:null_blocks].reshape(-1)[:n_null_toys] for k, v in blocks.items()}
    signal_stats = {k: v[null_blocks:] for k, v in blocks.items()}
    return {
        "signal_rates": signal_rates,
        "null_gof": jnp.asarray(null_stats["gof"]),
        "null_q0": jnp.asarray(null_stats["q0"]),
        "signal_gof": jnp.asarray(signal_stats["gof"]),
        "signal_q0": jnp.asarray(signal_stats["q0"]),
        "signal_s_hat": jnp.asarray(signal_stats["s_hat"]),
        "overflow": jnp.asarray(
            bool(null_stats["overflow"].any() | signal_stats["overflow"].any())
        ),
        "not_converged": int((~null_stats["converged"]).sum() + (~signal_stats["converged"]).sum()),
    }


def toy_blocks(
    setup: ToySetup, block_keys: jax.Array, rates: jax.Array, n_toys: int
) -> dict[str, jax.Array]:
    """Toy statistics of blocks of `n_toys` toys, block b at signal rate b with key b.

    Args:
      setup: `toy_setup`'s tables.
      block_keys: (n_blocks,) keys.
      rates: (n_blocks,) expected signal counts before the cut.
      n_toys: toys per block (static).

    Returns:
      dict of (n_blocks, n_toys) arrays gof, q0, s_hat, converged, overflow.
    """
    return _toy_blocks(
        block_keys,
        rates * jnp.float32(setup.signal_fraction_pool),
        setup.bank,
        setup.pool,
        jnp.float32(setup.expected_background),
        jnp.float32(setup.toy_background),
        jnp.float32(setup.null_fraction),
        n_toys,
        setup.max_events,
    )


@functools.partial(jax.jit, static_argnums=(7, 8))
def _toy_blocks(
    block_keys: jax.Array,
    toy_signal: jax.Array,
    bank: EventTerms,
    pool: EventTerms,
    expected_background: jax.Array,
    toy_background: jax.Array,
    null_fraction: jax.Array,
    n_toys: int,
    max_events: int,
) -> dict[str, jax.Array]:
    def at_rate(args: tuple[jax.Array, jax.Array]) -> dict[str, jax.Array]:
        rate, rate_key = args
        stats = toy_statistics(
            jax.random.split(rate_key, n_toys),
            bank,
            pool,
            expected_background,
            toy_background,
            rate,
            max_events,
            null_fraction,
        )
        return {k: stats[k] for k in ("gof", "q0", "s_hat", "converged", "overflow")}

    return jax.lax.map(at_rate, (toy_signal, block_keys))


def median_sensitivity(toys: dict) -> dict:
    """Median sensitivity versus expected signal count, for both statistics (host).

    "gof" is the seed's model-independent test (t = -2 log L(TS | H0), no signal template);
    "q0" the model-dependent likelihood ratio against the template.

    Args:
      toys: the result of `sensitivity_toys`.

    Returns:
      dict with signal_rates, gof and q0 (each the `median_p_value` summary over rates),
      median_s_hat (K,), null_gof, null_q0, overflow and not_converged.
    """
    return {
        "signal_rates": np.asarray(toys["signal_rates"]),
        "gof": median_p_value(toys["null_gof"], toys["signal_gof"]),
        "q0": median_p_value(toys["null_q0"], toys["signal_q0"]),
        "median_s_hat": np.median(np.asarray(toys["signal_s_hat"]), axis=-1),
        "null_gof": np.asarray(toys["null_gof"]),
        "null_q0": np.asarray(toys["null_q0"]),
        "overflow": bool(toys["overflow"]),
        "not_converged": int(toys.get("not_converged", 0)),
    }
