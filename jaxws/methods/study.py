"""The shared CWoLa study pipeline (arXiv:2312.06152, sec. 3): prepare, evaluate, report.

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

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import check, from_section
from jaxws.data.pseudo_experiments import (
    PseudoExperiments,
    StudyDesign,
    build_pseudo_experiments,
    pool_events,
)
from jaxws.data.sources import make_source
from jaxws.models.registry import build_model
from jaxws.stats import roc, significance
from jaxws.train import TrainConfig, predict_ensemble


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    """The `training` config group: engine settings plus per-member numbers.

    Attributes:
      learning_rate: Adam learning rate (Table 2: 1e-4 for CWoLa and fine-tuning, 1e-3 for
        pretraining and base learning).
      chunk_size: ensemble members trained at once (bounds memory; see README).
      Others: `jaxws.train.TrainConfig`.
    """

    batch_size: int = 500
    max_epochs: int = 200
    patience: int = 30
    learning_rate: float = 1e-4
    chunk_size: int = 8
    eval_batch_size: int = 2048
    min_delta: float = 0.0

    def __post_init__(self):
        check(
            self.learning_rate > 0, f"training.learning_rate must be > 0, got {self.learning_rate}"
        )
        check(self.chunk_size >= 1, f"training.chunk_size must be >= 1, got {self.chunk_size}")

    def engine(self) -> TrainConfig:
        return TrainConfig(
            self.batch_size, self.max_epochs, self.patience, self.eval_batch_size, self.min_delta
        )


@dataclasses.dataclass(frozen=True)
class StudySection(StudyDesign):
    """The `study` config group: the pseudo-experiment design plus evaluation settings.

    Attributes:
      background_efficiencies: working points eps_b for the final significance.
      relative_uncertainty: relative background systematic for eq. 8 (0 = eq. 2).
    """

    background_efficiencies: tuple[float, ...] = significance.DEFAULT_BACKGROUND_EFFICIENCIES
    relative_uncertainty: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check(
            all(0 < e <= 1 for e in self.background_efficiencies),
            "study.background_efficiencies must lie in (0, 1]",
        )
        check(
            self.relative_uncertainty >= 0,
            f"study.relative_uncertainty must be >= 0, got {self.relative_uncertainty}",
        )

    def design(self) -> StudyDesign:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(StudyDesign)}
        return StudyDesign(**fields)


@dataclasses.dataclass
class StudyInputs:
    """Everything a method needs to train and evaluate on the study's pseudo-experiments."""

    images: np.ndarray
    experiments: PseudoExperiments
    study: StudySection
    training: TrainingSection
    model: Any
    source: Any
    signal_name: str


def event_pool_images(events, resolution: int, normalize: bool = True) -> np.ndarray:
    """Jet images (N, 2, R, R) float32 of an event pool, made on the device."""
    from jaxws.data.images import event_images

    return np.asarray(
        event_images(jnp.asarray(events.constituents), resolution, normalize), np.float32
    )


def prepare(cfg, seed: int) -> StudyInputs:
    """Load events from the configured source, build pseudo-experiments and jet images."""
    source = make_source(cfg.data)
    study = from_section(StudySection, cfg.study, "study")
    training = from_section(TrainingSection, cfg.training, "training")
    model = build_model(cfg.model)
    background = source.background()
    signal = source.signal(source.config.signal)
    experiments = build_pseudo_experiments(seed, background, signal, study.design())
    images = event_pool_images(
        pool_events(background, signal), source.config.resolution, source.config.normalize_images
    )
    return StudyInputs(images, experiments, study, training, model, source, source.config.signal)


@dataclasses.dataclass
class StudyResult:
    """Per-member evaluation (leading axis E = injections x pseudo-experiments)."""

    injection: np.ndarray
    experiment: np.ndarray
    initial_z: np.ndarray
    auc: np.ndarray
    background_efficiencies: np.ndarray
    signal_efficiencies: np.ndarray  # (E, K)
    final_z: np.ndarray  # (E, K)
    best_z: np.ndarray  # (E,)
    epochs: np.ndarray


def evaluate(inputs: StudyInputs, model, variables, epochs=None) -> StudyResult:
    """Score the pure SR test sets with every member and compute efficiencies and significances.

    Args:
      inputs: the study inputs.
      model: the flax module the variables belong to.
      variables: model variables with a leading member axis E.
      epochs: (E,) epochs each member trained (for the record).
    """
    experiments, study = inputs.experiments, inputs.study
    test_images = jnp.asarray(inputs.images[experiments.test_index])
    n_members = len(experiments.injection)
    chunk = inputs.training.chunk_size
    scores = np.concatenate(
        [
            np.asarray(
                predict_ensemble(
                    model,
                    jax.tree.map(lambda a, s=start: a[s : s + chunk], variables),
                    test_images,
                    inputs.training.eval_batch_size,
                )
            )
            for start in range(0, n_members, chunk)
        ]
    )
    labels = experiments.test_label
    eps_b = np.asarray(study.background_efficiencies, float)
    eps_s = np.empty((n_members, len(eps_b)))
    auc = np.empty(n_members)
    for member in range(n_members):
        curve = roc.roc_curve(scores[member], labels)
        auc[member] = roc.area_under_curve(curve)
        eps_s[member] = [roc.signal_efficiency_at(curve, e) for e in eps_b]
    injection = experiments.injection.astype(float)
    working = significance.significance_at_working_points(
        injection,
        float(experiments.n_background_sr),
        eps_s,
        eps_b,
        relative_uncertainty=study.relative_uncertainty,
    )
    initial = significance.initial_significance(
        injection,
        float(experiments.n_background_sr),
        relative_uncertainty=study.relative_uncertainty,
    )
    return StudyResult(
        injection=experiments.injection,
        experiment=experiments.experiment,
        initial_z=np.asarray(initial),
        auc=auc,
        background_efficiencies=eps_b,
        signal_efficiencies=eps_s,
        final_z=np.asarray(working.significance),
        best_z=np.asarray(working.best_significance),
        epochs=np.zeros(n_members, int) if epochs is None else np.asarray(epochs),
    )


