"""Anomaly-aware search in a toy TPC: a background-only beta-VAE plus an ER/NR classifier.

Follows Scaffidi and Trotta (DARWIN, arXiv:2410.00755):
1. simulate electron-recoil background and nuclear-recoil events (`jaxws.simulate.tpc`);
2. train a beta-VAE on background only and an MLP classifier ER vs NR (flat NR spectrum, so
   the classifier does not know the WIMP-like mass), both with `jaxws.train.fit`;
3. score events with TS = -ELBO + R H_B, H_B = -log(1 - p(NR | x));
4. test in TS: f_0 from held-out background, the unbinned extended likelihood and the one-sided
   q0 against a signal template, p-values and Z from toys (`jaxws.stats.anomaly_test`);
5. outputs: latent view, TS distributions, median sensitivity versus signal rate, and the scan
   of the median p-value versus R for three WIMP-mass benchmarks (the slides' backup figure).

Config: `data` (`jaxws.simulate.tpc.TPCConfig`) and `method` with subsections `vae`,
`classifier` and `test` (dataclasses below; see docs/anomaly.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from jaxws import plotting
from jaxws.config import ConfigError, check, from_section
from jaxws.models.mlp import MLP
from jaxws.models.vae import BetaVAE
from jaxws.simulate import tpc, wimp
from jaxws.stats import anomaly_test
from jaxws.train import Hparams, MemberData, TrainConfig, fit, predict


@dataclasses.dataclass(frozen=True)
class VAESettings:
    """Section `method.vae`: architecture and training of the background VAE."""

    latent_dim: int = 2
    hidden: tuple[int, ...] = (64, 64)
    beta: float = 1.0
    decoder_variance: str = "network"
    score_samples: int = 16
    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5
    validation_fraction: float = 0.2

    def __post_init__(self) -> None:
        check(self.latent_dim >= 1, "method.vae.latent_dim must be >= 1")
        check(self.beta > 0, f"method.vae.beta must be > 0, got {self.beta}")
        check(
            self.decoder_variance in ("network", "feature"),
            f"method.vae.decoder_variance must be 'network' or 'feature', "
            f"got {self.decoder_variance!r}",
        )
        check(self.score_samples >= 1, "method.vae.score_samples must be >= 1")
        _check_training("method.vae", self)


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """Section `method.classifier`: the ER-vs-NR MLP."""

    feature_widths: tuple[int, ...] = (64, 64)
    head_widths: tuple[int, ...] = (32,)
    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5
    validation_fraction: float = 0.2

    def __post_init__(self) -> None:
        _check_training("method.classifier", self)


@dataclasses.dataclass(frozen=True)
class TestSettings:
    """Section `method.test`: score weight, benchmarks, toys.

    Attributes:
      r: score weight R for the distributions and sensitivity curves.
      r_scan: R values of the scan.
      wimp_masses: WIMP-like masses (GeV) of the benchmarks (NR spectrum slopes).
      sensitivity_mass: benchmark used for the sensitivity curves (one of `wimp_masses`).
      expected_background: B, expected background events in a data set.
      signal_rates: expected signal counts s of the sensitivity curves.
      scan_signal_rate: s injected in the R scan; None: per benchmark the detected WIMP count
        of `cross_section_cm2` x `exposure_tonne_year` (the seed's Fig. 8).
      cross_section_cm2, exposure_tonne_year: the benchmark (6.5e-48 cm2, 200 t y): expected
        recoils in [energy_min, energy_max] (`jaxws.simulate.wimp`) times the detection
        efficiency of the simulated sample; always reported.
      n_null_toys, n_signal_toys: toys per hypothesis.
      f0_tail_fraction: probability in each exponential tail of f_0 and the templates (0: plain
        Gaussian KDE).
      mismatch_template_mass, mismatch_signal_mass: the model-dependent q0 with a template of
        the wrong mass (both in `wimp_masses`).
      null_check_r: R values at which fresh background-only data sets check the null.
      n_null_check_sets: fresh background-only data sets per R value (0: no check).
    """

    r: float = 10.0
    r_scan: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    wimp_masses: tuple[float, ...] = (30.0, 50.0, 100.0)
    sensitivity_mass: float = 50.0
    expected_background: float = 2000.0
    signal_rates: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    scan_signal_rate: float | None = 16.0
    cross_section_cm2: float = 6.5e-48
    exposure_tonne_year: float = 200.0
    n_null_toys: int = 2000
    n_signal_toys: int = 200
    f0_tail_fraction: float = anomaly_test.TAIL_FRACTION
    mismatch_template_mass: float = 30.0
    mismatch_signal_mass: float = 100.0
    null_check_r: tuple[float, ...] = (0.0, 10.0, 100.0)
    n_null_check_sets: int = 200

    def __post_init__(self) -> None:
        check(self.r >= 0, f"method.test.r must be >= 0, got {self.r}")
        check(
            len(self.r_scan) >= 1 and all(r >= 0 for r in self.r_scan),
            f"method.test.r_scan must be non-empty with values >= 0, got {self.r_scan}",
        )
        check(
            len(self.wimp_masses) >= 1 and all(m > 0 for m in self.wimp_masses),
            "method.test.wimp_masses must be positive",
        )
        check(
            self.sensitivity_mass in self.wimp_masses,
            f"method.test.sensitivity_mass {self.sensitivity_mass} is not in wimp_masses "
            f"{self.wimp_masses}",
        )
        check(self.expected_background > 0, "method.test.expected_background must be > 0")
        check(
            len(self.signal_rates) >= 1 and all(s >= 0 for s in self.signal_rates),
            "method.test.signal_rates must be non-empty with values >= 0",
        )
        check(
            self.scan_signal_rate is None or self.scan_signal_rate > 0,
            "method.test.scan_signal_rate must be > 0 or null (the benchmark counts)",
        )
        check(self.cross_section_cm2 > 0, "method.test.cross_section_cm2 must be > 0")
        check(self.exposure_tonne_year > 0, "method.test.exposure_tonne_year must be > 0")
        check(self.n_null_toys >= 10, "method.test.n_null_toys must be >= 10")
        check(self.n_signal_toys >= 10, "method.test.n_signal_toys must be >= 10")
        check(
            0.0 <= self.f0_tail_fraction < 0.5,
            f"method.test.f0_tail_fraction must lie in [0, 0.5), got {self.f0_tail_fraction}",
        )
        for name in ("mismatch_template_mass", "mismatch_signal_mass"):
            check(
                getattr(self, name) in self.wimp_masses,
                f"method.test.{name} {getattr(self, name)} is not in wimp_masses "
                f"{self.wimp_masses}",
            )
        check(
            all(r >= 0 for r in self.null_check_r),
            f"method.test.null_check_r must be >= 0, got {self.null_check_r}",
        )
        check(self.n_null_check_sets >= 0, "method.test.n_null_check_sets must be >= 0")


def _check_training(section: str, settings: Any) -> None:
    check(settings.learning_rate > 0, f"{section}.learning_rate must be > 0")
    check(settings.batch_size >= 1, f"{section}.batch_size must be >= 1")
    check(settings.max_epochs >= 1, f"{section}.max_epochs must be >= 1")
    check(settings.patience >= 1, f"{section}.patience must be >= 1")
    check(
        0.0 < settings.validation_fraction < 1.0,
        f"{section}.validation_fraction must lie in (0, 1)",
    )


METHOD_KEYS = ("name", "vae", "classifier", "test")


def settings_from_config(cfg: Mapping[str, Any]):
    """(TPCConfig, VAESettings, ClassifierSettings, TestSettings) from the resolved config."""
    method = cfg.get("method") or {}
    unknown = sorted(set(method) - set(METHOD_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in config section 'method'; allowed: {list(METHOD_KEYS)}"
        )
    return (
        from_section(tpc.TPCConfig, cfg.get("data"), "data"),
        from_section(VAESettings, method.get("vae"), "method.vae"),
        from_section(ClassifierSettings, method.get("classifier"), "method.classifier"),
        from_section(TestSettings, method.get("test"), "method.test"),
    )


# ----------------------------------------------------------------------------- data


def simulate_samples(key: jax.Array, data: tpc.TPCConfig, masses: tuple[float, ...]) -> dict:
    """Detected events of every sample the method needs (host numpy dicts).

    Returns:
      dict with background_train (VAE, ER class of the classifier), background_null (the
      reference sample of f_0), background_bank (the scores the null toys draw from),
      signal_train (flat NR spectrum) and benchmarks (list, one WIMP sample per mass, all cut
      to the same length). Sizes are counts before the thresholds.
    """
    params = data.params()
    sensors = tpc.sensor_grid_for(params, data.sensor_rings)

    def sample(index: int, n: int, nr_fraction: float, spectrum: tpc.RecoilSpectrum) -> dict:
        return tpc.simulate_detected(
            jax.random.fold_in(key, index), n, params, sensors, nr_fraction, spectrum
        )

    background = (data.neutron_fraction, tpc.exponential_spectrum(data.neutron_slope_kev, params))
    samples = {
        "background_train": sample(0, data.n_background_train, *background),
        "background_null": sample(1, data.n_background_null, *background),
        "background_bank": sample(3, data.n_background_bank, *background),
        "signal_train": sample(2, data.n_signal_train, 1.0, tpc.flat_spectrum(params)),
    }
    benchmarks = [
        sample(10 + j, data.n_signal_benchmark, 1.0, tpc.wimp_spectrum(mass, params))
        for j, mass in enumerate(masses)
    ]
    samples["signal_efficiency"] = [len(b["s1"]) / data.n_signal_benchmark for b in benchmarks]
    shortest = min(len(b["s1"]) for b in benchmarks)
    samples["benchmarks"] = [{k: v[:shortest] for k, v in b.items()} for b in benchmarks]
    return samples


@dataclasses.dataclass(frozen=True)
class Standardiser:
    """Per-feature standardisation fitted on the background training sample."""

    mean: np.ndarray
    scale: np.ndarray

    @staticmethod
    def fit(x: np.ndarray) -> Standardiser:
        scale = x.std(axis=0)
        return Standardiser(x.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)


def features_of(events: dict, standardise: Standardiser | None = None) -> np.ndarray:
    """Standardised network input of events (checked finite)."""
    x = np.asarray(tpc.event_features({k: jnp.asarray(v) for k, v in events.items()}))
    if not np.all(np.isfinite(x)):
        raise ValueError(f"TPC features contain {int(np.sum(~np.isfinite(x)))} NaN/inf values")
    return x if standardise is None else standardise(x)


def _split(key: jax.Array, n: int, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    # A host permutation seeded by the key's bits (no device program to compile).
    order = np.random.default_rng(np.asarray(jax.random.key_data(key))).permutation(n)
    n_val = max(1, int(round(validation_fraction * n)))
    return order[n_val:], order[:n_val]


# ----------------------------------------------------------------------------- models


def train_vae(key: jax.Array, x: np.ndarray, settings: VAESettings, progress: bool | str = False):
    """Fit the beta-VAE on background features with `jaxws.train.fit`; (model, FitResult)."""
    split_key, fit_key = jax.random.split(key)
    model = BetaVAE(
        data_dim=x.shape[1],
        latent_dim=settings.latent_dim,
        hidden=settings.hidden,
        beta=settings.beta,
        decoder_variance=settings.decoder_variance,
    )
    train, val = _split(split_key, x.shape[0], settings.validation_fraction)
    member = MemberData.from_arrays(train, np.zeros(train.size), val, np.zeros(val.size))
    config = TrainConfig(
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
    )
    result = fit(
        fit_key,
        model,
        x,
        member,
        Hparams(learning_rate=settings.learning_rate),
        config,
        loss_fn=lambda outputs, labels: outputs,
        progress=progress,
    )
    return model, result


def train_classifier(
    key: jax.Array,
    x: np.ndarray,
    labels: np.ndarray,
    settings: ClassifierSettings,
    progress: bool | str = False,
):
    """Fit the ER-vs-NR MLP with `jaxws.train.fit` (class-balanced weights); (model, FitResult)."""
    split_key, fit_key = jax.random.split(key)
    model = MLP(
        feature_widths=settings.feature_widths,
        head_widths=settings.head_widths,
        standardise=False,
    )
    train, val = _split(split_key, x.shape[0], settings.validation_fraction)
    # Balanced classes: the classifier estimates p(NR | x) at equal priors.
    fraction_nr = labels.mean()
    weights = np.where(labels > 0, 0.5 / fraction_nr, 0.5 / (1.0 - fraction_nr))
    member = MemberData.from_arrays(
        train, labels[train], val, labels[val], weights[train], weights[val]
    )
    config = TrainConfig(
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
    )
    result = fit(
        fit_key,
        model,
        x,
        member,
        Hparams(learning_rate=settings.learning_rate),
        config,
        progress=progress,
    )
    return model, result, val


SCORE_CHUNK = 4096


def negative_elbo(
    model: BetaVAE, variables: dict, x: np.ndarray, key: jax.Array, n_samples: int
) -> np.ndarray:
    """Per-event -ELBO_beta averaged over `n_samples` latent draws (chunk c uses fold_in(key, c)).

    Chunks are padded to SCORE_CHUNK events so that one compiled program serves every sample.
    """
    fn = _negative_elbo_fn(model, n_samples)
    out = []
    for c, start in enumerate(range(0, x.shape[0], SCORE_CHUNK)):
        chunk = x[start : start + SCORE_CHUNK]
        padded = np.pad(chunk, ((0, SCORE_CHUNK - chunk.shape[0]), (0, 0)))
        out.append(np.asarray(fn(variables, padded, jax.random.fold_in(key, c)))[: chunk.shape[0]])
    return np.concatenate(out)


@functools.cache
def _negative_elbo_fn(model: BetaVAE, n_samples: int):
    return jax.jit(
        lambda variables, batch, key: model.apply(
            variables,
            batch,
            n_samples=n_samples,
            method=BetaVAE.negative_elbo,
            rngs={"sample": key},
        )
    )


def latent_means(model: BetaVAE, variables: dict, x: np.ndarray) -> np.ndarray:
    """Posterior means (N, latent_dim)."""
    return np.asarray(model.apply(variables, x, method=BetaVAE.encode)[0])


def _auc(background: np.ndarray, signal: np.ndarray) -> float:
    """Area under the ROC curve, P(signal score > background score) (Mann-Whitney, ties 1/2)."""
    values = np.concatenate([background, signal])
    ranks = np.empty(values.size)
    order = np.argsort(values, kind="mergesort")
    ranks[order] = np.arange(1, values.size + 1)
    # Average ranks over ties.
    unique, inverse = np.unique(values, return_inverse=True)
    ranks = np.bincount(inverse, ranks) / np.bincount(inverse)
    ranks = ranks[inverse]
    n_b, n_s = background.size, signal.size
    return float((ranks[n_b:].sum() - n_s * (n_s + 1) / 2) / (n_b * n_s))


@dataclasses.dataclass(frozen=True)
class Scorer:
    """The trained pieces of the score: standardisation, VAE and classifier.

    `scorer(events, key)` gives the per-event (-ELBO, classifier logit) from which TS = -ELBO +
    R H_B follows for any R (`anomaly_test.anomaly_score`).
    """

    standardise: Standardiser
    vae: BetaVAE
    vae_variables: dict
    classifier: MLP
    classifier_variables: dict
    score_samples: int

    def features(self, events: dict) -> np.ndarray:
        """Standardised network input of events."""
        return features_of(events, self.standardise)

    def __call__(self, events: dict, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        x = self.features(events)
        nelbo = negative_elbo(self.vae, self.vae_variables, x, key, self.score_samples)
        logit = np.asarray(predict(self.classifier, self.classifier_variables, x))
        return nelbo, logit


def train_scorer(
    key: jax.Array,
    samples: dict,
    vae_settings: VAESettings,
    classifier_settings: ClassifierSettings,
    progress: bool = False,
) -> tuple[Scorer, dict[str, float]]:
    """Standardise on the background training sample, train the VAE and the classifier.

    Returns:
      (scorer, metrics): training metrics (best validation losses, epochs, classifier
      validation accuracy and AUC).
    """
    raw_train = features_of(samples["background_train"])
    standardise = Standardiser.fit(raw_train)
    x_train = standardise(raw_train)
    x_signal_train = features_of(samples["signal_train"], standardise)
    vae, vae_fit = train_vae(
        jax.random.fold_in(key, 1), x_train, vae_settings, progress and "VAE (background only)"
    )
    x_classifier = np.concatenate([x_train, x_signal_train])
    labels = np.concatenate(
        [samples["background_train"]["recoil_type"], np.ones(x_signal_train.shape[0])]
    ).astype(np.float32)
    classifier, classifier_fit, classifier_val = train_classifier(
        jax.random.fold_in(key, 2),
        x_classifier,
        labels,
        classifier_settings,
        progress and "classifier (ER vs NR)",
    )
    val_logits = np.asarray(predict(classifier, classifier_fit.variables, x_classifier))[
        classifier_val
    ]
    val_labels = labels[classifier_val]
    metrics = {
        "vae_best_val_loss": float(vae_fit.best_val_loss),
        "vae_epochs": int(vae_fit.epochs),
        "classifier_epochs": int(classifier_fit.epochs),
        "classifier_val_accuracy": float(np.mean((val_logits > 0) == (val_labels > 0))),
        "classifier_val_auc": _auc(val_logits[val_labels == 0], val_logits[val_labels == 1]),
    }
    scorer = Scorer(
        standardise,
        vae,
        vae_fit.variables,
        classifier,
        classifier_fit.variables,
        vae_settings.score_samples,
    )
    return scorer, {
        **metrics,
        "_vae_val_loss": vae_fit.val_loss,
        "_classifier_val_loss": classifier_fit.val_loss,
    }


def fresh_background_sets(
    key: jax.Array, data: tpc.TPCConfig, expected_background: float, n_sets: int
) -> tuple[list[dict], np.ndarray]:
    """`n_sets` background-only data sets simulated afresh: N_k ~ Poisson(B) detected events.

    Returns:
      (events, counts): one concatenated event dict holding the sets one after the other, and
      the (n_sets,) counts N_k.
    """
    count_key, event_key = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(count_key)))
    counts = rng.poisson(expected_background, n_sets)
    params = data.params()
    events = tpc.simulate_detected_count(
        event_key,
        int(counts.sum()),
        params,
        tpc.sensor_grid_for(params, data.sensor_rings),
        data.neutron_fraction,
        tpc.exponential_spectrum(data.neutron_slope_kev, params),
    )
    return events, counts


def null_calibration(
    key: jax.Array,
    observed: tuple[np.ndarray, np.ndarray],
    counts: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray],
    bank: tuple[np.ndarray, np.ndarray],
    template: tuple[np.ndarray, np.ndarray],
    test: TestSettings,
    progress: bool = False,
) -> dict[float, dict]:
    """p-values of fresh background-only data sets through the whole test, at each R.

    The data sets are scored and tested exactly as the analysis tests data: f_0 from the
    reference scores, the template from `template`, null toys from the bank; their p-values
    (randomised ties) must be uniform if the null is valid.

    Args:
      key: PRNG key (null toys and tie randomisation).
      observed: (-ELBO, logit) of the data sets' events, concatenated in order.
      counts: events per data set.
      reference, bank, template: (-ELBO, logit) of f_0's sample, of the toy bank and of the
        template's signal sample.
      test: settings (B, toys, tails, the R values in `null_check_r`).
      progress: show a progress bar over R.

    Returns:
      {R: {"gof": uniformity_summary, "q0": uniformity_summary, "p_gof": p, "p_q0": p}}.
    """
    n_sets = counts.size
    size = anomaly_test.max_toy_events(test.expected_background, 0.0)
    size = max(size, int(counts.max()))
    position = np.arange(size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index = np.minimum(starts[:, None] + position[None, :], counts.sum() - 1)
    mask = position[None, :] < counts[:, None]
    results = {}
    for i, r in enumerate(tqdm(test.null_check_r, desc="null check (R)", disable=not progress)):
        score = lambda pair, r=r: np.asarray(anomaly_test.checked_anomaly_score(*pair, r))
        null = anomaly_test.score_density(
            score(reference), "background (null) scores", test.f0_tail_fraction
        )
        signal_template = anomaly_test.score_density(
            score(template), "signal template scores", test.f0_tail_fraction
        )
        toys = anomaly_test.sensitivity_toys(
            jax.random.fold_in(key, 2 * i),
            score(bank),
            score(template),
            null,
            signal_template,
            test.expected_background,
            [0.0],
            test.n_null_toys,
            test.n_signal_toys,
        )
        data_scores = score(observed)[index]
        stats = anomaly_test.observed_statistics(
            jnp.asarray(data_scores, jnp.float32),
            jnp.asarray(mask),
            null,
            signal_template,
            jnp.float32(test.expected_background),
        )
        entry = {}
        for j, name in enumerate(("gof", "q0")):
            p = np.asarray(
                anomaly_test.toy_p_values(
                    stats[name],
                    toys[f"null_{name}"],
                    jax.random.fold_in(key, 2 * i + 1 + 1000 * j),
                )
            )
            entry[name] = anomaly_test.uniformity_summary(p)
            entry[f"p_{name}"] = p
        results[float(r)] = entry
    del n_sets
    return results


# ----------------------------------------------------------------------------- figures


def _figure(ncols: int = 1):
    with plotting.style():
        fig = Figure(figsize=(8 * ncols, 7))
        axes = fig.subplots(1, ncols)
    return fig, axes


def latent_encoding(latent: np.ndarray, events: dict) -> dict[str, list[float]]:
    """Spearman correlation of each latent axis with the event's physics quantities.

    What the latent space encodes: recoil energy, log10 S1, log10 S2/S1 (the ER/NR
    discriminant), radius and depth of the interaction.
    """
    from scipy import stats

    quantities = {
        "energy": events["energy"],
        "log10_s1": np.log10(np.maximum(events["s1"], 1.0)),
        "log10_s2_over_s1": np.log10(np.maximum(events["s2"], 1.0) / np.maximum(events["s1"], 1.0)),
        "radius": np.hypot(events["position"][:, 0], events["position"][:, 1]),
        "depth": events["position"][:, 2],
    }
    return {
        name: [
            float(stats.spearmanr(latent[:, axis], value).statistic)
            for axis in range(latent.shape[1])
        ]
        for name, value in quantities.items()
    }


def latent_figure(
    background: np.ndarray,
    energy: np.ndarray,
    signals: Mapping[str, np.ndarray],
    encoding: Mapping[str, list[float]],
) -> Figure:
    """Posterior means (first two latent axes): background coloured by recoil energy.

    Axis labels name the physics quantity each axis is most correlated with (|Spearman rho|).
    """
    with plotting.style():
        fig, ax = _figure()
        second = 1 if background.shape[1] > 1 else 0
        for name, z in signals.items():
            ax.scatter(z[:, 0], z[:, second], s=2, alpha=0.15, label=name)
        points = ax.scatter(
            background[:, 0], background[:, second], s=2, c=energy, cmap="viridis", alpha=0.5
        )
        fig.colorbar(points, ax=ax, label="ER recoil energy [keV]")

        def label(axis: int) -> str:
            name = max(encoding, key=lambda k: abs(encoding[k][axis]))
            return rf"$\mu_{{z,{axis + 1}}}$ ($\rho$ = {encoding[name][axis]:+.2f} with {name})"

        ax.set_xlabel(label(0), fontsize="small")
        ax.set_ylabel(label(second), fontsize="small")
        ax.legend(markerscale=5, fontsize="x-small")
    return fig


def score_figure(background: np.ndarray, signals: Mapping[str, np.ndarray], r: float) -> Figure:
    """Normalised TS histograms."""
    with plotting.style():
        fig, ax = _figure()
        everything = np.concatenate([background, *signals.values()])
        bins = np.linspace(*np.percentile(everything, [0.1, 99.9]), 60)
        ax.hist(background, bins=bins, density=True, histtype="step", label="ER (bkg)")
        for name, ts in signals.items():
            ax.hist(ts, bins=bins, density=True, histtype="step", label=name)
        ax.set_xlabel(f"TS = -ELBO + R H_B (R = {r:g})")
        ax.set_ylabel("density")
        ax.set_yscale("log")
        ax.legend(fontsize="small")
    return fig


def _p_curve(ax, x, summary, label, **style):
    """Median p with its 68% toy band; values at the toy floor drawn as bounds (down-triangles)."""
    median, capped = np.asarray(summary["median_p"]), np.asarray(summary["at_cap"], bool)
    (line,) = ax.plot(x, median, label=label, **style)
    ax.fill_between(x, summary["p_low"], summary["p_high"], color=line.get_color(), alpha=0.2)
    if np.any(capped):
        ax.plot(
            np.asarray(x)[capped],
            median[capped],
            linestyle="none",
            marker="v",
            markersize=11,
            color=line.get_color(),
        )


def sensitivity_figure(curves: Mapping[str, dict], floor: float) -> Figure:
    """Median p of H0 versus expected signal count (toys, 68% band; triangles: p < floor)."""
    with plotting.style():
        fig, ax = _figure()
        for label, (summary, rates, style) in curves.items():
            _p_curve(ax, rates, summary, label, **style)
        ax.axhline(floor, color="grey", linestyle=":", label=f"toy floor 1/(1+n) = {floor:.1g}")
        ax.set_yscale("log")
        ax.set_xlabel("expected signal events s")
        ax.set_ylabel("median p-value of H0 (toys)")
        ax.legend(fontsize="x-small")
    return fig


def r_scan_figure(scan: dict, masses: tuple[float, ...], statistic: str = "gof") -> Figure:
    """Median p of H0 versus R per benchmark, 68% band (the slides' backup Fig. 8)."""
    with plotting.style():
        fig, ax = _figure()
        r = np.asarray(scan["r_values"])
        x = np.where(r > 0, r, np.min(r[r > 0]) / 10 if np.any(r > 0) else 1.0)
        summary = scan[statistic]
        for j, mass in enumerate(masses):
            column = {k: np.asarray(v)[:, j] for k, v in summary.items() if k != "floor"}
            best = scan[f"best_r_{statistic}"][j]
            _p_curve(ax, x, column, f"m = {mass:g} GeV (best R = {best:g})", marker="o")
        floor = summary["floor"]
        ax.axhline(floor, color="grey", linestyle=":", label=f"toy floor {floor:.1g} (v: bound)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        kind = "model-independent t" if statistic == "gof" else "model-dependent q0"
        ax.set_xlabel("R (R = 0 drawn at the left edge)")
        ax.set_ylabel(f"median p of H0 ({kind})")
        ax.legend(fontsize="x-small")
    return fig


def null_figure(calibration: Mapping[float, dict]) -> Figure:
    """Null p-values of fresh background-only data sets (should be uniform)."""
    with plotting.style():
        fig, ax = _figure()
        bins = np.linspace(0, 1, 21)
        for r, entry in calibration.items():
            summary = entry["gof"]
            ax.hist(
                entry["p_gof"],
                bins=bins,
                histtype="step",
                label=f"R = {r:g}: KS p = {summary['ks_pvalue']:.2f}",
            )
        n = next(iter(calibration.values()))["gof"]["n"]
        ax.axhline(n / 20, color="grey", linestyle=":", label="uniform")
        ax.set_xlabel("p-value of fresh background-only data (model-independent t)")
        ax.set_ylabel("data sets")
        ax.legend(fontsize="x-small")
    return fig


# ----------------------------------------------------------------------------- run


def _floats(tree):
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def run(
    cfg: Mapping[str, Any], key: jax.Array, run_dir: str | Path, tracker, progress: bool = True
) -> dict:
    """Simulate, train the VAE and the classifier, score, test; save figures and tables.

    Args:
      cfg: the resolved config (sections `data` and `method`).
      key: typed PRNG key (split into named streams by `fold_in`).
      run_dir: the run directory (outputs go through `tracker`).
      tracker: `jaxws.track.Tracker`-like (`log_metrics`, `save_json`, `save_figure`).
      progress: tqdm bars on the long phases.

    Returns:
      Flat dict of scalar metrics.
    """
    del run_dir  # everything is written through the tracker
    data, vae_settings, classifier_settings, test = settings_from_config(cfg)
    masses = tuple(test.wimp_masses)
    samples = simulate_samples(jax.random.fold_in(key, 0), data, masses)
    scorer, fit_metrics = train_scorer(
        key, samples, vae_settings, classifier_settings, progress=progress
    )
    metrics: dict[str, float] = {k: v for k, v in fit_metrics.items() if not k.startswith("_")}

    score_key = jax.random.fold_in(key, 3)
    reference = scorer(samples["background_null"], jax.random.fold_in(score_key, 0))
    bank = scorer(samples["background_bank"], jax.random.fold_in(score_key, 1))
    benchmark_scores = [
        scorer(b, jax.random.fold_in(score_key, 10 + j))
        for j, b in enumerate(samples["benchmarks"])
    ]
    nelbo_signal = np.stack([pair[0] for pair in benchmark_scores])
    logit_signal = np.stack([pair[1] for pair in benchmark_scores])
    metrics["n_background_null"] = int(reference[0].size)
    metrics["n_background_bank"] = int(bank[0].size)
    metrics["n_signal_per_benchmark"] = int(nelbo_signal.shape[1])
    benchmark_counts = []
    for j, mass in enumerate(masses):
        recoils = wimp.expected_events(
            mass, test.cross_section_cm2, test.exposure_tonne_year, data.energy_min, data.energy_max
        )
        efficiency = samples["signal_efficiency"][j]
        metrics[f"benchmark_recoils_m{mass:g}"] = recoils
        metrics[f"benchmark_efficiency_m{mass:g}"] = efficiency
        metrics[f"benchmark_detected_m{mass:g}"] = recoils * efficiency
        benchmark_counts.append(recoils * efficiency)
    scan_rates = benchmark_counts if test.scan_signal_rate is None else test.scan_signal_rate
    for j, mass in enumerate(masses):
        metrics[f"vae_auc_m{mass:g}"] = _auc(reference[0], nelbo_signal[j])

    # Latent view (what it encodes) and TS distributions at the configured R.
    names = [f"NR m = {m:g} GeV" for m in masses]
    background_view = {k: v[:5000] for k, v in samples["background_null"].items()}
    latent = latent_means(scorer.vae, scorer.vae_variables, scorer.features(background_view))
    encoding = latent_encoding(latent, background_view)
    tracker.save_figure(
        "latent_space",
        latent_figure(
            latent,
            background_view["energy"],
            {
                name: latent_means(scorer.vae, scorer.vae_variables, scorer.features(b)[:2000])
                for name, b in zip(names, samples["benchmarks"], strict=True)
            },
            encoding,
        ),
    )
    ts = lambda pair, r: np.asarray(anomaly_test.checked_anomaly_score(*pair, r))
    ts_signal = {
        name: ts((nelbo_signal[j], logit_signal[j]), test.r) for j, name in enumerate(names)
    }
    tracker.save_figure(
        "score_distributions", score_figure(ts(reference, test.r), ts_signal, test.r)
    )

    # Half of each benchmark sample builds its template, the other half is injected in toys.
    half = nelbo_signal.shape[1] // 2
    template_of = lambda j: (nelbo_signal[j, :half], logit_signal[j, :half])
    pool_of = lambda j: (nelbo_signal[j, half:], logit_signal[j, half:])

    def sensitivity(r: float, signal_mass: float, template_mass: float, stream: int) -> dict:
        j_signal, j_template = masses.index(signal_mass), masses.index(template_mass)
        null = anomaly_test.score_density(
            ts(reference, r), "background (null) scores", test.f0_tail_fraction
        )
        template = anomaly_test.score_density(
            ts(template_of(j_template), r), "signal template scores", test.f0_tail_fraction
        )
        anomaly_test.check_template_support(null, template)
        return anomaly_test.median_sensitivity(
            jax.random.fold_in(key, stream),
            ts(bank, r),
            ts(pool_of(j_signal), r),
            null,
            template,
            test.expected_background,
            test.signal_rates,
            test.n_null_toys,
            test.n_signal_toys,
        )

    # Median sensitivity versus s: the model-independent test at R = 0 and the configured R
    # (the result), the template q0 (model-dependent) with the right and a wrong mass.
    m = test.sensitivity_mass
    cases = {
        "r0": (0.0, m, m),
        "r": (test.r, m, m),
        "mismatch": (test.r, test.mismatch_signal_mass, test.mismatch_template_mass),
        "matched_heavy": (test.r, test.mismatch_signal_mass, test.mismatch_signal_mass),
    }
    curves = {
        name: sensitivity(*case, stream=40 + i)
        for i, (name, case) in enumerate(
            tqdm(cases.items(), desc="sensitivity toys", disable=not progress)
        )
    }
    rates = curves["r"]["signal_rates"]
    floor = curves["r"]["gof"]["floor"]
    mm_signal, mm_template = test.mismatch_signal_mass, test.mismatch_template_mass
    figure_curves = {
        f"model-independent t, R = 0, m = {m:g} GeV": (curves["r0"]["gof"], rates, {"marker": "o"}),
        f"model-independent t, R = {test.r:g}, m = {m:g} GeV": (
            curves["r"]["gof"],
            rates,
            {"marker": "o"},
        ),
        f"model-dependent q0, R = {test.r:g}, template = signal = {m:g} GeV": (
            curves["r"]["q0"],
            rates,
            {"linestyle": "--", "marker": "s"},
        ),
        f"model-dependent q0, template {mm_signal:g} GeV on {mm_signal:g} GeV signal": (
            curves["matched_heavy"]["q0"],
            rates,
            {"linestyle": "--", "marker": "^"},
        ),
        f"model-dependent q0, template {mm_template:g} GeV on {mm_signal:g} GeV signal": (
            curves["mismatch"]["q0"],
            rates,
            {"linestyle": ":", "marker": "x"},
        ),
    }
    tracker.save_figure("sensitivity", sensitivity_figure(figure_curves, floor))

    # R scan (per R one compiled program, reused): model-independent t and template q0.
    per_r = [
        anomaly_test.scan_score_weight(
            jax.random.fold_in(key, 5 + 1000 * i),
            np.asarray([r]),
            reference,
            bank,
            (nelbo_signal[:, :half], logit_signal[:, :half]),
            (nelbo_signal[:, half:], logit_signal[:, half:]),
            test.expected_background,
            scan_rates,
            test.n_null_toys,
            test.n_signal_toys,
        )
        for i, r in enumerate(tqdm(test.r_scan, desc="R scan", disable=not progress))
    ]
    scan = _stack_scans(per_r)
    tracker.save_figure("r_scan", r_scan_figure(scan, masses, "gof"))
    tracker.save_figure("r_scan_template", r_scan_figure(scan, masses, "q0"))

    # The null, tested the way it is used: fresh background-only data sets through the test.
    calibration = {}
    if test.n_null_check_sets > 0:
        events, counts = fresh_background_sets(
            jax.random.fold_in(key, 6), data, test.expected_background, test.n_null_check_sets
        )
        observed = scorer(events, jax.random.fold_in(score_key, 2))
        calibration = null_calibration(
            jax.random.fold_in(key, 7),
            observed,
            counts,
            reference,
            bank,
            template_of(masses.index(m)),
            test,
            progress=progress,
        )
        tracker.save_figure("null_p_values", null_figure(calibration))
        for r, entry in calibration.items():
            for name in ("gof", "q0"):
                for k, v in entry[name].items():
                    metrics[f"null_{name}_r{r:g}_{k}"] = v

    for name, curve in curves.items():
        for statistic in ("gof", "q0"):
            summary = curve[statistic]
            for rate, p in zip(rates, summary["median_p"], strict=True):
                metrics[f"median_p_{statistic}_{name}_s{float(rate):g}"] = float(p)
    metrics["toy_overflow"] = float(scan["overflow"] or any(c["overflow"] for c in curves.values()))
    for i, r in enumerate(scan["r_values"]):
        for j, mass in enumerate(masses):
            for statistic in ("gof", "q0"):
                key_name = f"r_scan_p_{statistic}_m{mass:g}_r{float(r):g}"
                metrics[key_name] = float(scan[statistic]["median_p"][i, j])
    for j, mass in enumerate(masses):
        metrics[f"best_r_gof_m{mass:g}"] = float(scan["best_r_gof"][j])
    tracker.log_metrics(metrics)
    tracker.save_json(
        "anomaly_results",
        {
            "metrics": metrics,
            "masses": list(masses),
            "nr_slopes_kev": [float(tpc.nr_spectrum_slope(mass)) for mass in masses],
            "latent_encoding": encoding,
            "sensitivity": {
                name: _floats(
                    {
                        "case": dict(
                            zip(("r", "signal_mass", "template_mass"), cases[name], strict=True)
                        ),
                        "signal_rates": curve["signal_rates"],
                        "gof": curve["gof"],
                        "q0": curve["q0"],
                        "median_s_hat": curve["median_s_hat"],
                    }
                )
                for name, curve in curves.items()
            },
            "r_scan": _floats(scan),
            "null_calibration": {
                f"{r:g}": {name: entry[name] for name in ("gof", "q0")}
                for r, entry in calibration.items()
            },
            "vae_val_loss": _floats(fit_metrics["_vae_val_loss"]),
            "classifier_val_loss": _floats(fit_metrics["_classifier_val_loss"]),
        },
    )
    finite = {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    return finite


def _stack_scans(per_r: list[dict]) -> dict:
    """Join single-R `scan_score_weight` results along the R axis (best R recomputed)."""
    r_values = np.concatenate([s["r_values"] for s in per_r])
    scan = {
        "r_values": r_values,
        "signal_rates": per_r[0]["signal_rates"],
        "overflow": any(s["overflow"] for s in per_r),
    }
    for name in ("gof", "q0"):
        summary = {
            k: np.concatenate([s[name][k] for s in per_r])
            for k in ("median_p", "p_low", "p_high", "at_cap", "median_z")
        }
        summary["floor"] = per_r[0][name]["floor"]
        scan[name] = summary
        scan[f"best_r_{name}"] = r_values[np.argmin(summary["median_p"], axis=0)]
    return scan
