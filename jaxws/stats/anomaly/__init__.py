"""The anomaly-aware test: the score TS and an unbinned extended-likelihood test in it.

Follows the anomaly-aware search of Scaffidi and Trotta (DARWIN, arXiv:2410.00755). One module
per step, in the order the analysis uses them:

* `score`: TS = -ELBO + R H_B per event, H_B = -log(1 - p(NR | x)), R >= 0;
* `density`: f_0 (and signal templates f_s) as a binned Gaussian KDE core (Silverman's
  bandwidth) with generalised-Pareto tails (`tails`);
* `likelihood`: log L(TS | H0) = -B + sum_i log(B f_0(TS_i)); the model-independent
  goodness-of-fit t = -2 log L(TS | H0) (the seed's statistic, the default result) and the
  model-dependent one-sided q0 against a template (s >= 0);
* `terms`: the per-event terms log f_0 and log f_s / f_0 tabulated once per sample (toys
  gather them), and the TS cut (only events with TS > c enter the test);
* `toys`: toy data sets from a bank of fresh background scores disjoint from f_0's sample
  (N_B ~ Poisson(B), N_S ~ Poisson(s), padded with a mask), vmapped;
* `p_values`: p = P(stat >= observed | H0) from toys, one-sided Z = Phi^-1(1 - p), medians
  with 68% bands, values at the toy floor 1 / (1 + n) marked as bounds, uniformity checks;
* `scan`: the median p versus R for several benchmarks (the seed's Fig. 8).

The public names of every module are re-exported here.
"""

from jaxws.stats.anomaly.density import (
    GRID_SIZE,
    MIN_TAIL_EVENTS,
    SUPPORT_MARGIN,
    TAIL_FRACTION,
    ScoreDensity,
    check_template_support,
    fit_score_density,
    log_density_at,
    score_density,
    silverman_bandwidth,
)
from jaxws.stats.anomaly.likelihood import (
    data_set_statistics,
    fit_signal_count,
    fit_signal_from_ratios,
    goodness_of_fit_statistic,
    null_log_likelihood,
    observed_statistics,
    statistics_from_terms,
)
from jaxws.stats.anomaly.p_values import (
    asymptotic_p_value,
    format_p,
    median_p_value,
    toy_p_values,
    uniformity_summary,
)
from jaxws.stats.anomaly.scan import cut_value, join_scans, scan_score_weight
from jaxws.stats.anomaly.score import anomaly_score, check_scores, checked_anomaly_score
from jaxws.stats.anomaly.tails import MAX_TAIL_SHAPE, fit_pareto_tail, pareto_log_density
from jaxws.stats.anomaly.terms import (
    NO_CUT,
    EventTerms,
    data_set_terms,
    event_terms,
    tail_fraction_above,
)
from jaxws.stats.anomaly.toys import (
    ToySetup,
    max_toy_events,
    median_sensitivity,
    poisson_by_inversion,
    sample_toy,
    sensitivity_toys,
    toy_blocks,
    toy_setup,
    toy_statistics,
)

__all__ = [
    "GRID_SIZE",
    "MAX_TAIL_SHAPE",
    "MIN_TAIL_EVENTS",
    "NO_CUT",
    "SUPPORT_MARGIN",
    "TAIL_FRACTION",
    "EventTerms",
    "ScoreDensity",
    "ToySetup",
    "anomaly_score",
    "asymptotic_p_value",
    "check_scores",
    "check_template_support",
    "checked_anomaly_score",
    "cut_value",
    "data_set_statistics",
    "data_set_terms",
    "event_terms",
    "fit_pareto_tail",
    "fit_score_density",
    "fit_signal_count",
    "fit_signal_from_ratios",
    "format_p",
    "goodness_of_fit_statistic",
    "join_scans",
    "log_density_at",
    "max_toy_events",
    "median_p_value",
    "median_sensitivity",
    "null_log_likelihood",
    "observed_statistics",
    "pareto_log_density",
    "poisson_by_inversion",
    "sample_toy",
    "scan_score_weight",
    "score_density",
    "sensitivity_toys",
    "silverman_bandwidth",
    "statistics_from_terms",
    "tail_fraction_above",
    "toy_blocks",
    "toy_p_values",
    "toy_setup",
    "toy_statistics",
    "uniformity_summary",
]
