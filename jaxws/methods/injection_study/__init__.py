"""The signal-injection study every CWoLa-type method shares (arXiv:2312.06152, sec. 3).

Three steps, one module each: `inputs.prepare` (events, pseudo-experiments, jet images),
`evaluation.evaluate` (scores, efficiencies, significances per member) and `report.report`
(tables, learning thresholds, figures). The threshold statistics are `jaxws.stats.thresholds`.

Every method (CWoLa, transfer, meta-transfer, any meta-learning variant) trains an ensemble on
the same pseudo-experiments and goes through the same evaluation, so their curves compare
like with like:

- initial significance: eq. 2 with N_s = injected SR signal and N_b = SR background of the
  pseudo-experiment (training + validation events: the whole SR data set), before any cut;
- final significance: eq. 2 (or eq. 8 with a relative background uncertainty) at each
  background-efficiency working point, with N_s * eps_s and N_b * eps_b, where eps_s and eps_b
  come from the classifier's ROC on the pure SR test sets; the study reports the best working
  point per pseudo-experiment (optimistic, since truth picks it — as in the paper's figures)
  and every working point separately in `working_points.csv`;
- the no-signal control (injection 0): eps_s/eps_b and AUC of classifiers trained without
  signal, which should be consistent with a random classifier (AUC 0.5).
"""

from jaxws.methods.injection_study.evaluation import (
    DIVERGED_LOSS,
    StudyResult,
    diverged_members,
    evaluate,
)
from jaxws.methods.injection_study.inputs import (
    StudyConfig,
    StudyInputs,
    StudyTrainingConfig,
    event_pool_images,
    prepare,
    prepare_from_key,
    validate,
)
from jaxws.methods.injection_study.report import report, report_diverged, summarise, threshold_table

__all__ = [
    "DIVERGED_LOSS",
    "StudyConfig",
    "StudyInputs",
    "StudyResult",
    "StudyTrainingConfig",
    "diverged_members",
    "evaluate",
    "event_pool_images",
    "prepare",
    "prepare_from_key",
    "report",
    "report_diverged",
    "summarise",
    "threshold_table",
    "validate",
]
