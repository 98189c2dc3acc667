"""NPLM and symmetrized NPLM two-sample tests: loss, fits, toy ensembles, null, p-values.

Follows D'Agnolo & Wulzer, "Learning New Physics from a Machine" (arXiv:1806.02350), its
multivariate follow-up (arXiv:1912.12155), and the symmetrized test of Bressler, Savoray &
Zurgil (arXiv:2401.09530).

Conventions (used throughout jaxws):

* **NPLM.** The *data* sample D (sample A in the slides) is tested against a much larger
  *reference* sample R (sample B in the slides). ``N_R`` (the slides' N-tilde_B) is the number
  of reference events; ``N(R)`` (the slides' N_A) is the number of data events *expected* under
  the reference hypothesis, so the observed data count is Poisson(N(R)) under the null. Each
  reference event carries the weight ``w = N(R) / N_R``. The alternative is
  ``n(x|H1) = exp(f(x)) n(x|R)`` with ``f`` a small network, and the loss is

      L[f] = sum_{x in R} w (exp(f(x)) - 1) - sum_{x in D} f(x),      t = -2 min_f L[f].

  Under the null t is asymptotically chi2 with as many degrees of freedom as ``f`` has
  trainable parameters (13 for the 1-4-1 network), inflated by about ``1 + N(R)/N_R`` when
  the reference is resampled per toy. Without weight clipping the loss is unbounded below for
  every data event that is not a reference event (the network can grow a spike there); data
  outside the range of the reference sample make that divergence reachable by a single
  monotone step, so :func:`check_nplm_inputs` refuses them.

* **Symmetrized test.** Two observed samples A and B with *observed* counts N_A, N_B; the
  common reference is the pooled sample A u B and

      t_{A+B}(A) = -2 min_f [ sum_{x in A u B} N_A/(N_A+N_B) (exp(f(x)) - 1) - sum_{x in A} f(x) ]

  (and the same for B with its own network g); the test statistic is
  ``t_{A+B}(A) + t_{A+B}(B)``. Every tested event is also a reference event, so the loss is
  bounded below and weight clipping is not needed. Because the weights use observed counts,
  the overall normalisation is not a free direction: the null is asymptotically chi2 with
  ``n_params - 1`` degrees of freedom (12 for 1-4-1); the permutation null of
  :func:`permutation_labels` needs no such assumption.

* **Both tests share one weighted form.** Every event i of a member carries a data weight d_i
  and a reference weight r_i, and ``L = sum_i r_i (exp(f_i) - 1) - sum_i d_i f_i``. Ragged
  toys (Poisson-fluctuated sizes) are padded to fixed shapes with d_i = r_i = 0.

* **p-values.** Larger t is more signal-like. Empirical p-value: ``(k + 1) / (n + 1)`` with k
  the number of null toys with ``t_null >= t_obs`` (never 0). Asymptotic p-value:
  ``chi2.sf(t_obs, dof)``. Significance: one-sided ``Z = Phi^-1(1 - p)``.

Modules: ``loss`` (the weighted loss and the NPLM weights), ``training`` (per-member numbers,
the static training, the weight clip), ``adam`` (the papers' fit), ``newton`` (an optional
fit), ``fit`` (one member, or toys as compiled chunks: ``fit_toys``), ``two_sample`` (the
symmetrized test and its permutation null), ``checks`` (input checks), ``null`` (t against
chi2, bulk and tail), ``p_values`` (p and Z of an observation), ``kernel`` (kernel NPLM,
Letizia et al. 2022). The network f is :mod:`jaxws.models.nplm_net`. The names below are
re-exported so that ``from jaxws.stats import nplm`` reaches the whole test.
"""

from jaxws.models.nplm_net import (
    INITIALISATIONS,
    NetworkSpec,
    TestFunction,
    apply_test_function,
    init_test_function,
    n_parameters,
)
from jaxws.stats.nplm.checks import (
    MIN_EVENTS,
    check_event_weights,
    check_nplm_inputs,
    check_samples,
)
from jaxws.stats.nplm.fit import (
    CPU_SEQUENTIAL_EVENTS,
    SCHEDULES,
    fit_test_function,
    fit_toys,
    resolve_schedule,
)
from jaxws.stats.nplm.loss import nplm_inputs, nplm_loss_terms, reference_statistics
from jaxws.stats.nplm.null import (
    TAIL_QUANTILES,
    compare_with_chi2,
    fit_chi2_dof,
    follows_chi2,
    tail_comparison,
)
from jaxws.stats.nplm.p_values import (
    chi2_p_value,
    empirical_p_value,
    format_significance,
    significance,
)
from jaxws.stats.nplm.training import (
    CLIP_SCOPES,
    NPLMFit,
    NPLMHparams,
    NPLMTraining,
    clip_kernels,
    clip_weights,
)
from jaxws.stats.nplm.two_sample import permutation_labels, symmetrized_test, symmetrized_weights

__all__ = [
    "CLIP_SCOPES",
    "CPU_SEQUENTIAL_EVENTS",
    "INITIALISATIONS",
    "MIN_EVENTS",
    "SCHEDULES",
    "TAIL_QUANTILES",
    "NPLMFit",
    "NPLMHparams",
    "NPLMTraining",
    "NetworkSpec",
    "TestFunction",
    "apply_test_function",
    "check_event_weights",
    "check_nplm_inputs",
    "check_samples",
    "chi2_p_value",
    "clip_kernels",
    "clip_weights",
    "compare_with_chi2",
    "empirical_p_value",
    "fit_chi2_dof",
    "fit_test_function",
    "fit_toys",
    "follows_chi2",
    "format_significance",
    "init_test_function",
    "n_parameters",
    "nplm_inputs",
    "nplm_loss_terms",
    "permutation_labels",
    "reference_statistics",
    "resolve_schedule",
    "significance",
    "symmetrized_test",
    "symmetrized_weights",
    "tail_comparison",
]
