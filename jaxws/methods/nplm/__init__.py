"""NPLM and symmetrized NPLM experiments on the 1D exponential toy or a user's arrays.

Follows D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155) for NPLM and Bressler, Savoray &
Zurgil (arXiv:2401.09530) for the symmetrized test; statistics in :mod:`jaxws.stats.nplm`,
the network in :mod:`jaxws.models.nplm_net`, toys in :mod:`jaxws.simulate.nplm_toys`, figures
in :mod:`jaxws.plotting.nplm`.

``run`` (:mod:`.experiment`) trains null toys as vmapped ensembles, compares their t with chi2
(dof = number of trainable parameters for NPLM, that minus one for the symmetrized test; and a
fitted dof), records t at a few epoch checkpoints (the drift with too many epochs), measures
the median significance of signal-injected toys against the empirical and the chi2 null, and
for the symmetrized test builds the permutation null of an observed pair. Modules: ``config``
(sections ``data``, :class:`ExponentialToyConfig`, and ``method``, :class:`NPLMConfig`),
``observation`` (the user's file, checked before any toy), ``toy_statistics`` (NPLM toys),
``symmetrized`` (flavour toys, permutations), ``calibration`` (clip scan), ``curves``
(learning curves logged after the compiled loop), ``experiment``
(``run``). See docs/nplm.md.
"""

from jaxws.methods.nplm.calibration import clip_calibration, training_length_scan
from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.experiment import null_statistics, run
from jaxws.methods.nplm.observation import Observation, check_inputs, load_observation, validate
from jaxws.methods.nplm.symmetrized import (
    permutation_null,
    symmetrized_statistic,
    symmetrized_toy_statistics,
)
from jaxws.methods.nplm.toy_statistics import (
    nplm_toy_statistics,
    resampled_null_weights,
    resampled_toy_statistics,
    standardise_by_reference,
)

__all__ = [
    "ExponentialToyConfig",
    "NPLMConfig",
    "Observation",
    "check_inputs",
    "clip_calibration",
    "load_observation",
    "nplm_toy_statistics",
    "null_statistics",
    "permutation_null",
    "resampled_null_weights",
    "resampled_toy_statistics",
    "run",
    "standardise_by_reference",
    "symmetrized_statistic",
    "symmetrized_toy_statistics",
    "training_length_scan",
    "validate",
]
