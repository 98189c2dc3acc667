"""The CWoLa study with a meta-learning variant (`method=mtl`, `maml`, `fomaml`, `reptile`, ...).

arXiv:2312.06152 sec. 5, for any registered learner:
  phase 1: pretraining on the leave-one-out source mixture with S = 1, S-bar = 0 (the plain
           network's cached artifact, shared with transfer learning: S = 1, S-bar = 0 is the
           plain network exactly);
  phase 2: meta-training over the task family, one task per source model: pure SR signal of
           that model (`method.tasks.n_signal`, 2.5k in the paper) against background
           (`n_background`, 2.5k), a fifth for validation; the pretrained theta is kept; a
           finite task set (`tasks.gather_tasks`) in the episodic loop (`outer.MetaTrainer`),
           its state saved after every episode (`checkpoints/<name>-meta`) so a killed run
           resumes there;
  phase 3: fine-tuning on every pseudo-experiment's CWoLa task with the engine, with the
           learner's choice of trainable and re-initialised parameters (MTL: theta
           re-initialised and trained; Theta, S, S-bar frozen), then the same evaluation as
           CWoLa and transfer (`jaxws.methods.study.evaluate`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxws.config import ConfigError, check, from_section
from jaxws.methods import transfer
from jaxws.methods.fine_tune import fine_tune
from jaxws.methods.meta import learners
from jaxws.methods.meta.config import MetaConfig, MetaHparams
from jaxws.methods.meta.inner import InnerProblem
from jaxws.methods.meta.training import meta_train
from jaxws.models import partition, surgery
from jaxws.track.curves import log_learning_curves
from jaxws.train import MemberData, TrainConfig, Trainer

if TYPE_CHECKING:
    from flax import linen as nn
    from omegaconf import DictConfig

    from jaxws.methods.injection_study import StudyInputs, StudyResult
    from jaxws.methods.meta.outer import MetaResult
    from jaxws.methods.pretrain import SourceSample
    from jaxws.track.tracker import Tracker


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """`method.tasks`: events per task (pure SR samples) and the validation share."""

    n_signal: int = 100
    n_background: int = 100
    validation_fraction: float = 0.2

    def __post_init__(self):
        check(self.n_signal >= 2, "method.tasks.n_signal must be >= 2")
        check(self.n_background >= 2, "method.tasks.n_background must be >= 2")
        check(
            0 < self.validation_fraction < 1, "method.tasks.validation_fraction must be in (0, 1)"
        )


def task_family(key: jax.Array, sample: SourceSample, tasks: TaskConfig) -> MemberData:
    """One task per source model: its signal vs a random background subset; stratified split.

    Signal events are the last `n_signal` of the model in the source sample (pretraining
    takes the first ones); background subsets are drawn per task without replacement.

    Returns:
      `MemberData` with a leading task axis (one row per source model).
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    background = np.flatnonzero(sample.model_index == -1)
    if len(background) < tasks.n_background:
        raise ConfigError(
            f"{len(background)} source background events, a task needs {tasks.n_background}"
        )
    rows = []
    for k, name in enumerate(sample.sources):
        signal = np.flatnonzero(sample.model_index == k)
        if len(signal) < tasks.n_signal:
            raise ConfigError(
                f"source model {name!r} has {len(signal)} events, a task needs {tasks.n_signal}"
            )
        train, val = [], []
        for index in (
            signal[-tasks.n_signal :],
            rng.choice(background, tasks.n_background, replace=False),
        ):
            index = rng.permutation(index)
            n_val = max(1, round(tasks.validation_fraction * len(index)))
            val.append(index[:n_val])
            train.append(index[n_val:])
        train, val = np.concatenate(train), np.concatenate(val)
        rows.append(MemberData.from_arrays(train, sample.labels[train], val, sample.labels[val]))
    return jax.tree.map(lambda *a: np.stack(a), *rows)


def _sections(cfg: DictConfig) -> dict:
    """The method's sections as values; `learner` is the variant configured by `method.meta`."""
    fine_tune = cfg.method.get("fine_tune") or {}
    chosen = sorted({"freeze_features", "reinit_head"} & set(fine_tune))
    if chosen:  # accepted and ignored otherwise
        raise ConfigError(
            f"method.fine_tune.{chosen[0]} does not apply to method={cfg.method.name}: the "
            "meta-learner chooses the parameters fine-tuning trains and re-initialises"
        )
    sections = transfer.method_sections(cfg.method, ("meta", "tasks", "inner_lr", "outer_lr"))
    sections["meta"] = from_section(MetaConfig, sections["meta"], "method.meta")
    sections["tasks"] = from_section(TaskConfig, sections["tasks"], "method.tasks")
    sections["learner"] = learners.configure(learners.get(str(cfg.method.name)), sections["meta"])
    for name in ("inner_lr", "outer_lr"):  # no second default here: the YAML holds it
        value = sections[name]
        check(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"method.{name} must be a number (conf/method/meta_base.yaml), got {value!r}",
        )
    hparams = MetaHparams(
        inner_lr=float(sections["inner_lr"]), outer_lr=float(sections["outer_lr"])
    )
    for name in ("inner_lr", "outer_lr"):
        value = getattr(hparams, name)
        check(
            np.isfinite(value) and value > 0, f"method.{name} must be finite and > 0, got {value}"
        )
    sections["hparams"] = hparams
    return sections


