"""The steps of the anomaly-aware method after training: score, view, test, scan, check the null.

Each step is one function of the trained `Scorer`'s outputs and the settings, used in this
order by `jaxws.methods.anomaly.pipeline.run`. Conventions of the test and its p-values:
`jaxws.stats.anomaly` (model-independent t = -2 log L(TS | H0) first, model-dependent q0 as an
option; p from toys, one-sided, medians at the toy floor marked as bounds).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxws.methods.anomaly.calibration import ScorePair, null_calibration
from jaxws.methods.anomaly.samples import fresh_background_sets
from jaxws.methods.anomaly.scoring import Scorer
from jaxws.methods.anomaly.settings import AnomalyTestConfig
from jaxws.simulate import tpc, wimp
from jaxws.stats import anomaly as anomaly_stats


@dataclasses.dataclass(frozen=True)
class ScoredSamples:
    """(-ELBO, classifier logit) of every sample the test uses.

    Attributes:
      reference: f_0's sample (held-out background).
      bank: the toy bank (fresh background, disjoint from `reference`).
      signal_nelbo: (M, n) -ELBO of the M benchmark samples.
      signal_logit: (M, n) their classifier logits.
    """

    reference: ScorePair
    bank: ScorePair
    signal_nelbo: np.ndarray
    signal_logit: np.ndarray

    @property
    def half(self) -> int:
        """Events per benchmark in its template; the rest are injected in toys."""
        return self.signal_nelbo.shape[1] // 2

    def templates(self) -> ScorePair:
        """(M, half) samples of the signal templates."""
        return self.signal_nelbo[:, : self.half], self.signal_logit[:, : self.half]

    def pools(self) -> ScorePair:
        """(M, n - half) signal samples injected in toys (disjoint from the templates)."""
        return self.signal_nelbo[:, self.half :], self.signal_logit[:, self.half :]

    def template(self, j: int) -> ScorePair:
        """Template sample of benchmark j."""
        return self.signal_nelbo[j, : self.half], self.signal_logit[j, : self.half]

    def pool(self, j: int) -> ScorePair:
        """Injected signal sample of benchmark j."""
        return self.signal_nelbo[j, self.half :], self.signal_logit[j, self.half :]


def _ts(pair: ScorePair, r: float) -> np.ndarray:
    return np.asarray(anomaly_stats.checked_anomaly_score(*pair, r))


def score_samples(scorer: Scorer, samples: dict, score_key: jax.Array) -> ScoredSamples:
    """Score f_0's sample (stream 0), the bank (1) and the benchmarks (10 + j).

    Args:
      scorer: the trained scorer.
      samples: `simulate_samples`'s dict.
      score_key: PRNG key of the VAE's latent draws (`fold_in(score_key, stream)`).

    Returns:
      The scored samples.
    """
    benchmark_scores = [
        scorer(b, jax.random.fold_in(score_key, 10 + j))
        for j, b in enumerate(samples["benchmarks"])
    ]
    return ScoredSamples(
        reference=scorer(samples["background_null"], jax.random.fold_in(score_key, 0)),
        bank=scorer(samples["background_bank"], jax.random.fold_in(score_key, 1)),
        signal_nelbo=np.stack([pair[0] for pair in benchmark_scores]),
        signal_logit=np.stack([pair[1] for pair in benchmark_scores]),
    )


def benchmark_counts(
    samples: dict, data: tpc.TPCConfig, test: AnomalyTestConfig
) -> dict[str, float]:
    """Expected recoils, detection efficiency and detected events of each WIMP benchmark.

    Recoils in [energy_min, energy_max] for `cross_section_cm2` x `exposure_tonne_year`
    (`jaxws.simulate.wimp.expected_events`) times the detected fraction of the simulated sample.

    Returns:
      Metrics benchmark_{recoils,efficiency,detected}_m<mass>, in the order of the masses.
    """
    metrics = {}
    for j, mass in enumerate(test.wimp_masses):
        recoils = wimp.expected_events(
            mass, test.cross_section_cm2, test.exposure_tonne_year, data.energy_min, data.energy_max
        )
        efficiency = samples["signal_efficiency"][j]
        metrics[f"benchmark_recoils_m{mass:g}"] = recoils
        metrics[f"benchmark_efficiency_m{mass:g}"] = efficiency
        metrics[f"benchmark_detected_m{mass:g}"] = recoils * efficiency
    return metrics


def background_count(samples: dict, data: tpc.TPCConfig, test: AnomalyTestConfig) -> dict:
    """The expected detected background B of the benchmark's exposure (computed, not assumed).

    B = exposure x (ER + CEvNS + neutron recoils per tonne-year in [energy_min, energy_max],
    `jaxws.simulate.tpc.background_recoils`) x the detected fraction of the simulated toy bank
    (events passing the S1 and S2 thresholds out of `data.n_background_bank` simulated).

    Returns:
      Metrics background_recoils (before detection), background_efficiency and
      background_detected (= B).
    """
    recoils = sum(tpc.background_recoils(data, test.exposure_tonne_year).values())
    efficiency = len(samples["background_bank"]["s1"]) / data.n_background_bank
    return {
        "background_recoils": float(recoils),
        "background_efficiency": float(efficiency),
        "background_detected": float(recoils * efficiency),
    }


def latent_encoding(latent: np.ndarray, events: dict) -> dict[str, list[float]]:
    """Spearman correlation of each latent axis with the event's physics quantities.

    What the latent space encodes: recoil energy, log10 S1, log10 S2/S1 (the ER/NR
    discriminant), radius and depth of the interaction.

    Args:
      latent: (N, latent_dim) posterior means.
      events: the N events.

    Returns:
      quantity -> [rho of each latent axis].
    """
    from scipy import stats

    quantities = {
        "energy": events["energy"],
        "log10_s1": np.log10(np.maximum(events["s1"], 1.0)),
        "log10_s2_over_s1": np.log10(np.maximum(events["s2"], 1.0) / np.maximum(events["s1"], 1.0)),
        "radius": np.hypot(events["position"][:, 0], events["position"][:, 1]),
        "depth": events["position"][:, 2],
    }
    return {
        name: [
            float(stats.spearmanr(latent[:, axis], value).statistic)
            for axis in range(latent.shape[1])
        ]
        for name, value in quantities.items()
    }


def score_views(
    scorer: Scorer, samples: dict, scored: ScoredSamples, test: AnomalyTestConfig
) -> dict:
    """What the latent space encodes and the TS distributions at the configured R.

    Returns:
      dict with encoding (`latent_encoding` of 5000 background events), background_latent,
      energy, signal_latent (label -> 2000 events' latent means), background_ts and
      signal_ts (label -> scores).
    """
    names = [f"NR m = {m:g} GeV" for m in test.wimp_masses]
    background_view = {k: v[:5000] for k, v in samples["background_null"].items()}
    latent = scorer.latent_means(background_view)
    return {
        "encoding": latent_encoding(latent, background_view),
        "background_latent": latent,
        "energy": background_view["energy"],
        "signal_latent": {
            name: scorer.latent_means({k: v[:2000] for k, v in b.items()})
            for name, b in zip(names, samples["benchmarks"], strict=True)
        },
        "background_ts": _ts(scored.reference, test.r),
        "signal_ts": {
            name: _ts((scored.signal_nelbo[j], scored.signal_logit[j]), test.r)
            for j, name in enumerate(names)
        },
    }


def sensitivity_cases(test: AnomalyTestConfig) -> dict[str, tuple[float, float, float]]:
    """Name -> (R, signal mass, template mass) of the sensitivity curves.

    The model-independent test at R = 0 and the configured R (the result), and the template q0
    (model-dependent) with the right and a wrong mass.
    """
    m = test.sensitivity_mass
    return {
        "r0": (0.0, m, m),
        "r": (test.r, m, m),
        "mismatch": (test.r, test.mismatch_signal_mass, test.mismatch_template_mass),
        "matched_heavy": (test.r, test.mismatch_signal_mass, test.mismatch_signal_mass),
    }


def sensitivity_curves(
    key: jax.Array,
    scored: ScoredSamples,
    test: AnomalyTestConfig,
    progress: bool = False,
    checkpoints: Path | None = None,
) -> dict[str, dict]:
    """Median sensitivity versus expected signal count for every `sensitivity_cases` entry.

    Case i uses the toy key `fold_in(key, 40 + i)`; with `checkpoints` its toys resume from
    `checkpoints / "sensitivity_<case>"`.

    Returns:
      case -> `jaxws.stats.anomaly.median_sensitivity` result.
    """
    masses = tuple(test.wimp_masses)

    def sensitivity(
        r: float, signal_mass: float, template_mass: float, stream: int, name: str
    ) -> dict:
        null = anomaly_stats.score_density(
            _ts(scored.reference, r), "background (null) scores", test.f0_tail_fraction
        )
        template = anomaly_stats.score_density(
            _ts(scored.template(masses.index(template_mass)), r),
            "signal template scores",
            test.f0_tail_fraction,
        )
        anomaly_stats.check_template_support(null, template)
        reference_ts = _ts(scored.reference, r)
        template_ts = _ts(scored.template(masses.index(template_mass)), r)
        cut = anomaly_stats.cut_value(reference_ts, test.ts_cut_quantile)
        toys = anomaly_stats.sensitivity_toys(
            jax.random.fold_in(key, stream),
            _ts(scored.bank, r),
            _ts(scored.pool(masses.index(signal_mass)), r),
            null,
            template,
            test.expected_background,
            test.signal_rates,
            test.n_null_toys,
            test.n_signal_toys,
            checkpoint_dir=_subdirectory(checkpoints, f"sensitivity_{name}"),
            cut=cut,
            null_fraction=anomaly_stats.tail_fraction_above(reference_ts, cut),
            signal_fraction=anomaly_stats.tail_fraction_above(template_ts, cut),
        )
        return anomaly_stats.median_sensitivity(toys)

    cases = sensitivity_cases(test)
    return {
        name: sensitivity(*case, stream=40 + i, name=name)
        for i, (name, case) in enumerate(
            tqdm(cases.items(), desc="sensitivity toys", disable=not progress)
        )
    }


def r_scan(
    key: jax.Array,
    scored: ScoredSamples,
    test: AnomalyTestConfig,
    detected: list[float],
    progress: bool = False,
    checkpoints: Path | None = None,
) -> dict:
    """Median p versus R for every benchmark (one compiled program per R, reused).

    The injected signal is `scan_signal_rate`, or each benchmark's detected count when that is
    None. R value i uses the toy key `fold_in(key, 5 + 1000 i)`; with `checkpoints` its toys
    resume from `checkpoints / "r_scan_<i>"`.

    Returns:
      `jaxws.stats.anomaly.scan_score_weight`'s result over all of `r_scan`.
    """
    rates = detected if test.scan_signal_rate is None else test.scan_signal_rate
    per_r = [
        anomaly_stats.scan_score_weight(
            jax.random.fold_in(key, 5 + 1000 * i),
            np.asarray([r]),
            scored.reference,
            scored.bank,
            scored.templates(),
            scored.pools(),
            test.expected_background,
            rates,
            test.n_null_toys,
            test.n_signal_toys,
            checkpoint_dir=_subdirectory(checkpoints, f"r_scan_{i}"),
            cut_quantiles=test.r_scan_cut_quantiles,
            tail_fraction=test.f0_tail_fraction,
        )
        for i, r in enumerate(tqdm(test.r_scan, desc="R scan", disable=not progress))
    ]
    return anomaly_stats.join_scans(per_r)


def check_null(
    key: jax.Array,
    score_key: jax.Array,
    scorer: Scorer,
    scored: ScoredSamples,
    data: tpc.TPCConfig,
    test: AnomalyTestConfig,
    progress: bool = False,
    checkpoints: Path | None = None,
) -> dict[float, dict]:
    """Fresh background-only data sets through the whole test (`null_calibration`).

    Data sets from `fold_in(key, 6)`, scored with `fold_in(score_key, 2)`, tested with the
    sensitivity benchmark's template and toys from `fold_in(key, 7)` (resumable from
    `checkpoints / "null_check"`); nothing when `n_null_check_sets` is 0.

    Returns:
      `null_calibration`'s result ({} without a check).
    """
    if test.n_null_check_sets == 0:
        return {}
    events, counts = fresh_background_sets(
        jax.random.fold_in(key, 6), data, test.expected_background, test.n_null_check_sets
    )
    observed = scorer(events, jax.random.fold_in(score_key, 2))
    return null_calibration(
        jax.random.fold_in(key, 7),
        observed,
        counts,
        scored.reference,
        scored.bank,
        scored.template(tuple(test.wimp_masses).index(test.sensitivity_mass)),
        test,
        progress=progress,
        checkpoint_dir=_subdirectory(checkpoints, "null_check"),
    )


def _subdirectory(checkpoints: Path | None, name: str) -> Path | None:
    return None if checkpoints is None else Path(checkpoints) / name
