"""Meta-learning on one interface: a learner is a record of parts, the variants a dict of them.

arXiv:2312.06152 sec. 5 (meta-transfer learning) and its baselines MAML, first-order MAML,
Reptile, ANIL and Meta-SGD, all on one inner problem and one outer loop (docs/meta_learning.md):

- `config`: learning rates (`MetaHparams`, pytree leaves) and loop settings (`MetaConfig`).
- `inner`: the inner problem, base learning (`adapt`) and the inner step-size rules.
- `estimators`: meta-gradient estimators (second order, first order, Reptile).
- `learners`: the `MetaLearner` record, the `VARIANTS` dict and `configure`.
- `tasks`: task families as values (`SinusoidTasks`, `FiniteTaskSet`): `sample(key)` draws
  a meta-batch of support/query tasks.
- `outer`: the outer loops (`SampledMetaTrainer`: fresh tasks per meta-step; `MetaTrainer`:
  episodes over a finite task set) and the meta-training state `OuterState`;
  `training.meta_train_sampled` / `training.meta_train` run them, resumably.
- `study`: the CWoLa study of a variant (`method=<variant>`, phases 1-3).
"""

from jaxws.methods.meta.config import MetaConfig, MetaHparams, check_hparams
from jaxws.methods.meta.estimators import Estimator, first_order, reptile, second_order
from jaxws.methods.meta.inner import (
    InnerProblem,
    MetaState,
    StepSizeRule,
    Task,
    adapt,
    learned_step_sizes,
    plain_step_size,
)
from jaxws.methods.meta.learners import (
    VARIANTS,
    FineTune,
    MetaLearner,
    available,
    configure,
    get,
    keras_adam,
)
from jaxws.methods.meta.outer import MetaResult, MetaTrainer, OuterState, SampledMetaTrainer
from jaxws.methods.meta.study import method_module
from jaxws.methods.meta.tasks import FiniteTaskSet, SinusoidTasks, TaskSampler
from jaxws.methods.meta.training import meta_train, meta_train_sampled

__all__ = [
    "VARIANTS",
    "Estimator",
    "FineTune",
    "FiniteTaskSet",
    "InnerProblem",
    "MetaConfig",
    "MetaHparams",
    "MetaLearner",
    "MetaResult",
    "MetaState",
    "MetaTrainer",
    "OuterState",
    "SampledMetaTrainer",
    "SinusoidTasks",
    "StepSizeRule",
    "Task",
    "TaskSampler",
    "adapt",
    "available",
    "check_hparams",
    "configure",
    "first_order",
    "get",
    "keras_adam",
    "learned_step_sizes",
    "meta_train",
    "meta_train_sampled",
    "method_module",
    "plain_step_size",
    "reptile",
    "second_order",
]
