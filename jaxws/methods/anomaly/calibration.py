"""The null of the anomaly-aware test, checked the way it is used.

Background-only data sets simulated afresh (`jaxws.methods.anomaly.samples.fresh_background_sets`)
are scored and tested exactly as the analysis tests data: f_0 from the reference scores, the
signal template from a benchmark sample, null toys from the bank. If the null is valid their
p-values (P(stat >= observed | H0) from toys, ties randomised) are uniform; the summary gives
the KS p-value and the fractions below 0.05 and 0.01 with binomial errors
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
      {R: {"gof": uniformity_summary, "q0": uniformity_summary, "p_gof": p, "p_q0": p}}.
    """
    size = anomaly_stats.max_toy_events(test.expected_background, 0.0)
    index, mask = _padded_data_sets(counts, max(size, int(counts.max())))
    results = {}
    for i, r in enumerate(tqdm(test.null_check_r, desc="null check (R)", disable=not progress)):
        score = lambda pair, r=r: np.asarray(anomaly_stats.checked_anomaly_score(*pair, r))
        null = anomaly_stats.score_density(
            score(reference), "background (null) scores", test.f0_tail_fraction
        )
        signal_template = anomaly_stats.score_density(
            score(template), "signal template scores", test.f0_tail_fraction
        )
        toys = anomaly_stats.sensitivity_toys(
            jax.random.fold_in(key, 2 * i),
            score(bank),
            score(template),
            null,
            signal_template,
            test.expected_background,
            [0.0],
            test.n_null_toys,
            test.n_signal_toys,
            checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / f"r_{i}",
        )
        stats = anomaly_stats.observed_statistics(
            jnp.asarray(score(observed)[index], jnp.float32),
            jnp.asarray(mask),
            null,
            signal_template,
            jnp.float32(test.expected_background),
        )
        entry = {}
        for j, name in enumerate(("gof", "q0")):
            p = np.asarray(
                anomaly_stats.toy_p_values(
                    stats[name],
                    toys[f"null_{name}"],
                    jax.random.fold_in(key, 2 * i + 1 + 1000 * j),
                )
            )
            entry[name] = anomaly_stats.uniformity_summary(p)
            entry[f"p_{name}"] = p
        results[float(r)] = entry
    return results
