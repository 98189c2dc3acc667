"""Meta-learners as values: a learner is a record of parts; the variants are a dict of records.

A `MetaLearner` says which parameters base learning adapts (`adapted`), which the outer
update moves (`meta_trained`), the inner step-size rule, the meta-gradient estimator, the
outer optimizer (an optax transformation; the outer step is `-outer_lr` times its update,
so the rate stays a per-run pytree leaf) and how phase 3 fine-tunes the meta-trained network.
The outer loop (`jaxws.methods.meta.outer`) calls exactly these parts. A new variant is one
entry in `VARIANTS` and a short YAML on conf/method/meta_base.yaml (docs/meta_learning.md).

`configure` applies the `method.meta` flags that replace parts (`first_order`,
`outer_optimizer`) and refuses combinations that mean nothing, naming the key.
"""

from __future__ import annotations

import dataclasses

import jax
import optax

from jaxws.config import ConfigError
from jaxws.methods.meta import estimators
from jaxws.methods.meta.config import MetaConfig, MetaHparams
from jaxws.methods.meta.estimators import Estimator
from jaxws.methods.meta.inner import MetaState, StepSizeRule, learned_step_sizes, plain_step_size
from jaxws.models import partition


def keras_adam() -> optax.GradientTransformation:
    """Adam's direction with Keras' defaults (the paper's optimizer); no learning rate."""
    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)


OUTER_OPTIMIZERS = {"adam": keras_adam, "sgd": optax.identity}
PLAIN_STEP_SIZE = plain_step_size()
KERAS_ADAM = keras_adam()


@dataclasses.dataclass(frozen=True)
class FineTune:
    """Phase 3 (CWoLa fine-tuning) of the meta-trained network.

    Attributes:
      trainable: parameters trained on the CWoLa task (MTL scale/shift never are).
      reinit: parameters re-initialised before (None: none).
    """

    trainable: partition.Predicate = partition.is_network_parameter
    reinit: partition.Predicate | None = None


@dataclasses.dataclass(frozen=True)
class MetaLearner:
    """A meta-learner as a record of parts.

    Attributes:
      adapted: parameters changed by base learning (the inner loop).
      meta_trained: parameters changed by the outer update.
      step_size: the inner step-size rule (its meta-parameters are meta-trained too).
      estimator: the meta-gradient estimator (`estimators.second_order`, ...).
      outer_optimizer: optax transformation giving the outer update's direction.
      fine_tune: phase-3 treatment.
      uses_meta_parameters: the network carries MTL scale/shift (model `meta=True`).
    """

    adapted: partition.Predicate = partition.is_network_parameter
    meta_trained: partition.Predicate = partition.is_network_parameter
    step_size: StepSizeRule = PLAIN_STEP_SIZE
    estimator: Estimator = estimators.second_order
    outer_optimizer: optax.GradientTransformation = KERAS_ADAM
    fine_tune: FineTune = FineTune()
    uses_meta_parameters: bool = False

    def __post_init__(self):
        if self.estimator is estimators.reptile and self.step_size != PLAIN_STEP_SIZE:
            raise ValueError(
                "a learned inner step size gets no gradient from Reptile's parameter difference"
            )

    def init(self, params: dict, hparams: MetaHparams) -> MetaState:
        """Meta-state from starting parameters (adds the step-size rule's meta-parameters).

        Raises:
          ValueError: the learner adapts or meta-trains no parameter of this network.
        """
        adapted, _ = partition.split(params, self.adapted)
        trained, _ = partition.split(params, self.meta_trained)
        if not adapted or not trained:
            part = "adapts" if not adapted else "meta-trains"
            raise ValueError(f"the learner {part} no parameter of this network")
        return MetaState(params=params, extra=self.step_size.init(adapted, hparams))


def _head_or_meta(path: partition.Path) -> bool:
    return partition.is_head(path) or partition.is_meta(path)


VARIANTS: dict[str, MetaLearner] = {
    # MAML (Finn et al. 2017): every network parameter adapted and meta-trained, second order.
    "maml": MetaLearner(),
    "fomaml": MetaLearner(estimator=estimators.first_order),
    # Reptile (Nichol et al. 2018): outer step towards the adapted parameters.
    "reptile": MetaLearner(estimator=estimators.reptile),
    # ANIL (Raghu et al. 2020): inner loop on the head only; fine-tuning trains the head.
    "anil": MetaLearner(adapted=partition.is_head, fine_tune=FineTune(partition.is_head)),
    # Meta-SGD (Li et al. 2017): MAML with a learned per-parameter inner step size.
    "meta_sgd": MetaLearner(step_size=learned_step_sizes()),
    # MTL (Sun et al. 2019; arXiv:2312.06152 sec. 5): base learning on theta; the outer update
    # moves theta, S and S-bar with Theta frozen; theta re-initialised before fine-tuning.
    "mtl": MetaLearner(
        adapted=partition.is_head,
        meta_trained=_head_or_meta,
        fine_tune=FineTune(trainable=partition.is_head, reinit=partition.is_head),
        uses_meta_parameters=True,
    ),
}


def available() -> list[str]:
    """Names of the meta-learning variants (`method=<name>`)."""
    return sorted(VARIANTS)


def get(name: str) -> MetaLearner:
    """The variant `name`.

    Raises:
      ConfigError: unknown name (the message lists the variants).
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown meta-learner {name!r}; variants: {available()}")
    return VARIANTS[name]


def configure(learner: MetaLearner, config: MetaConfig) -> MetaLearner:
    """`learner` with the parts `config` replaces (`first_order`, `outer_optimizer`).

    Raises:
      ConfigError: a flag that means nothing for this learner, naming the key.
    """
    replace = {}
    if config.first_order is not None:
        if learner.estimator not in estimators.DIFFERENTIATING:
            raise ConfigError(
                f"meta.first_order means nothing for a learner whose estimator is "
                f"{learner.estimator.__name__!r} (no meta-loss is differentiated); leave it null"
            )
        if not config.first_order and learner.estimator is estimators.first_order:
            raise ConfigError(
                "meta.first_order = false contradicts a first-order learner (fomaml); "
                "use method=maml for second order"
            )
        replace["estimator"] = estimators.DIFFERENTIATING[int(config.first_order)]
    if config.outer_optimizer is not None:
        replace["outer_optimizer"] = OUTER_OPTIMIZERS[config.outer_optimizer]()
    return dataclasses.replace(learner, **replace)


def outer_step(
    learner: MetaLearner, outer: tuple, opt_state: optax.OptState, grads: tuple, outer_lr: jax.Array
) -> tuple[tuple, optax.OptState]:
    """One outer step at gamma = `outer_lr` (eq. 7) on `(meta-trained params, extra)`."""
    updates, opt_state = learner.outer_optimizer.update(grads, opt_state, outer)
    return jax.tree.map(lambda p, u: p - outer_lr * u, outer, updates), opt_state