def meta_transfer(
    cfg: DictConfig, inputs: StudyInputs, key: jax.Array, tracker: Tracker, name: str
) -> tuple[nn.Module, Any, MetaResult]:
    """Phases 1-3 for learner `name`; returns (model, fine-tuning FitResult, MetaResult)."""
    sections = _sections(cfg)
    learner = sections["learner"]
    variables, sample, loaded = transfer.pretrained_for_study(cfg, inputs, sections)
    model = inputs.model
    if learner.uses_meta_parameters:
        model = model.clone(meta=True)
        template = Trainer(model, TrainConfig()).init_variables(jax.random.key(0), sample.images)
        variables = surgery.add_meta_parameters(variables, template)
    variables = jax.tree.map(np.asarray, variables)
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}

    def apply_fn(params: dict, model_state: dict, x: jax.Array) -> jax.Array:
        return model.apply({"params": params, **model_state}, x, train=False)

    problem = InnerProblem.from_config(apply_fn, sections["meta"])
    task_key, meta_key, tune_key = jax.random.split(key, 3)
    tasks = task_family(task_key, sample, sections["tasks"])
    result = meta_train(
        learner,
        problem,
        sections["meta"],
        meta_key,
        params,
        model_state,
        sample.images,
        tasks,
        sections["hparams"],
        progress=f"meta-train {name}",
        checkpoint_dir=tracker.path(f"checkpoints/{name}-meta"),
    )
    meta_variables = {**variables, "params": result.state.params}
    n = len(inputs.experiments.injection)
    fit = fine_tune(
        jax.random.split(tune_key, n),
        model,
        inputs.images,
        inputs.experiments.members,
        meta_variables,
        sections["fine_tune"].config(inputs.training),
        trainable=_without_meta(learner.fine_tune.trainable),
        reinit=learner.fine_tune.reinit,
        progress=f"fine-tune {name}",
        checkpoint_dir=tracker.path(f"checkpoints/{name}"),
    )
    log_learning_curves(tracker, name, fit)
    label = name.lower()
    tracker.log_metrics(
        {
            f"{label}/pretrain_loaded_from_artifact": int(loaded),
            f"{label}/meta_episodes": int(result.episodes),
            f"{label}/meta_best_episode": int(result.best_episode),
            f"{label}/meta_best_loss": float(np.nanmin(np.asarray(result.history))),
        }
    )
    return model, fit, result


def _without_meta(predicate: partition.Predicate) -> partition.Predicate:
    # Phase 3 never trains S or S-bar (the paper keeps them fixed).
    return lambda path: predicate(path) and not partition.is_meta(path)


def study(
    cfg: DictConfig, inputs: StudyInputs, key: jax.Array, tracker: Tracker, name: str | None = None
) -> StudyResult:
    """The learner `name` (default `method.name`) on every pseudo-experiment; CWoLa evaluation."""
    from jaxws.methods import injection_study

    name = name or str(cfg.method.name)
    model, fit, _ = meta_transfer(cfg, inputs, key, tracker, name)
    return injection_study.evaluate(inputs, model, fit.variables, fit.epochs, fit=fit)


def run(
    cfg: DictConfig, key: jax.Array, run_dir: Path, tracker: Tracker, name: str | None = None
) -> dict:
    """The study of one meta-learning variant: final-vs-initial significance (paper Fig. 5)."""
    from jaxws.methods import injection_study

    name = name or str(cfg.method.name)
    inputs, train_key = injection_study.prepare_from_key(cfg, key)
    result = study(cfg, inputs, train_key, tracker, name)
    return injection_study.report(tracker, inputs, {name.upper(): result})


def validate(cfg: DictConfig) -> None:
    """Check the study's sections (shared study checks) and this method's, naming the key."""
    from jaxws.methods import injection_study

    injection_study.validate(cfg)
    _sections(cfg)


def method_module(name: str) -> types.SimpleNamespace:
    """The study method of variant `name` (what `jaxws.methods.load` returns).

    Returns:
      An object with `study(cfg, inputs, key, tracker)`, `run(cfg, key, run_dir, tracker)`
      and `validate(cfg)`.

    Raises:
      ConfigError: `name` is not a variant.
    """
    learners.get(name)  # unknown names fail here, with the list of variants
    return types.SimpleNamespace(
        name=name,
        study=functools.partial(study, name=name),
        run=functools.partial(run, name=name),
        validate=validate,
    )
