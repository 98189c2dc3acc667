"""The null of the anomaly-aware test, checked the way it is used.

Background-only data sets simulated afresh (`jaxws.methods.anomaly.samples.fresh_background_sets`)
are scored and tested exactly as the analysis tests data: f_0 from the reference scores, the
signal template from a benchmark sample, null toys from the bank. If the null is valid their
p-values (P(stat >= observed | H0) from toys, ties randomised) are uniform; the summary gives
the two-sample KS p-value of the data sets' statistics against the toys' and the fractions
below 0.05 and 0.01 with errors that include the toys' own noise
(`jaxws.stats.anomaly.uniformity_summary`).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxws.methods.anomaly.settings import AnomalyTestConfig
from jaxws.stats import anomaly as anomaly_stats

ScorePair = tuple[np.ndarray, np.ndarray]


def _padded_data_sets(counts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, mask), (n_sets, size): event indices of each consecutive data set, padded."""
    position = np.arange(size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index = np.minimum(starts[:, None] + position[None, :], counts.sum() - 1)
    mask = position[None, :] < counts[:, None]
    return index, mask


def null_calibration(
    key: jax.Array,
    observed: ScorePair,
    counts: np.ndarray,
    reference: ScorePair,
    bank: ScorePair,
    template: ScorePair,
    test: AnomalyTestConfig,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
) -> dict[float, dict]:
    """p-values of fresh background-only data sets through the whole test, at each R.

    The data sets are scored and tested exactly as the analysis tests data: f_0 from the
    reference scores, the template from `template`, null toys from the bank; their p-values
    (randomised ties) must be uniform if the null is valid.

    Args:
      key: PRNG key (null toys and tie randomisation).
      observed: (-ELBO, logit) of the data sets' events, concatenated in order.
      counts: events per data set.
      reference: (-ELBO, logit) of f_0's sample.
      bank: (-ELBO, logit) of the toy bank.
      template: (-ELBO, logit) of the template's signal sample.
      test: settings (B, toys, tails, the R values in `null_check_r`).
      progress: show a progress bar over R.
      checkpoint_dir: the null toys of R value i resume from `checkpoint_dir / "r_<i>"`
        (`jaxws.stats.anomaly.sensitivity_toys`).

    Returns:
      {R: {"gof": uniformity_summary, "q0": uniformity_summary, "p_gof": p, "p_q0": p, "cut",
      "not_converged", "cuts": {q: the same entry at the TS cut of quantile q}}} for every q of
      `null_check_cut_quantiles` (the top-level entry is the first q's).
    """
    size = anomaly_stats.max_toy_events(test.expected_background, 0.0)
    index, mask = _padded_data_sets(counts, max(size, int(counts.max())))
    quantiles = tuple(test.null_check_cut_quantiles)
    results = {}
    for i, r in enumerate(tqdm(test.null_check_r, desc="null check (R)", disable=not progress)):
        score = lambda pair, r=r: np.asarray(anomaly_stats.checked_anomaly_score(*pair, r))
        reference_ts, template_ts = score(reference), score(template)
        null = anomaly_stats.score_density(
            reference_ts, "background (null) scores", test.f0_tail_fraction
        )
        signal_template = anomaly_stats.score_density(
            template_ts, "signal template scores", test.f0_tail_fraction
        )
        observed_ts = score(observed)
        per_cut = {}
        for k, quantile in enumerate(quantiles):
            cut = anomaly_stats.cut_value(reference_ts, quantile)
            fractions = (
                anomaly_stats.tail_fraction_above(reference_ts, cut),
                anomaly_stats.tail_fraction_above(template_ts, cut),
            )
            # Cut k > 0 of R value i: its own stream, so cut 0 keeps the former keys.
            stream = 2 * i if k == 0 else 100_000 + 100 * i + k
            folder = f"r_{i}" if k == 0 else f"r_{i}_cut_{k}"
            toys = anomaly_stats.sensitivity_toys(
                jax.random.fold_in(key, stream),
                score(bank),
                template_ts,
                null,
                signal_template,
                test.expected_background,
                [0.0],
                test.n_null_toys,
                test.n_signal_toys,
                checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / folder,
                cut=cut,
                null_fraction=fractions[0],
                signal_fraction=fractions[1],
            )
            stats = _observed_in_chunks(
                observed_ts, index, mask, null, signal_template, test, cut, fractions
            )
            # Fits of the observed sets and of the toys they are compared with.
            not_converged = int(np.sum(~stats["converged"])) + int(toys["not_converged"])
            entry = {"cut": cut, "not_converged": not_converged}
            for j, name in enumerate(("gof", "q0")):
                p = np.asarray(
                    anomaly_stats.toy_p_values(
                        stats[name],
                        toys[f"null_{name}"],
                        jax.random.fold_in(key, stream + 1 + 1000 * j),
                    )
                )
                entry[name] = anomaly_stats.uniformity_summary(p, stats[name], toys[f"null_{name}"])
                entry[f"p_{name}"] = p
            per_cut[float(quantile)] = entry
        results[float(r)] = {**per_cut[float(quantiles[0])], "cuts": per_cut}
    return results


def _observed_in_chunks(
    observed_ts: np.ndarray,
    index: np.ndarray,
    mask: np.ndarray,
    null: anomaly_stats.ScoreDensity,
    template: anomaly_stats.ScoreDensity,
    test: AnomalyTestConfig,
    cut: float,
    fractions: tuple[float, float],
    chunk: int = 16,
) -> dict[str, np.ndarray]:
    """`observed_statistics` of the data sets, `chunk` sets at a time (bounded memory)."""
    parts = []
    for start in range(0, index.shape[0], chunk):
        rows = slice(start, start + chunk)
        n = index[rows].shape[0]
        pad = ((0, chunk - n), (0, 0))
        stats = anomaly_stats.observed_statistics(
            jnp.asarray(np.pad(observed_ts[index[rows]], pad), jnp.float32),
            jnp.asarray(np.pad(mask[rows], pad)),
            null,
            template,
            jnp.float32(test.expected_background),
            jnp.float32(cut),
            jnp.float32(fractions[0]),
            jnp.float32(fractions[1]),
        )
        parts.append({k: np.asarray(v)[:n] for k, v in stats.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
