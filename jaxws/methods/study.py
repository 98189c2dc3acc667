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
from jaxws.models.registry import build_model
from jaxws.simulate.sources import make_source
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
    background_mjj: np.ndarray | None = None
    background_region: np.ndarray | None = None


def event_pool_images(events, data_config) -> np.ndarray:
    """Jet images of an event pool as the data config asks (resolution, normalisation,
    channels): (N, 2, R, R) float32 for one channel, (N, 2, R, R, K) for K; made on the device.
    """
    from jaxws.config import ConfigError
    from jaxws.data.images import event_images

    constituents = np.asarray(events.constituents)
    if constituents.ndim != 4 or constituents.shape[2] == 0:
        raise ConfigError(
            f"jet images need constituents (N, 2, C, 3) with C >= 1; the events hold "
            f"{constituents.shape}"
        )
    empty = np.flatnonzero(~np.any(constituents[..., 0] > 0, axis=2).all(axis=1))
    if len(empty):
        raise ConfigError(
            f"jet images need constituents: {len(empty)} of {len(constituents)} events have a "
            f"jet without any (first event index {empty[0]})"
        )
    images = event_images(
        jnp.asarray(events.constituents),
        data_config.resolution,
        data_config.normalize_images,
        channels=tuple(getattr(data_config, "channels", ("pt",))),
    )
    return np.asarray(images, np.float32)


