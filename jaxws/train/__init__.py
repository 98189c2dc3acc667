"""Training: per-example losses, the ensemble engine (fit, fit_ensemble), prediction.

`MemberData` (defined in `jaxws.data.members`) is re-exported here because it is the engine's input.
"""

from jaxws.data.members import MemberData
from jaxws.train.engine import (
    FitResult,
    Hparams,
    TrainConfig,
    Trainer,
    fit,
    fit_ensemble,
    predict,
    predict_ensemble,
)
from jaxws.train.losses import sigmoid_binary_cross_entropy

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
]
