"""Toy data sets of the anomaly-aware test: the toy bank, null and signal toys, sensitivity.

A toy data set holds N_B ~ Poisson(B) background scores, drawn with replacement from a bank of
background scores that were simulated afresh and *not* used to build f_0 (validity comes from
the toys following the background law; f_0 only sets the power), plus N_S ~ Poisson(s) signal
scores drawn from a pool held out from the template's sample; it is padded to a fixed size
with a mask. Statistics as in `jaxws.stats.anomaly.likelihood` (large = signal-like); p-values
as in `jaxws.stats.anomaly.p_values`. Everything here is pure JAX, vmapped over toys.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jaxws.hashing import tree_digest
from jaxws.stats.anomaly.density import ScoreDensity
from jaxws.stats.anomaly.likelihood import data_set_statistics
from jaxws.stats.anomaly.p_values import median_p_value
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

    Exact up to float32 rounding of the CDF, and much cheaper to compile than
    `jax.random.poisson` (whose rejection loop costs seconds in every program that holds it).

    Args:
      key: PRNG key.
      mean: Poisson mean.
      max_count: largest tabulated count (static).

    Returns:
      The count (int32 scalar).
    """
    counts = jnp.arange(max_count + 1, dtype=jnp.float32)
    safe_mean = jnp.maximum(mean, 1e-30)
    log_pmf = counts * jnp.log(safe_mean) - safe_mean - jax.scipy.special.gammaln(counts + 1.0)
    pmf = jnp.where(mean > 0, jnp.exp(log_pmf), (counts == 0).astype(jnp.float32))
    cdf = jnp.cumsum(pmf)
    return jnp.sum(cdf < jax.random.uniform(key)).astype(jnp.int32)


