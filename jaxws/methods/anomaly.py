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
from jax.scipy.special import ndtri
from matplotlib.figure import Figure

from jaxws import plotting
from jaxws.config import ConfigError, check, from_section
from jaxws.models.mlp import MLP
from jaxws.models.vae import BetaVAE
from jaxws.simulate import tpc
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
      scan_signal_rate: s injected in the R scan.
      n_null_toys, n_signal_toys: toys per hypothesis.
    """

    r: float = 1.0
    r_scan: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    wimp_masses: tuple[float, ...] = (30.0, 50.0, 100.0)
    sensitivity_mass: float = 50.0
    expected_background: float = 2000.0
    signal_rates: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    scan_signal_rate: float = 2.0
    n_null_toys: int = 2000
    n_signal_toys: int = 200

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
        check(self.scan_signal_rate > 0, "method.test.scan_signal_rate must be > 0")
        check(self.n_null_toys >= 10, "method.test.n_null_toys must be >= 10")
        check(self.n_signal_toys >= 10, "method.test.n_signal_toys must be >= 10")


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
      dict with background_train, background_null, signal_train (flat NR spectrum) and
      benchmarks (list, one exponential NR sample per mass, all cut to the same length).
    """
    params = data.params()
    sensors = tpc.sensor_grid_for(params, data.sensor_rings)

    def sample(index: int, n: int, nr_fraction: float, slope: float) -> dict:
        return tpc.simulate_detected(
            jax.random.fold_in(key, index), n, params, sensors, nr_fraction, slope
        )

    background = (data.neutron_fraction, data.neutron_slope_kev)
    samples = {
        "background_train": sample(0, data.n_background_train, *background),
        "background_null": sample(1, data.n_background_null, *background),
        "signal_train": sample(2, data.n_signal_train, 1.0, math.inf),
    }
    benchmarks = [
        sample(10 + j, data.n_signal_benchmark, 1.0, float(tpc.nr_spectrum_slope(mass)))
        for j, mass in enumerate(masses)
    ]
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


def train_vae(key: jax.Array, x: np.ndarray, settings: VAESettings):
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
    )
    return model, result


def train_classifier(key: jax.Array, x: np.ndarray, labels: np.ndarray, settings):
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
    result = fit(fit_key, model, x, member, Hparams(learning_rate=settings.learning_rate), config)
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


# ----------------------------------------------------------------------------- figures


def _figure(ncols: int = 1):
    with plotting.style():
        fig = Figure(figsize=(8 * ncols, 7))
        axes = fig.subplots(1, ncols)
    return fig, axes


def latent_figure(background: np.ndarray, signals: Mapping[str, np.ndarray]) -> Figure:
    """Posterior means of background and signal events (first two latent axes)."""
    with plotting.style():
        fig, ax = _figure()
        second = 1 if background.shape[1] > 1 else 0
        ax.scatter(background[:, 0], background[:, second], s=2, alpha=0.3, label="ER (bkg)")
        for name, z in signals.items():
            ax.scatter(z[:, 0], z[:, second], s=2, alpha=0.3, label=name)
        ax.set_xlabel(r"$\mu_{z,1}$")
        ax.set_ylabel(rf"$\mu_{{z,{second + 1}}}$")
        ax.legend(markerscale=5, fontsize="small")
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


def sensitivity_figure(curves: Mapping[str, dict], n_null_toys: int) -> Figure:
    """Median Z versus expected signal count (toys; Z is capped by the null-toy resolution)."""
    with plotting.style():
        fig, ax = _figure()
        for name, curve in curves.items():
            rates = np.asarray(curve["signal_rates"])
            z = np.maximum(np.asarray(curve["median_z"]), 0.0)
            ax.plot(rates, z, marker="o", label=name)
        cap = float(-ndtri(1.0 / (1.0 + n_null_toys)))
        ax.axhline(cap, color="grey", linestyle=":", label=f"toy resolution ({n_null_toys} toys)")
        ax.set_xlabel("expected signal events s")
        ax.set_ylabel("median Z (one-sided, toys)")
        ax.legend(fontsize="small")
    return fig


