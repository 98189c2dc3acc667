"""The scan of the anomaly-aware test over the score weight R (the seed's Fig. 8).

For every R the scores of all samples are recomputed (TS = -ELBO + R H_B), f_0 and one signal
template per benchmark are refitted, and null and signal toys give the median p-value of
rejecting H0 (conventions of `jaxws.stats.anomaly.p_values`: one-sided, p from toys, medians
at the toy floor flagged as bounds). The best R of a benchmark is the one with the smallest
median p.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jaxws.hashing import tree_digest
from jaxws.stats.anomaly.density import fit_score_density
from jaxws.stats.anomaly.p_values import SUMMARY_KEYS, median_p_value
from jaxws.stats.anomaly.score import anomaly_score
from jaxws.stats.anomaly.toys import max_toy_events, null_and_signal_toys
from jaxws.train.resume import map_chunks

STATISTICS = ("gof", "q0")


def scan_score_weight(
    key: jax.Array,
    r_values: ArrayLike,
    null_reference: tuple[jax.Array, jax.Array],
    background_bank: tuple[jax.Array, jax.Array],
    signal_templates: tuple[jax.Array, jax.Array],
    signal_pools: tuple[jax.Array, jax.Array],
    expected_background: float,
    expected_signal: ArrayLike,
    n_null_toys: int,
    n_signal_toys: int,
    checkpoint_dir: str | Path | None = None,
) -> dict:
    """Median p-value of rejecting H0 versus R for several signal benchmarks.

    For every R (`lax.map` over R, toys vmapped): scores of all samples, f_0 from
    `null_reference`, one template per benchmark, null toys and signal toys (s =
    `expected_signal`, one value or one per benchmark) drawn as in
    `jaxws.stats.anomaly.toys.sensitivity_toys`. Samples are (negative_elbo, classifier_logit)
    pairs of equal-length arrays; the benchmark samples carry a leading benchmark axis M.

    Args:
      key: PRNG key.
      r_values: (n_R,) values of R >= 0.
      null_reference: f_0's sample.
      background_bank: the toy bank (disjoint from f_0's sample).
      signal_templates: (M, n) template samples.
      signal_pools: (M, m) signal samples injected in the toys.
      expected_background: B.
      expected_signal: s, a scalar or (M,).
      n_null_toys: null toys per R and benchmark.
      n_signal_toys: signal toys per R and benchmark.
      checkpoint_dir: save each R value's toys there (`jaxws.train.resume.map_chunks`, one R
        per chunk, tagged with a digest of every input) and resume from them; every R uses the
        same toy keys, so chunking does not change the numbers.

    Returns:
      dict with r_values; signal_rates (M,); gof and q0, each the `median_p_value` summary of
      (n_R, M) arrays; best_r_gof / best_r_q0 (M,): the R of the smallest median p (first of
      ties), with best_r_tied_* and best_r_at_cap_* (see `_with_best_r`); overflow (bool).

    Raises:
      ValueError: R values that are not a 1-D array of finite numbers >= 0.
    """
    r_values = np.asarray(r_values, dtype=np.float64)
    if r_values.ndim != 1 or np.any(r_values < 0) or not np.all(np.isfinite(r_values)):
        raise ValueError(f"R values must be a 1-D array of finite numbers >= 0, got {r_values}")
    n_benchmarks = np.asarray(signal_templates[0]).shape[0]
    rates = np.broadcast_to(np.asarray(expected_signal, np.float64), (n_benchmarks,))
    max_events = max_toy_events(float(expected_background), float(np.max(rates)))
    as_float = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    inputs = (
        as_float(null_reference),
        as_float(background_bank),
        as_float(signal_templates),
        as_float(signal_pools),
        jnp.float32(expected_background),
        jnp.asarray(rates, jnp.float32),
    )
    fingerprint = tree_digest(
        "anomaly R scan v1", key, r_values, inputs, n_null_toys, n_signal_toys, max_events
    )

    def compute(index: np.ndarray) -> dict[str, np.ndarray]:
        out = _scan_score_weight(
            key,
            jnp.asarray(r_values[index], jnp.float32),
            *inputs,
            n_null_toys,
            n_signal_toys,
            max_events,
        )
        return {k: np.asarray(v) for k, v in out.items()}

    def template(index: np.ndarray) -> dict[str, jax.ShapeDtypeStruct]:
        cells = (index.size, n_benchmarks)
        return {
            "null_gof": jax.ShapeDtypeStruct((*cells, n_null_toys), np.float32),
            "null_q0": jax.ShapeDtypeStruct((*cells, n_null_toys), np.float32),
            "signal_gof": jax.ShapeDtypeStruct((*cells, n_signal_toys), np.float32),
            "signal_q0": jax.ShapeDtypeStruct((*cells, n_signal_toys), np.float32),
            "overflow": jax.ShapeDtypeStruct(cells, np.bool_),
        }

    toys = map_chunks(
        compute,
        r_values.size,
        1,
        directory=checkpoint_dir,
        fingerprint=fingerprint,
        template=template,
    )
    result = {"r_values": r_values, "signal_rates": rates, "overflow": bool(toys["overflow"].any())}
    for name in STATISTICS:
        null, signal = np.asarray(toys[f"null_{name}"]), np.asarray(toys[f"signal_{name}"])
        per = [
            [median_p_value(null[i, j], signal[i, j]) for j in range(n_benchmarks)]
            for i in range(r_values.size)
        ]
        summary = {k: np.array([[cell[k] for cell in row] for row in per]) for k in SUMMARY_KEYS}
        summary["floor"] = per[0][0]["floor"]
        result[name] = summary
    return _with_best_r(result)


def join_scans(per_r: list[dict]) -> dict:
    """Join `scan_score_weight` results along the R axis (best R recomputed).

    Args:
      per_r: scans of the same benchmarks, each over some R values.

    Returns:
      One scan over all their R values, in order.
    """
    scan = {
        "r_values": np.concatenate([s["r_values"] for s in per_r]),
        "signal_rates": per_r[0]["signal_rates"],
        "overflow": any(s["overflow"] for s in per_r),
    }
    for name in STATISTICS:
        summary = {k: np.concatenate([s[name][k] for s in per_r]) for k in SUMMARY_KEYS}
        summary["floor"] = per_r[0][name]["floor"]
        scan[name] = summary
    return _with_best_r(scan)


def _with_best_r(scan: dict) -> dict:
    """Add the best R per benchmark and say when the toys cannot single it out.

    best_r_<statistic> (M,): the R of the smallest median p (first of ties);
    best_r_tied_<statistic> (n_R, M) bool: every R whose median p equals that smallest one
    (toy p-values are multiples of 1 / (1 + n), so ties are common, and certain at the floor);
    best_r_at_cap_<statistic> (M,) bool: the smallest median sits at the toy floor, so it is
    only a bound p < 1 / (1 + n) and more toys are needed to rank the tied R values.
    """
    for name in STATISTICS:
        median = np.asarray(scan[name]["median_p"])
        best = np.argmin(median, axis=0)
        columns = np.arange(median.shape[1])
        scan[f"best_r_{name}"] = scan["r_values"][best]
        scan[f"best_r_tied_{name}"] = median == median[best, columns][None, :]
        scan[f"best_r_at_cap_{name}"] = np.asarray(scan[name]["at_cap"])[best, columns]
    return scan


@functools.partial(jax.jit, static_argnums=(8, 9, 10))
def _scan_score_weight(
    key: jax.Array,
    r_values: jax.Array,
    null_reference: tuple[jax.Array, jax.Array],
    background_bank: tuple[jax.Array, jax.Array],
    signal_templates: tuple[jax.Array, jax.Array],
    signal_pools: tuple[jax.Array, jax.Array],
    expected_background: jax.Array,
    expected_signal: jax.Array,
    n_null_toys: int,
    n_signal_toys: int,
    max_events: int,
):
    n_benchmarks = signal_templates[0].shape[0]
    benchmark_keys = jax.random.split(key, n_benchmarks)

    def at_weight(r: jax.Array) -> dict[str, jax.Array]:
        null = fit_score_density(anomaly_score(*null_reference, r))
        background = anomaly_score(*background_bank, r)

        def benchmark(args: tuple[jax.Array, ...]) -> dict[str, jax.Array]:
            template_nelbo, template_logit, pool_nelbo, pool_logit, rate, benchmark_key = args
            template = fit_score_density(anomaly_score(template_nelbo, template_logit, r))
            toys = null_and_signal_toys(
                benchmark_key,
                background,
                anomaly_score(pool_nelbo, pool_logit, r),
                null,
                template,
                expected_background,
                rate[None],
                n_null_toys,
                n_signal_toys,
                max_events,
            )
            return {
                "null_gof": toys["null_gof"],
                "null_q0": toys["null_q0"],
                "signal_gof": toys["signal_gof"][0],
                "signal_q0": toys["signal_q0"][0],
                "overflow": toys["overflow"],
            }

        return jax.lax.map(
            benchmark, (*signal_templates, *signal_pools, expected_signal, benchmark_keys)
        )

    return jax.lax.map(at_weight, r_values)