def validate(cfg) -> None:
    """Check the sections a study method uses and its input files, before anything is written.

    Refuses (with `ConfigError`) bad `data`, `study`, `training` and `model` sections, shard
    sources that are missing or lack the chosen models, and designs that need more events than
    the data section can provide (the exact per-region counts are checked again once the
    events exist).
    """
    source = make_source(cfg.get("data"))
    study = from_section(StudySection, cfg.get("study"), "study")
    from_section(TrainingSection, cfg.get("training"), "training")
    build_model(cfg.get("model"))
    config = source.config
    if hasattr(config, "check_inputs"):
        config.check_inputs()
    elif getattr(config, "source", "") == "simulator":
        need_background = study.n_test_background + study.n_background_sr
        need_signal = study.n_test_signal + max(study.injections)
        check(
            config.n_background >= need_background,
            f"data.n_background {config.n_background} is fewer than the study's SR background "
            f"alone (study.n_test_background + study.n_background_sr = {need_background})",
        )
        check(
            config.n_signal >= need_signal,
            f"data.n_signal {config.n_signal} is fewer than the study's SR signal alone "
            f"(study.n_test_signal + largest injection = {need_signal})",
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
    images = event_pool_images(pool_events(background, signal), source.config)
    return StudyInputs(
        images,
        experiments,
        study,
        training,
        model,
        source,
        source.config.signal,
        background_mjj=np.asarray(background.mjj),
        background_region=np.asarray(background.region),
    )


#: A member whose best validation loss stays above this never beat predicting one half for
#: every event (binary cross-entropy ln 2 nats, about what a fresh initialisation scores), by
#: half again: it never improved on its initial validation loss, which the engine does not record.
DIVERGED_LOSS = 1.5 * float(np.log(2.0))


def diverged_members(fit, max_loss: float = DIVERGED_LOSS) -> list[str]:
    """Why each member of an ensemble fit is unusable ('' for a healthy member).

    A member is flagged when a training or validation loss of an epoch it ran is NaN or inf,
    when no epoch had a finite validation loss (the engine then keeps its initial weights,
    best epoch -1), or when its best validation loss stays above `max_loss` (see
    `DIVERGED_LOSS`). Derived from the engine's `FitResult` alone.

    Args:
      fit: a `FitResult` with a leading member axis (train_loss, val_loss: (E, max_epochs),
        NaN after a member stopped; best_epoch, best_val_loss, epochs: (E,)).
      max_loss: best validation loss above which a member counts as never improved.

    Returns:
      One reason string per member.
    """
    train = np.asarray(fit.train_loss, float).reshape(len(np.asarray(fit.epochs)), -1)
    val = np.asarray(fit.val_loss, float).reshape(train.shape)
    ran = np.arange(train.shape[1])[None, :] < np.asarray(fit.epochs)[:, None]
    bad = ran & ~(np.isfinite(train) & np.isfinite(val))
    best_epoch = np.asarray(fit.best_epoch)
    best_loss = np.asarray(fit.best_val_loss, float)
    reasons = []
    for member in range(len(train)):
        if bad[member].any():
            epoch = int(np.argmax(bad[member]))
            reasons.append(f"loss not finite from epoch {epoch}")
        elif best_epoch[member] < 0 or not np.isfinite(best_loss[member]):
            reasons.append("no finite validation loss; initial weights kept")
        elif best_loss[member] > max_loss:
            reasons.append(
                f"never improved: best validation loss {best_loss[member]:.3g} > {max_loss:.3g}"
            )
        else:
            reasons.append("")
    return reasons


@dataclasses.dataclass
class StudyResult:
    """Per-member evaluation (leading axis E = injections x pseudo-experiments).

    `diverged` holds, per member, why it is unusable ('' if it is fine, see
    `diverged_members`); flagged members are kept in the per-member tables but left out of
    every mean, spread and discovery estimate, with their number stated.
    """

    injection: np.ndarray
    experiment: np.ndarray
    initial_z: np.ndarray
    auc: np.ndarray
    background_efficiencies: np.ndarray
    signal_efficiencies: np.ndarray  # (E, K)
    final_z: np.ndarray  # (E, K)
    best_z: np.ndarray  # (E,)
    epochs: np.ndarray
    sculpting: Any = None  # jaxws.methods.sculpting.Sculpting of the no-signal members
    diverged: list[str] = dataclasses.field(default_factory=list)

    def usable(self) -> np.ndarray:
        """(E,) True for members that did not diverge."""
        if not self.diverged:
            return np.ones(len(self.injection), bool)
        return np.array([not reason for reason in self.diverged])


def evaluate(inputs: StudyInputs, model, variables, epochs=None, fit=None) -> StudyResult:
    """Score the pure SR test sets with every member and compute efficiencies and significances.

    Args:
      inputs: the study inputs.
      model: the flax module the variables belong to.
      variables: model variables with a leading member axis E.
      epochs: (E,) epochs each member trained (for the record).
      fit: the engine's `FitResult`, if any: its losses flag diverged members.
    """
    experiments, study = inputs.experiments, inputs.study
    n_members = len(experiments.injection)
    chunk = inputs.training.chunk_size

    def score(members: np.ndarray, images: np.ndarray) -> np.ndarray:
        images = jnp.asarray(images)
        return np.concatenate(
            [
                np.asarray(
                    predict_ensemble(
                        model,
                        jax.tree.map(lambda a, m=members[s : s + chunk]: a[m], variables),
                        images,
                        inputs.training.eval_batch_size,
                    )
                )
                for s in range(0, len(members), chunk)
            ]
        )

    scores = score(np.arange(n_members), inputs.images[experiments.test_index])
    sculpted = None
    no_signal = np.flatnonzero(experiments.injection == 0)
    if len(no_signal) and inputs.background_mjj is not None:
        from jaxws.methods.sculpting import sculpting_check

        n_background = len(inputs.background_mjj)
        sculpted = sculpting_check(
            score(no_signal, inputs.images[:n_background]),
            inputs.background_mjj,
            inputs.background_region,
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
        sculpting=sculpted,
        diverged=[""] * n_members if fit is None else diverged_members(fit),
    )


def _by_injection(
    result: StudyResult, values: np.ndarray, usable_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(injections, values reshaped to (n_injections, n_pseudo_experiments)); with
    `usable_only`, diverged members' entries are NaN."""
    values = np.asarray(values, float)
    if usable_only:
        values = np.where(result.usable(), values, np.nan)
    injections = np.unique(result.injection)
    table = np.stack([values[result.injection == i] for i in injections])
    return injections, table


def _spread(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.std(ddof=1)) if len(finite) > 1 else 0.0


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _plotted_runs(result: StudyResult) -> np.ndarray:
    """Best final Z (n_injections, n_runs) of the pseudo-experiments without diverged members
    (all of them when none diverged; the per-injection mean over usable members if every
    pseudo-experiment has one)."""
    _, table = _by_injection(result, result.best_z, usable_only=True)
    complete = np.isfinite(table).all(axis=0)
    if complete.any():
        return table[:, complete]
    return np.array([[_mean(row)] for row in table])


def report_diverged(results: dict[str, StudyResult]) -> list[dict]:
    """Print one console line per method with diverged members; returns them as rows."""
    import sys

    rows = []
    for method, result in results.items():
        flagged = [m for m, reason in enumerate(result.diverged) if reason]
        if not flagged:
            continue
        detail = "; ".join(
            f"member {m} (injection {int(result.injection[m])}, experiment "
            f"{int(result.experiment[m])}): {result.diverged[m]}"
            for m in flagged
        )
        print(
            f"jaxws: warning: {method}: {len(flagged)} of {len(result.diverged)} members "
            f"diverged and are left out of means and spreads: {detail}",
            file=sys.stderr,
        )
        rows += [
            {
                "method": method,
                "member": m,
                "injection": int(result.injection[m]),
                "experiment": int(result.experiment[m]),
                "reason": result.diverged[m],
            }
            for m in flagged
        ]
    return rows


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


def learning_threshold(initial_z: np.ndarray, final_z: np.ndarray) -> float:
    """Initial significance at which the final-vs-initial curve crosses the slope-1 line.

    The learning threshold of arXiv:2312.06152 (sec. 3, Fig. 3): below it the classifier cut
    costs significance (final < initial), above it the classifier has learned the signal.
    Taken as the last upward crossing of final - initial through 0, by linear
    interpolation between the study points (in order of increasing initial Z). Returns the
    first point's initial Z if the curve is above the line everywhere, NaN if it never
    ends above it.
    """
    excess = np.asarray(final_z, float) - np.asarray(initial_z, float)
    if excess[-1] < 0:
        return float("nan")
    below = np.flatnonzero(excess < 0)
    if len(below) == 0:
        return float(initial_z[0])
    k = below[-1]
    x0, x1, e0, e1 = initial_z[k], initial_z[k + 1], excess[k], excess[k + 1]
    return float(x0 + (0.0 - e0) * (x1 - x0) / (e1 - e0))


def bootstrap_thresholds(
    injections: np.ndarray,
    initial_z: np.ndarray,
    final_z_table: np.ndarray,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Learning threshold and signal for 5 sigma of the mean curve, with bootstrap errors.

    The mean curve is the mean over pseudo-experiments (columns of `final_z_table`) at each
    injection (rows); a bootstrap replicate resamples the pseudo-experiments with replacement
    independently at each injection (they are independent trainings). The quoted
    uncertainties are the standard deviations of the replicates that cross (NaN when fewer
    than half do); the central values come from the observed mean curve.

    Returns:
      threshold_z, threshold_z_std, signal_for_5sigma, signal_for_5sigma_std and the fraction
      of replicates in which each is defined.
    """
    rng = np.random.default_rng(seed)
    n_points, n_runs = final_z_table.shape
    mean = np.nanmean(final_z_table, axis=1)
    thresholds, signals = np.empty(n_bootstrap), np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        pick = rng.integers(0, n_runs, size=(n_points, n_runs))
        with np.errstate(invalid="ignore"):
            curve = np.nanmean(np.take_along_axis(final_z_table, pick, axis=1), axis=1)
        thresholds[b] = learning_threshold(initial_z, curve)
        signals[b] = signal_for_discovery(injections, initial_z, curve[:, None])[0]

    def spread(values):
        finite = values[np.isfinite(values)]
        return float(finite.std(ddof=1)) if len(finite) >= max(2, n_bootstrap // 2) else np.nan

    excess = mean - np.asarray(initial_z, float)
    if excess[-1] < 0:
        kind = "not reached"  # below the line at the largest injection: threshold above range
    elif np.all(excess >= 0):
        kind = "below range"  # above the line everywhere: threshold_z is an upper bound
    else:
        kind = "crossing"
    return {
        "threshold_kind": kind,
        "threshold_z": learning_threshold(initial_z, mean),
        "threshold_z_std": spread(thresholds),
        "signal_for_5sigma": signal_for_discovery(injections, initial_z, mean[:, None])[0],
        "signal_for_5sigma_std": spread(signals),
        "threshold_defined": float(np.isfinite(thresholds).mean()),
        "signal_defined": float(np.isfinite(signals).mean()),
    }


def threshold_table(results: dict[str, StudyResult], reference: str = "CWoLa") -> list[dict]:
    """Per method: learning threshold and signal for 5 sigma (bootstrap errors), ratio to CWoLa.

    Only injections > 0 enter (the curve of final against initial significance).
    `ratio_to_cwola` is signal_for_5sigma / CWoLa's (NaN if either is undefined or CWoLa
    is not among the methods).
    """
    rows = []
    for method, result in results.items():
        # Diverged members (NaN) are left out of the mean curves and the bootstrap.
        injections, best = _by_injection(result, result.best_z, usable_only=True)
        _, initial = _by_injection(result, result.initial_z)
        keep = injections > 0
        numbers = bootstrap_thresholds(injections[keep], initial[keep, 0], best[keep])
        rows.append({"method": method} | numbers)
    signals = {row["method"]: row["signal_for_5sigma"] for row in rows}
    for row in rows:
        base = signals.get(reference, np.nan)
        row["ratio_to_cwola"] = float(row["signal_for_5sigma"] / base) if base else np.nan
    order = [
        "method",
        "threshold_z",
        "threshold_z_std",
        "signal_for_5sigma",
        "signal_for_5sigma_std",
        "ratio_to_cwola",
        "threshold_kind",
        "threshold_defined",
        "signal_defined",
    ]
    return [{k: row[k] for k in order} for row in rows]


def summarise(results: dict[str, StudyResult]) -> tuple[dict[str, float], list[dict]]:
    """Scalar metrics and a per-(method, injection) table."""
    metrics: dict[str, float] = {}
    rows = []
    for method, result in results.items():
        usable = result.usable()
        injections, best = _by_injection(result, result.best_z, usable_only=True)
        _, auc = _by_injection(result, result.auc, usable_only=True)
        _, initial = _by_injection(result, result.initial_z)
        for k, injection in enumerate(injections):
            rows.append(
                {
                    "method": method,
                    "injection": int(injection),
                    "initial_z": float(initial[k, 0]),
                    "final_z_mean": _mean(best[k]),
                    "final_z_std": _spread(best[k]),
                    "auc_mean": _mean(auc[k]),
                    "auc_std": _spread(auc[k]),
                    "n_diverged": int(np.sum(~np.isfinite(best[k]))),
                }
            )
        # A pseudo-experiment with a diverged member at any injection has no curve of its own.
        mean_curve = np.array([[_mean(row)] for row in best])
        mean_signal, _ = signal_for_discovery(injections, initial[:, 0], mean_curve)
        complete = np.isfinite(best).all(axis=0)
        _, per_run = signal_for_discovery(injections, initial[:, 0], best[:, complete])
        key = method.lower().replace(" ", "_").replace("-", "_")
        metrics[f"{key}/n_diverged"] = int((~usable).sum())
        metrics[f"{key}/signal_for_5sigma"] = mean_signal
        finite = per_run[np.isfinite(per_run)]
        metrics[f"{key}/signal_for_5sigma_std"] = (
            float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
        )
        metrics[f"{key}/runs_reaching_5sigma"] = int(len(finite))
        zero = (result.injection == 0) & usable
        if zero.any():
            metrics[f"{key}/no_signal_auc_mean"] = float(result.auc[zero].mean())
            ratio = result.signal_efficiencies[zero] / result.background_efficiencies
            metrics[f"{key}/no_signal_eps_ratio_mean"] = float(ratio.mean())
        top = (result.injection == injections.max()) & usable
        metrics[f"{key}/auc_at_max_injection"] = (
            float(result.auc[top].mean()) if top.any() else float("nan")
        )
    return metrics, rows


def _report_sculpting(tracker, inputs, results, metrics, figure_name) -> None:
    """`sculpting.csv`, the mjj figure and the largest |pull| per method (sculpting.py)."""
    from jaxws.methods.sculpting import sculpting_figure, sculpting_rows

    checked = {m: r.sculpting for m, r in results.items() if r.sculpting is not None}
    if not checked:
        return
    rows = [row for m, sc in checked.items() for row in sculpting_rows(m, sc)]
    tracker.save_table("sculpting", rows)
    for method, sc in checked.items():
        key = method.lower().replace(" ", "_").replace("-", "_")
        metrics[f"{key}/sculpting_max_abs_pull"] = float(np.max(np.abs(sc.pull)))
    label = (
        f"{inputs.signal_name} study, background pool of {len(inputs.background_mjj)} events, "
        f"{len(next(iter(checked.values())).pull)} no-signal classifiers per method"
    )
    tracker.save_figure(f"{figure_name}_sculpting", sculpting_figure(checked, label))


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
    diverged = report_diverged(results)
    if diverged:
        tracker.save_json("diverged_members", diverged)
    tracker.save_table("study", rows)
    thresholds = threshold_table(results)
    tracker.save_table("thresholds", thresholds)
    for row in thresholds:
        key = row["method"].lower().replace(" ", "_").replace("-", "_")
        for name in ("threshold_z", "threshold_z_std", "ratio_to_cwola"):
            metrics[f"{key}/{name}"] = row[name]
        threshold = {
            "crossing": f"learning threshold Z = {row['threshold_z']:.2f} "
            f"+- {row['threshold_z_std']:.2f}",
            "below range": f"learning threshold Z < {row['threshold_z']:.2f} (below the scan)",
            "not reached": "learning threshold above the scanned range",
        }[row["threshold_kind"]]
        print(
            f"{row['method']:>10}: {threshold}; signal for 5 sigma = "
            f"{row['signal_for_5sigma']:.0f} +- {row['signal_for_5sigma_std']:.0f}"
            f" (ratio to CWoLa {row['ratio_to_cwola']:.2f})"
        )
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
                        "diverged": result.diverged[m] if result.diverged else "",
                    }
                )
    tracker.save_table("working_points", working_rows)
    _report_sculpting(tracker, inputs, results, metrics, figure_name)
    first = next(iter(results.values()))
    injections, initial = _by_injection(first, first.initial_z)
    curves = {method: _plotted_runs(r) for method, r in results.items()}
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
