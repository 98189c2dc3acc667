"""Transfer learning as a CWoLa study (`method=transfer`, arXiv:2312.06152 sec. 4).

Pretrain on the leave-one-out source sample (a cached artifact), then fine-tune
(`jaxws.methods.fine_tune`) on every pseudo-experiment with the same pseudo-experiments and
evaluation as CWoLa (`jaxws.methods.injection_study`); the fine-tuning settings come from the
`training` section unless set under `method.fine_tune` (the paper uses the same learning rate
and patience for CWoLa and fine-tuning).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxws.config import ConfigError, check, from_section
from jaxws.methods.pretrain import PretrainConfig, SourceSample, pretrain, source_sample
from jaxws.track.curves import log_learning_curves

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from jaxws.methods.injection_study import StudyInputs, StudyResult, StudyTrainingConfig
    from jaxws.track import Tracker


from jaxws.methods.fine_tune import TransferConfig, fine_tune


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """`method.source`: the leave-one-out source sample (pure SR events).

    Attributes:
      n_background: background events (pretraining uses them all; meta tasks draw from them).
      n_signal_per_model: events per source model.
    """

    n_background: int = 3000
    n_signal_per_model: int = 300

    def __post_init__(self):
        check(self.n_background >= 2, "method.source.n_background must be >= 2")
        check(self.n_signal_per_model >= 2, "method.source.n_signal_per_model must be >= 2")


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """`method.fine_tune`: what is frozen and re-initialised.

    Training numbers come from the `training` section unless set here.
    """

    freeze_features: bool = True
    reinit_head: bool = True
    learning_rate: float | None = None
    patience: int | None = None
    max_epochs: int | None = None

    def config(self, training: StudyTrainingConfig) -> TransferConfig:
        """The full fine-tuning settings, filling unset numbers from `training`."""
        return TransferConfig(
            learning_rate=self.learning_rate or training.learning_rate,
            patience=self.patience or training.patience,
            max_epochs=self.max_epochs or training.max_epochs,
            batch_size=training.batch_size,
            freeze_features=self.freeze_features,
            reinit_head=self.reinit_head,
            chunk_size=training.chunk_size,
        )


def method_sections(method_cfg: DictConfig, allowed_extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Split a transfer-like `method` section into validated parts (unknown keys refused)."""
    from jaxws.config import to_plain
    from jaxws.paths import absolute, cache_dir

    section = dict(to_plain(method_cfg) or {})
    known = {
        "name",
        "artifact_dir",
        "pretrain_seed",
        "source",
        "pretrain",
        "fine_tune",
        *allowed_extra,
    }
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in config section 'method'; allowed: {sorted(known)}"
        )
    return {
        "name": section.get("name", "transfer"),
        "artifact_dir": str(absolute(section.get("artifact_dir") or cache_dir() / "artifacts")),
        "pretrain_seed": section.get("pretrain_seed"),
        "source": from_section(SourceConfig, section.get("source"), "method.source"),
        "pretrain": from_section(PretrainConfig, section.get("pretrain"), "method.pretrain"),
        "fine_tune": from_section(FineTuneConfig, section.get("fine_tune"), "method.fine_tune"),
        **{k: section.get(k) for k in allowed_extra},
    }


def _used_background(inputs: StudyInputs) -> np.ndarray:
    """Pool indices the study trains, validates or tests on.

    Members of different sizes are padded to one width with index 0 at weight 0: only
    entries with weight > 0 are events a member uses.
    """
    experiments = inputs.experiments
    members = experiments.members
    used = [
        np.asarray(members.train_index)[np.asarray(members.train_weight) > 0],
        np.asarray(members.val_index)[np.asarray(members.val_weight) > 0],
        np.asarray(experiments.test_index).ravel(),
    ]
    return np.unique(np.concatenate(used))


def pretrained_for_study(
    cfg: DictConfig, inputs: StudyInputs, sections: dict, progress: bool | str = "pretraining"
) -> tuple[dict, SourceSample, bool]:
    """The leave-one-out source sample and the pretrained plain network (cached artifact).

    The pretraining key comes from `method.pretrain_seed` (default: the run's `seed`), not from
    the method's training key, so transfer, MTL and every variant share one artifact.
    """
    from jaxws.config import to_plain
    from jaxws.methods import injection_study

    source_cfg = sections["source"]
    pre = sections["pretrain"]
    if pre.n_background > source_cfg.n_background:
        raise ConfigError("method.pretrain.n_background exceeds method.source.n_background")
    if pre.n_signal > source_cfg.n_signal_per_model * (len(inputs.source.model_names()) - 1):
        raise ConfigError(
            "method.pretrain.n_signal exceeds the source signal events "
            "(method.source.n_signal_per_model x source models)"
        )
    resolution = inputs.source.config.resolution
    sample = source_sample(
        inputs.source,
        inputs.signal_name,
        source_cfg.n_background,
        source_cfg.n_signal_per_model,
        lambda events: injection_study.event_pool_images(events, inputs.source.config),
        exclude_background=_used_background(inputs),
    )
    seed = sections["pretrain_seed"]
    seed = int(cfg.seed) if seed is None else int(seed)
    artifact = {
        "architecture": to_plain(cfg.model),
        "resolution": resolution,
        "data": {
            k: v
            for k, v in dataclasses.asdict(inputs.source.config).items()
            if k not in ("signal",)
        },
        "sources": sample.sources,
        "source_sizes": dataclasses.asdict(source_cfg),
        "seed": seed,
    }
    index = sample.pretraining_subset(pre.n_signal, pre.n_background)
    variables, loaded = pretrain(
        jax.random.key(seed),
        inputs.model,
        sample.images[index],
        sample.labels[index],
        pre,
        artifact_root=sections["artifact_dir"],
        artifact_config=artifact,
        progress=progress,
    )
    return variables, sample, loaded


def study(cfg: DictConfig, inputs: StudyInputs, key: jax.Array, tracker: Tracker) -> StudyResult:
    """Transfer learning on every pseudo-experiment of the study; evaluated like CWoLa."""
    from jaxws.methods import injection_study

    sections = method_sections(cfg.method)
    variables, _, loaded = pretrained_for_study(cfg, inputs, sections)
    tracker.log_metrics({"transfer/pretrain_loaded_from_artifact": int(loaded)})
    members = inputs.experiments.members
    n = len(inputs.experiments.injection)
    start = time.perf_counter()
    result = fine_tune(
        jax.random.split(key, n),
        inputs.model,
        inputs.images,
        members,
        variables,
        sections["fine_tune"].config(inputs.training),
        progress="transfer",
        checkpoint_dir=tracker.path("checkpoints/transfer"),
    )
    log_learning_curves(tracker, "transfer", result, time.perf_counter() - start)
    return injection_study.evaluate(
        inputs, inputs.model, result.variables, result.epochs, fit=result
    )


def run(cfg: DictConfig, key: jax.Array, run_dir: Path, tracker: Tracker) -> dict:
    """The transfer-learning study: final-vs-initial significance (paper Fig. 4)."""
    from jaxws.methods import injection_study

    inputs, train_key = injection_study.prepare_from_key(cfg, key)
    result = study(cfg, inputs, train_key, tracker)
    return injection_study.report(tracker, inputs, {"Transfer": result})
