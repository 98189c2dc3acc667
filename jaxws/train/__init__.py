"""Training: per-example losses, the ensemble engine (fit, fit_ensemble), prediction.

`MemberData` (defined in `jaxws.data.members`) is re-exported here because it is the engine's input.
"""

from jaxws.data.members import MemberData
from jaxws.train import compile_cache
from jaxws.train.ensemble import fit, fit_ensemble, trainer_for
from jaxws.train.losses import sigmoid_binary_cross_entropy
from jaxws.train.predict import predict, predict_ensemble
from jaxws.train.state import FitResult, Hparams, TrainConfig
from jaxws.train.trainer import Trainer

# The persistent compilation cache is on for every library user, not only the CLI.
compile_cache.enable()

__all__ = [
    "FitResult",
    "Hparams",
    "MemberData",
    "TrainConfig",
    "Trainer",
    "fit",
    "fit_ensemble",
    "predict",
    "predict_ensemble",
    "sigmoid_binary_cross_entropy",
    "trainer_for",
]
