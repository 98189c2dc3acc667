"""Training: per-example losses, the pure training function and its drivers, prediction.

`train(spec, key, pool, member, hparams)` (`jaxws.train.learner`) is one fit as a pure
function of a `Learner` spec; `fit` is its jit, `fit_ensemble` its chunked vmap or `lax.map`.

`MemberData` (defined in `jaxws.data.members`) is re-exported here because it is the engine's input.
"""

from jaxws.data.members import MemberData
from jaxws.train import compile_cache
from jaxws.train.ensemble import fit, fit_ensemble, trainer_for
from jaxws.train.learner import History, Learner, keras_adam, train
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.predict import predict, predict_ensemble
from jaxws.train.state import FitResult, Hparams, TrainConfig
from jaxws.train.trainer import Trainer

# The persistent compilation cache is on for every library user, not only the CLI.
compile_cache.enable()

__all__ = [
    "FitResult",
    "History",
    "Hparams",
    "Learner",
    "MemberData",
    "TrainConfig",
    "Trainer",
    "fit",
    "fit_ensemble",
    "keras_adam",
    "predict",
    "predict_ensemble",
    "sigmoid_binary_cross_entropy",
    "train",
    "trainer_for",
]