def r_scan_figure(scan: dict, masses: tuple[float, ...], n_null_toys: int) -> Figure:
    """Median p-value of rejecting H0 versus R from toys (the slides' backup Fig. 8)."""
    with plotting.style():
        fig, ax = _figure()
        r = np.asarray(scan["r_values"])
        x = np.where(r > 0, r, np.min(r[r > 0]) / 10 if np.any(r > 0) else 1.0)
        for j, mass in enumerate(masses):
            ax.plot(x, np.asarray(scan["median_p"])[:, j], marker="o", label=f"m = {mass:g} GeV")
        ax.axhline(1.0 / (1.0 + n_null_toys), color="grey", linestyle=":", label="toy resolution")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("R (R = 0 drawn at the left edge)")
        ax.set_ylabel("median p-value of H0 (toys)")
        ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- run


def _floats(tree):
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def run(cfg: Mapping[str, Any], key: jax.Array, run_dir: str | Path, tracker) -> dict:
    """Simulate, train the VAE and the classifier, score, test; save figures and tables.

    Args:
      cfg: the resolved config (sections `data` and `method`).
      key: typed PRNG key (split into named streams by `fold_in`).
      run_dir: the run directory (outputs go through `tracker`).
      tracker: `jaxws.track.Tracker`-like (`log_metrics`, `save_json`, `save_figure`).

    Returns:
      Flat dict of scalar metrics.
    """
    del run_dir  # everything is written through the tracker
    data, vae_settings, classifier_settings, test = settings_from_config(cfg)
    masses = tuple(test.wimp_masses)
    samples = simulate_samples(jax.random.fold_in(key, 0), data, masses)

    raw_train = features_of(samples["background_train"])
    standardise = Standardiser.fit(raw_train)
    x_train = standardise(raw_train)
    x_null = features_of(samples["background_null"], standardise)
    x_signal_train = features_of(samples["signal_train"], standardise)
    x_benchmarks = [features_of(b, standardise) for b in samples["benchmarks"]]

    vae, vae_fit = train_vae(jax.random.fold_in(key, 1), x_train, vae_settings)
    x_classifier = np.concatenate([x_train, x_signal_train])
    labels = np.concatenate(
        [samples["background_train"]["recoil_type"], np.ones(x_signal_train.shape[0])]
    ).astype(np.float32)
    classifier, classifier_fit, classifier_val = train_classifier(
        jax.random.fold_in(key, 2), x_classifier, labels, classifier_settings
    )

    score_key = jax.random.fold_in(key, 3)
    nelbo_null = negative_elbo(
        vae, vae_fit.variables, x_null, score_key, vae_settings.score_samples
    )
    logit_null = np.asarray(predict(classifier, classifier_fit.variables, x_null))
    nelbo_signal = np.stack(
        [
            negative_elbo(
                vae,
                vae_fit.variables,
                x,
                jax.random.fold_in(score_key, j + 1),
                vae_settings.score_samples,
            )
            for j, x in enumerate(x_benchmarks)
        ]
    )
    logit_signal = np.stack(
        [np.asarray(predict(classifier, classifier_fit.variables, x)) for x in x_benchmarks]
    )

    val_logits = np.asarray(predict(classifier, classifier_fit.variables, x_classifier))[
        classifier_val
    ]
    val_labels = labels[classifier_val]
    metrics: dict[str, float] = {
        "vae_best_val_loss": float(vae_fit.best_val_loss),
        "vae_epochs": int(vae_fit.epochs),
        "classifier_epochs": int(classifier_fit.epochs),
        "classifier_val_accuracy": float(np.mean((val_logits > 0) == (val_labels > 0))),
        "classifier_val_auc": _auc(val_logits[val_labels == 0], val_logits[val_labels == 1]),
        "n_background_null": int(x_null.shape[0]),
        "n_signal_per_benchmark": int(x_benchmarks[0].shape[0]),
    }
    for j, mass in enumerate(masses):
        metrics[f"vae_auc_m{mass:g}"] = _auc(nelbo_null, nelbo_signal[j])

    # Latent view and TS distributions at the configured R.
    names = [f"NR m = {m:g} GeV" for m in masses]
    tracker.save_figure(
        "latent_space",
        latent_figure(
            latent_means(vae, vae_fit.variables, x_null[:5000]),
            {
                name: latent_means(vae, vae_fit.variables, x[:2000])
                for name, x in zip(names, x_benchmarks, strict=True)
            },
        ),
    )
    ts_null = np.asarray(anomaly_test.checked_anomaly_score(nelbo_null, logit_null, test.r))
    ts_signal = {
        name: np.asarray(
            anomaly_test.checked_anomaly_score(nelbo_signal[j], logit_signal[j], test.r)
        )
        for j, name in enumerate(names)
    }
    tracker.save_figure("score_distributions", score_figure(ts_null, ts_signal, test.r))

    # Held-out background: the first half builds f_0, the second half feeds the toys (disjoint,
    # so that the toys follow the background law, not f_0's kernels).
    half_null = nelbo_null.shape[0] // 2
    reference, pool = slice(0, half_null), slice(half_null, None)
    half = nelbo_signal.shape[1] // 2

    # Median sensitivity versus signal rate: the VAE alone (R = 0) and the configured R.
    j_sens = masses.index(test.sensitivity_mass)
    curves = {}
    for label, r in (("R = 0 (VAE only)", 0.0), (f"R = {test.r:g}", test.r)):
        background_scores = np.asarray(
            anomaly_test.checked_anomaly_score(nelbo_null, logit_null, r)
        )
        signal_scores = np.asarray(
            anomaly_test.checked_anomaly_score(nelbo_signal[j_sens], logit_signal[j_sens], r)
        )
        null = anomaly_test.score_density(background_scores[reference], "background (null) scores")
        template = anomaly_test.score_density(signal_scores[:half], "signal template scores")
        anomaly_test.check_template_support(null, template)
        curves[label] = anomaly_test.median_sensitivity(
            jax.random.fold_in(key, 4),
            background_scores[pool],
            signal_scores[half:],
            null,
            template,
            test.expected_background,
            test.signal_rates,
            test.n_null_toys,
            test.n_signal_toys,
        )
    tracker.save_figure("sensitivity", sensitivity_figure(curves, test.n_null_toys))

    scan = anomaly_test.scan_score_weight(
        jax.random.fold_in(key, 5),
        np.asarray(test.r_scan),
        (nelbo_null[reference], logit_null[reference]),
        (nelbo_null[pool], logit_null[pool]),
        (nelbo_signal[:, :half], logit_signal[:, :half]),
        (nelbo_signal[:, half:], logit_signal[:, half:]),
        test.expected_background,
        test.scan_signal_rate,
        test.n_null_toys,
        test.n_signal_toys,
    )
    tracker.save_figure("r_scan", r_scan_figure(scan, masses, test.n_null_toys))

    # Null calibration of the test at the configured R: P(q0 >= 2.706) is 5% asymptotically.
    null_q0 = np.asarray(curves[f"R = {test.r:g}"]["null_q0"])
    metrics["null_fraction_q0_zero"] = float(np.mean(null_q0 == 0))
    metrics["null_fraction_q0_above_2.706"] = float(np.mean(null_q0 >= 2.706))
    for label, curve in curves.items():
        tag = "r0" if label.startswith("R = 0 ") else "r"
        for rate, z in zip(curve["signal_rates"], curve["median_z"], strict=True):
            # One-sided: report Z = 0 where the median data set shows no excess (p = 1).
            metrics[f"median_z_{tag}_s{float(rate):g}"] = max(float(z), 0.0)
    overflow = bool(scan["overflow"]) or any(bool(c["overflow"]) for c in curves.values())
    metrics["toy_overflow"] = float(overflow)
    for i, r in enumerate(np.asarray(scan["r_values"])):
        for j, mass in enumerate(masses):
            metrics[f"r_scan_p_m{mass:g}_r{float(r):g}"] = float(scan["median_p"][i, j])
            metrics[f"r_scan_p_asymptotic_m{mass:g}_r{float(r):g}"] = float(
                scan["median_p_asymptotic"][i, j]
            )
    tracker.log_metrics(metrics)
    tracker.save_json(
        "anomaly_results",
        {
            "metrics": metrics,
            "masses": list(masses),
            "nr_slopes_kev": [float(tpc.nr_spectrum_slope(m)) for m in masses],
            # Z floored at 0 (one-sided; p = 1 would give -inf).
            "sensitivity": {
                label: _floats(
                    {
                        k: np.maximum(np.asarray(v), 0.0) if k == "median_z" else v
                        for k, v in c.items()
                        if not k.startswith("null_")
                    }
                )
                for label, c in curves.items()
            },
            "r_scan": _floats(scan),
            "vae_val_loss": _floats(vae_fit.val_loss),
            "classifier_val_loss": _floats(classifier_fit.val_loss),
        },
    )
    finite = {k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    return finite