def _by_injection(result: StudyResult, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(injections, values reshaped to (n_injections, n_pseudo_experiments))."""
    injections = np.unique(result.injection)
    table = np.stack([values[result.injection == i] for i in injections])
    return injections, table


def signal_for_discovery(injections, initial_z, final_z_table, target: float = 5.0):
    """Injected SR signal at which the final significance first reaches `target`.

    Linear interpolation in (injection, final Z) between the study points, per
    pseudo-experiment (columns of `final_z_table`) and for the mean curve. NaN where the
    curve never reaches the target within the studied range.

    Returns:
      (signal for the mean curve, per-pseudo-experiment signals (n_pseudo_experiments,)).
    """

    def crossing(z):
        above = np.flatnonzero(z >= target)
        if len(above) == 0:
            return np.nan
        k = above[0]
        if k == 0:
            return float(injections[0])
        x0, x1, z0, z1 = injections[k - 1], injections[k], z[k - 1], z[k]
        return float(x0 + (target - z0) * (x1 - x0) / (z1 - z0))

    per_run = np.array([crossing(final_z_table[:, j]) for j in range(final_z_table.shape[1])])
    return crossing(final_z_table.mean(axis=1)), per_run


def summarise(results: dict[str, StudyResult]) -> tuple[dict[str, float], list[dict]]:
    """Scalar metrics and a per-(method, injection) table."""
    metrics: dict[str, float] = {}
    rows = []
    for method, result in results.items():
        injections, best = _by_injection(result, result.best_z)
        _, auc = _by_injection(result, result.auc)
        _, initial = _by_injection(result, result.initial_z)
        for k, injection in enumerate(injections):
            rows.append(
                {
                    "method": method,
                    "injection": int(injection),
                    "initial_z": float(initial[k, 0]),
                    "final_z_mean": float(best[k].mean()),
                    "final_z_std": float(best[k].std(ddof=1)) if best.shape[1] > 1 else 0.0,
                    "auc_mean": float(auc[k].mean()),
                    "auc_std": float(auc[k].std(ddof=1)) if auc.shape[1] > 1 else 0.0,
                }
            )
        mean_signal, per_run = signal_for_discovery(injections, initial[:, 0], best)
        key = method.lower().replace(" ", "_").replace("-", "_")
        metrics[f"{key}/signal_for_5sigma"] = mean_signal
        finite = per_run[np.isfinite(per_run)]
        metrics[f"{key}/signal_for_5sigma_std"] = (
            float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
        )
        metrics[f"{key}/runs_reaching_5sigma"] = int(len(finite))
        zero = result.injection == 0
        if zero.any():
            metrics[f"{key}/no_signal_auc_mean"] = float(result.auc[zero].mean())
            ratio = result.signal_efficiencies[zero] / result.background_efficiencies
            metrics[f"{key}/no_signal_eps_ratio_mean"] = float(ratio.mean())
        top = injections.max()
        metrics[f"{key}/auc_at_max_injection"] = float(result.auc[result.injection == top].mean())
    return metrics, rows


def _figure_label(inputs: StudyInputs) -> str:
    from jaxws import plotting

    return plotting.sample_label(
        getattr(inputs.source.config, "source", "events"),
        inputs.signal_name,
        inputs.images.shape[-1],
        inputs.study.n_background_sr,
        inputs.study.n_pseudo_experiments,
    )


def report(
    tracker, inputs: StudyInputs, results: dict[str, StudyResult], figure_name: str = "significance"
) -> dict[str, Any]:
    """Write tables and figures for one or more methods; returns the scalar metrics."""
    from jaxws import plotting

    metrics, rows = summarise(results)
    tracker.save_table("study", rows)
    working_rows = []
    for method, result in results.items():
        for m in range(len(result.injection)):
            for k, e in enumerate(result.background_efficiencies):
                working_rows.append(
                    {
                        "method": method,
                        "injection": int(result.injection[m]),
                        "experiment": int(result.experiment[m]),
                        "background_efficiency": float(e),
                        "signal_efficiency": float(result.signal_efficiencies[m, k]),
                        "final_z": float(result.final_z[m, k]),
                        "auc": float(result.auc[m]),
                        "epochs": int(result.epochs[m]),
                    }
                )
    tracker.save_table("working_points", working_rows)
    first = next(iter(results.values()))
    injections, initial = _by_injection(first, first.initial_z)
    curves = {method: _by_injection(r, r.best_z)[1] for method, r in results.items()}
    mask = injections > 0
    fig = plotting.significance_curve(
        None,
        initial[mask, 0],
        {m: c[mask] for m, c in curves.items()},
        title=_figure_label(inputs),
        discovery_z=5.0,
    )
    path = tracker.save_figure(figure_name, fig)
    metrics["figure"] = str(path)
    zero = first.injection == 0
    if zero.any():
        control = {m: (r.signal_efficiencies[r.injection == 0]).T for m, r in results.items()}
        fig = plotting.no_signal_control(
            None,
            first.background_efficiencies,
            control,
            n_test_signal=inputs.study.n_test_signal,
            n_test_background=inputs.study.n_test_background,
            title=_figure_label(inputs),
        )
        tracker.save_figure(f"{figure_name}_no_signal_control", fig)
    tracker.log_metrics({k: v for k, v in metrics.items() if k != "figure"})
    return metrics