def sample_toy(
    key: jax.Array,
    background_pool: jax.Array,
    signal_pool: jax.Array,
    expected_background: float | jax.Array,
    expected_signal: float | jax.Array,
    max_events: int,
    background_smoothing: float | jax.Array = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One pseudo-data set: N_B ~ Poisson(B) background and N_S ~ Poisson(s) signal scores.

    Scores are drawn with replacement from the pools; the set is padded to `max_events`. With
    `background_smoothing` = h > 0 every background draw gets h N(0, 1) added (smoothed
    bootstrap): with the null reference sample as pool and h its KDE bandwidth the background
    scores are exact draws from f_0, so the toys sample H0 itself.

    Args:
      key: PRNG key.
      background_pool: (n,) background scores (the toy bank).
      signal_pool: (m,) signal scores to inject.
      expected_background: B.
      expected_signal: s.
      max_events: padded size (static).
      background_smoothing: width h of the smoothed bootstrap (0: plain resampling).

    Returns:
      scores (max_events,), mask (max_events,) bool, overflow (bool: N_B + N_S > max_events, the
      excess dropped; `max_toy_events` makes this a > 8 sigma event).
    """
    count_key, background_key, signal_key, smoothing_key = jax.random.split(key, 4)
    background_count_key, signal_count_key = jax.random.split(count_key)
    n_background = poisson_by_inversion(background_count_key, expected_background, max_events)
    n_signal = poisson_by_inversion(signal_count_key, expected_signal, max_events)
    position = jnp.arange(max_events)
    background = background_pool[
        jax.random.randint(background_key, (max_events,), 0, background_pool.shape[0])
    ] + background_smoothing * jax.random.normal(smoothing_key, (max_events,))
    signal = signal_pool[jax.random.randint(signal_key, (max_events,), 0, signal_pool.shape[0])]
    scores = jnp.where(position < n_background, background, signal)
    mask = position < n_background + n_signal
    return scores, mask, n_background + n_signal > max_events


def toy_statistics(
    keys: jax.Array,
    background_pool: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: float | jax.Array,
    expected_signal: float | jax.Array,
    max_events: int,
    background_smoothing: float | jax.Array = 0.0,
) -> dict[str, jax.Array]:
    """q0, s_hat and the goodness-of-fit t for one toy per key (vmapped over `keys`).

    Args:
      keys: (n_toys,) PRNG keys.
      background_pool: (n,) background scores (the toy bank).
      signal_pool: (m,) signal scores to inject.
      null: f_0.
      template: f_s.
      expected_background: B.
      expected_signal: s.
      max_events: padded size (static).
      background_smoothing: see `sample_toy`.

    Returns:
      dict of (n_toys,) arrays: q0, s_hat, gof, n_events, overflow.
    """

    def one(key: jax.Array) -> dict[str, jax.Array]:
        scores, mask, overflow = sample_toy(
            key,
            background_pool,
            signal_pool,
            expected_background,
            expected_signal,
            max_events,
            background_smoothing,
        )
        statistics = data_set_statistics(scores, mask, null, template, expected_background)
        return {**statistics, "n_events": jnp.sum(mask), "overflow": overflow}

    return jax.vmap(one)(keys)


def null_and_signal_toys(
    key: jax.Array,
    background_bank: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: jax.Array,
    signal_rates: jax.Array,
    n_null_toys: int,
    n_signal_toys: int,
    max_events: int,
) -> dict[str, jax.Array]:
    """Null toys and signal toys at K expected signal counts through one compiled toy program.

    The toys run in blocks of `n_signal_toys` (`lax.map` over blocks, vmapped inside); the null
    toys are the first ceil(n_null_toys / n_signal_toys) blocks (rate 0), so the toy code
    compiles once. Block b uses the b-th key of `split(key, n_blocks)`.

    Args:
      key: PRNG key.
      background_bank: (n,) background scores, disjoint from f_0's sample.
      signal_pool: (m,) signal scores to inject.
      null: f_0.
      template: f_s.
      expected_background: B.
      signal_rates: (K,) expected signal counts s.
      n_null_toys: null toys (static).
      n_signal_toys: toys per signal rate (static).
      max_events: padded toy size (static).

    Returns:
      dict with (n_null_toys,) null_gof and null_q0, (K, n_signal_toys) signal_gof, signal_q0
      and signal_s_hat, overflow (bool: some toy was truncated).
    """
    n_toys = n_signal_toys
    null_blocks = -(-n_null_toys // n_toys)
    rates = jnp.concatenate([jnp.zeros(null_blocks, jnp.float32), signal_rates])
    rate_keys = jax.random.split(key, rates.shape[0])

    def at_rate(args: tuple[jax.Array, jax.Array]) -> dict[str, jax.Array]:
        rate, rate_key = args
        return toy_statistics(
            jax.random.split(rate_key, n_toys),
            background_bank,
            signal_pool,
            null,
            template,
            expected_background,
            rate,
            max_events,
        )

    stats = jax.lax.map(at_rate, (rates, rate_keys))
    null_stats = jax.tree.map(lambda a: a[:null_blocks].reshape(-1)[:n_null_toys], stats)
    signal_stats = jax.tree.map(lambda a: a[null_blocks:], stats)
    return {
        "null_gof": null_stats["gof"],
        "null_q0": null_stats["q0"],
        "signal_gof": signal_stats["gof"],
        "signal_q0": signal_stats["q0"],
        "signal_s_hat": signal_stats["s_hat"],
        "overflow": jnp.any(signal_stats["overflow"]) | jnp.any(null_stats["overflow"]),
    }


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
) -> dict[str, jax.Array]:
    """Null toys and signal toys at several expected signal counts (vmapped over toys).

    Background scores in every toy are drawn with replacement from `background_bank`: scores of
    background events simulated afresh and *not* used to build f_0, many times more than one
    data set holds (a bank of a few data sets misses the rare tail that fresh data show, and the
    p-values then come out too small; `null_calibration` measures this). Signal scores are
    drawn from `signal_pool`, held out from the template's sample.

    The toys run in blocks of `n_signal_toys` as in `null_and_signal_toys` (the same block keys,
    so the same toys), `blocks_per_chunk` blocks per compiled call, through
    `jaxws.train.resume.map_chunks`: with `checkpoint_dir` every finished chunk is saved under
    a digest of all the inputs, and a rerun after a kill loads them and ends with the same
    numbers; changed inputs never reuse a chunk.

    Arguments as in `null_and_signal_toys`; the padded toy size comes from `max_toy_events`.

    Returns:
      `null_and_signal_toys`'s dict plus (K,) signal_rates.
    """
    signal_rates = jnp.asarray(signal_rates, jnp.float32)
    max_events = max_toy_events(float(expected_background), float(jnp.max(signal_rates)))
    bank = jnp.asarray(background_bank, jnp.float32)
    pool = jnp.asarray(signal_pool, jnp.float32)
    null_blocks = -(-n_null_toys // n_signal_toys)
    rates = np.concatenate([np.zeros(null_blocks, np.float32), np.asarray(signal_rates)])
    block_keys = jax.random.split(key, rates.size)
    background = jnp.float32(expected_background)
    fingerprint = tree_digest(
        "anomaly sensitivity toys v1",
        block_keys,
        bank,
        pool,
        null,
        template,
        background,
        rates,
        n_signal_toys,
        max_events,
    )

    def compute(index: np.ndarray) -> dict[str, np.ndarray]:
        padded = np.concatenate([index, np.full(blocks_per_chunk - index.size, index[-1])])
        out = _toy_blocks(
            block_keys[padded],
            jnp.asarray(rates[padded]),
            bank,
            pool,
            null,
            template,
            background,
            n_signal_toys,
            max_events,
        )
        return {k: np.asarray(v)[: index.size] for k, v in out.items()}

    def template_of(index: np.ndarray) -> dict[str, jax.ShapeDtypeStruct]:
        shape = (index.size, n_signal_toys)
        return {
            "gof": jax.ShapeDtypeStruct(shape, np.float32),
            "q0": jax.ShapeDtypeStruct(shape, np.float32),
            "s_hat": jax.ShapeDtypeStruct(shape, np.float32),
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
    }


@functools.partial(jax.jit, static_argnums=(7, 8))
def _toy_blocks(
    block_keys: jax.Array,
    rates: jax.Array,
    background_bank: jax.Array,
    signal_pool: jax.Array,
    null: ScoreDensity,
    template: ScoreDensity,
    expected_background: jax.Array,
    n_toys: int,
    max_events: int,
) -> dict[str, jax.Array]:
    """Toy statistics of blocks of `n_toys` toys, block b at rate b with key b (lax.map)."""

    def at_rate(args: tuple[jax.Array, jax.Array]) -> dict[str, jax.Array]:
        rate, rate_key = args
        stats = toy_statistics(
            jax.random.split(rate_key, n_toys),
            background_bank,
            signal_pool,
            null,
            template,
            expected_background,
            rate,
            max_events,
        )
        return {k: stats[k] for k in ("gof", "q0", "s_hat", "overflow")}

    return jax.lax.map(at_rate, (rates, block_keys))


def median_sensitivity(toys: dict) -> dict:
    """Median sensitivity versus expected signal count, for both statistics (host).

    "gof" is the seed's model-independent test (t = -2 log L(TS | H0), no signal template);
    "q0" the model-dependent likelihood ratio against the template.

    Args:
      toys: the result of `sensitivity_toys`.

    Returns:
      dict with signal_rates, gof and q0 (each the `median_p_value` summary over rates),
      median_s_hat (K,), null_gof, null_q0 and overflow.
    """
    return {
        "signal_rates": np.asarray(toys["signal_rates"]),
        "gof": median_p_value(toys["null_gof"], toys["signal_gof"]),
        "q0": median_p_value(toys["null_q0"], toys["signal_q0"]),
        "median_s_hat": np.median(np.asarray(toys["signal_s_hat"]), axis=-1),
        "null_gof": np.asarray(toys["null_gof"]),
        "null_q0": np.asarray(toys["null_q0"]),
        "overflow": bool(toys["overflow"]),
    }
