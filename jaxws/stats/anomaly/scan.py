"""The scan of the anomaly-aware test over the score weight R (the seed's Fig. 8).

For every R the scores of all samples are recomputed (TS = -ELBO + R H_B), f_0 and one signal
template per benchmark are refitted, and null and signal toys give the median p-value of
rejecting H0 (conventions of `jaxws.stats.anomaly.p_values`: one-sided, p from toys, medians
at the toy floor flagged as bounds). The best R of a benchmark is the one with the smallest
median p.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jaxws.hashing import tree_digest
from jaxws.stats.anomaly.density import TAIL_FRACTION, fit_score_density
from jaxws.stats.anomaly.p_values import SUMMARY_KEYS, median_p_value
from jaxws.stats.anomaly.score import anomaly_score
from jaxws.stats.anomaly.terms import NO_CUT, tail_fraction_above
from jaxws.stats.anomaly.toys import toy_blocks, toy_setup
from jaxws.train.resume import map_chunks

STATISTICS = ("gof", "q0")


def cut_value(reference_scores: np.ndarray, quantile: float) -> float:
    """The TS cut at `quantile` of f_0's reference scores (-inf for quantile 0: no cut)."""
    return float(np.quantile(reference_scores, quantile)) if quantile > 0 else NO_CUT


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
    cut_quantiles: ArrayLike = (0.0,),
    tail_fraction: float = TAIL_FRACTION,
) -> dict:
    """Median p-value of rejecting H0 versus R (and a TS cut) for several signal benchmarks.

    For every R: scores of all samples, f_0 from `null_reference`, one template per benchmark;
    for every cut quantile q the TS cut c = the q-quantile of f_0's reference scores (q = 0: no
    cut) and null and signal toys (s = `expected_signal`, one value or one per benchmark) drawn
    as in `jaxws.stats.anomaly.toys.sensitivity_toys` from the events above c. Samples are
    (negative_elbo, classifier_logit) pairs of equal-length arrays; the benchmark samples carry
    a leading benchmark axis M.

    Args:
      key: PRNG key (benchmark j, cut k: toys from `fold_in(split(key, M)[j], k)`, the same for
        every R).
      r_values: (n_R,) values of R >= 0.
      null_reference: f_0's sample.
      background_bank: the toy bank (disjoint from f_0's sample).
      signal_templates: (M, n) template samples.
      signal_pools: (M, m) signal samples injected in the toys.
      expected_background: B.
      expected_signal: s, a scalar or (M,) (before the cut).
      n_null_toys: null toys per R, cut and benchmark.
      n_signal_toys: signal toys per R, cut and benchmark.
      checkpoint_dir: save each R value's toys there (`jaxws.train.resume.map_chunks`, one R
        per chunk, tagged with a digest of every input) and resume from them.
      cut_quantiles: (n_c,) quantiles of f_0's reference scores used as TS cuts, in [0, 1).
      tail_fraction: probability in each generalised-Pareto tail of the densities.

    Returns:
      dict with r_values; signal_rates (M,); cut_quantiles (n_c,); cut_values (n_R, n_c); gof
      and q0, each the `median_p_value` summary of (n_R, M) arrays at the first cut quantile;
      gof_cuts and q0_cuts, the summaries of (n_R, n_c, M) arrays over every cut; best_r_gof /
      best_r_q0 (M,): the R of the smallest median p at the first cut (first of ties), with
      best_r_tied_* and best_r_at_cap_* (see `_with_best_r`); overflow (bool); not_converged.

    Raises:
      ValueError: R values that are not a 1-D array of finite numbers >= 0, or cut quantiles
        outside [0, 1).
    """
    r_values = np.asarray(r_values, dtype=np.float64)
    if r_values.ndim != 1 or np.any(r_values < 0) or not np.all(np.isfinite(r_values)):
        raise ValueError(f"R values must be a 1-D array of finite numbers >= 0, got {r_values}")
    quantiles = np.atleast_1d(np.asarray(cut_quantiles, dtype=np.float64))
    if quantiles.ndim != 1 or np.any(quantiles < 0) or np.any(quantiles >= 1):
        raise ValueError(f"cut quantiles must lie in [0, 1), got {quantiles}")
    n_benchmarks = np.asarray(signal_templates[0]).shape[0]
    rates = np.broadcast_to(np.asarray(expected_signal, np.float64), (n_benchmarks,))
    as_float = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float32), tree)
    reference, bank = as_float(null_reference), as_float(background_bank)
    templates, pools = as_float(signal_templates), as_float(signal_pools)
    benchmark_keys = jax.random.split(key, n_benchmarks)
    fingerprint = tree_digest(
        "anomaly R scan v3 (asinh coordinate for two-scale scores)",
        key,
        r_values,
        quantiles,
        (reference, bank, templates, pools),
        np.float64(expected_background),
        rates,
        n_null_toys,
        n_signal_toys,
        tail_fraction,
    )

    def one_r(r: float) -> dict[str, np.ndarray]:
        score = lambda pair: np.asarray(anomaly_score(*pair, jnp.float32(r)))
        reference_ts, bank_ts = score(reference), score(bank)
        null = fit_score_density(jnp.asarray(reference_ts), tail_fraction=tail_fraction)
        cells = {name: [] for name in ("null_gof", "null_q0", "signal_gof", "signal_q0")}
        overflow = np.zeros((quantiles.size, n_benchmarks), bool)
        not_converged = np.zeros((quantiles.size, n_benchmarks), np.int64)
        cuts = np.array([cut_value(reference_ts, q) for q in quantiles])
        for k, cut in enumerate(cuts):
            row = {name: [] for name in cells}
            for j in range(n_benchmarks):
                template_ts = score((templates[0][j], templates[1][j]))
                template = fit_score_density(jnp.asarray(template_ts), tail_fraction=tail_fraction)
                setup = toy_setup(
                    bank_ts,
                    score((pools[0][j], pools[1][j])),
                    null,
                    template,
                    float(expected_background),
                    float(rates[j]),
                    float(cut),
                    tail_fraction_above(reference_ts, cut),
                    tail_fraction_above(template_ts, cut),
                )
                null_blocks = -(-n_null_toys // n_signal_toys)
                block_rates = np.concatenate([np.zeros(null_blocks), [rates[j]]]).astype("f4")
                block_keys = jax.random.split(
                    jax.random.fold_in(benchmark_keys[j], k), block_rates.size
                )
                out = {
                    name: np.asarray(value)
                    for name, value in toy_blocks(
                        setup, block_keys, jnp.asarray(block_rates), n_signal_toys
                    ).items()
                }
                for name in ("gof", "q0"):
                    row[f"null_{name}"].append(out[name][:null_blocks].reshape(-1)[:n_null_toys])
                    row[f"signal_{name}"].append(out[name][null_blocks])
                overflow[k, j] = out["overflow"].any()
                not_converged[k, j] = (~out["converged"]).sum()
            for name in cells:
                cells[name].append(np.stack(row[name]))
        result = {name: np.stack(value)[None] for name, value in cells.items()}
        result["overflow"] = overflow[None]
        result["not_converged"] = not_converged[None]
        result["cut_values"] = cuts[None]
        return result

    def compute(index: np.ndarray) -> dict[str, np.ndarray]:
        parts = [one_r(float(r_values[i])) for i in index]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def template(index: np.ndarray) -> dict[str, jax.ShapeDtypeStruct]:
        cells = (index.size, quantiles.size, n_benchmarks)
        return {
            "null_gof": jax.ShapeDtypeStruct((*cells, n_null_toys), np.float32),
            "null_q0": jax.ShapeDtypeStruct((*cells, n_null_toys), np.float32),
            "signal_gof": jax.ShapeDtypeStruct((*cells, n_signal_toys), np.float32),
            "signal_q0": jax.ShapeDtypeStruct((*cells, n_signal_toys), np.float32),
            "overflow": jax.ShapeDtypeStruct(cells, np.bool_),
            "not_converged": jax.ShapeDtypeStruct(cells, np.int64),
            "cut_values": jax.ShapeDtypeStruct((index.size, quantiles.size), np.float64),
        }

    toys = map_chunks(
        compute,
        r_values.size,
        1,
        directory=checkpoint_dir,
        fingerprint=fingerprint,
        template=template,
    )
    result = {
        "r_values": r_values,
        "signal_rates": rates,
        "cut_quantiles": quantiles,
        "cut_values": np.asarray(toys["cut_values"]),
        "overflow": bool(toys["overflow"].any()),
        "not_converged": int(toys["not_converged"].sum()),
    }
    for name in STATISTICS:
        null, signal = np.asarray(toys[f"null_{name}"]), np.asarray(toys[f"signal_{name}"])
        per = [
            [
                [median_p_value(null[i, k, j], signal[i, k, j]) for j in range(n_benchmarks)]
                for k in range(quantiles.size)
            ]
            for i in range(r_values.size)
        ]
        cuts = {
            k: np.array([[[cell[k] for cell in row] for row in plane] for plane in per])
            for k in SUMMARY_KEYS
        }
        cuts["floor"] = per[0][0][0]["floor"]
        result[f"{name}_cuts"] = cuts
        summary = {k: cuts[k][:, 0] for k in SUMMARY_KEYS}
        summary["floor"] = cuts["floor"]
        result[name] = summary
    return _with_best_r(result)


def join_scans(per_r: list[dict]) -> dict:
    """Join `scan_score_weight` results along the R axis (best R recomputed).

    Args:
      per_r: scans of the same benchmarks, each over some R values.

    Returns:
      One scan over all their R values, in order.
    """
    with_cuts = "cut_quantiles" in per_r[0]  # scans saved before issue 23 have no cuts
    scan = {
        "r_values": np.concatenate([s["r_values"] for s in per_r]),
        "signal_rates": per_r[0]["signal_rates"],
        "overflow": any(s["overflow"] for s in per_r),
        "not_converged": sum(s.get("not_converged", 0) for s in per_r),
    }
    if with_cuts:
        scan["cut_quantiles"] = per_r[0]["cut_quantiles"]
        scan["cut_values"] = np.concatenate([s["cut_values"] for s in per_r])
    for name in STATISTICS:
        for field in (name, f"{name}_cuts") if with_cuts else (name,):
            summary = {k: np.concatenate([s[field][k] for s in per_r]) for k in SUMMARY_KEYS}
            summary["floor"] = per_r[0][field]["floor"]
            scan[field] = summary
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
