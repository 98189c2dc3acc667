"""The two networks behind the anomaly score: a background-only beta-VAE and an ER/NR classifier.

Following Scaffidi and Trotta (DARWIN, arXiv:2410.00755): the beta-VAE (`jaxws.models.vae`) is
trained on electron-recoil background only and gives the per-event -ELBO; an MLP
(`jaxws.models.mlp`) separates ER from a flat-spectrum NR sample (class-balanced, so it gives
p(NR | x) at equal priors and does not know the WIMP mass). Both are fitted with
`jaxws.train.fit`. A `Scorer` holds the trained pieces and gives (-ELBO, logit) per event, from
which TS = -ELBO + R H_B follows for any R (`jaxws.stats.anomaly.score`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxws.methods.anomaly.samples import Standardiser, features_of
from jaxws.methods.anomaly.settings import ClassifierConfig, NetworkTraining, VAEConfig
from jaxws.models.mlp import MLP
from jaxws.models.vae import BetaVAE
from jaxws.rng import numpy_generator
from jaxws.stats.roc import auc_of_samples
from jaxws.train import FitResult, Hparams, MemberData, TrainConfig, fit, predict

SCORE_CHUNK = 4096


def _split(key: jax.Array, n: int, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    # A host permutation seeded by the key's bits (no device program to compile).
    order = numpy_generator(key).permutation(n)
    n_val = max(1, round(validation_fraction * n))
    return order[n_val:], order[:n_val]


def _fit_on_features(
    key: jax.Array,
    model: Any,
    x: np.ndarray,
    labels: np.ndarray,
    settings: NetworkTraining,
    progress: bool | str,
    weights: np.ndarray | None = None,
    loss_fn: Callable | None = None,
) -> tuple[FitResult, np.ndarray]:
    """Split off a validation fraction and fit `model` on x; (FitResult, validation indices)."""
    split_key, fit_key = jax.random.split(key)
    train, val = _split(split_key, x.shape[0], settings.validation_fraction)
    event_weights = () if weights is None else (weights[train], weights[val])
    member = MemberData.from_arrays(train, labels[train], val, labels[val], *event_weights)
    config = TrainConfig(
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
    )
    options = {} if loss_fn is None else {"loss_fn": loss_fn}
    result = fit(
        fit_key,
        model,
        x,
        member,
        Hparams(learning_rate=settings.learning_rate),
        config,
        progress=progress,
        **options,
    )
    return result, val


def train_vae(
    key: jax.Array, x: np.ndarray, settings: VAEConfig, progress: bool | str = False
) -> tuple[BetaVAE, FitResult]:
    """Fit the beta-VAE on background features (loss: the per-event -ELBO_beta).

    Args:
      key: PRNG key (validation split and fit).
      x: (N, d) standardised background features.
      settings: section `method.vae`.
      progress: a progress-bar label, or False.

    Returns:
      (model, FitResult).
    """
    model = BetaVAE(
        data_dim=x.shape[1],
        latent_dim=settings.latent_dim,
        hidden=settings.hidden,
        beta=settings.beta,
        decoder_variance=settings.decoder_variance,
    )
    labels = np.zeros(x.shape[0])
    result, _ = _fit_on_features(
        key, model, x, labels, settings, progress, loss_fn=lambda outputs, labels: outputs
    )
    return model, result


def train_classifier(
    key: jax.Array,
    x: np.ndarray,
    labels: np.ndarray,
    settings: ClassifierConfig,
    progress: bool | str = False,
) -> tuple[MLP, FitResult, np.ndarray]:
    """Fit the ER-vs-NR MLP with class-balanced weights (binary cross-entropy).

    Args:
      key: PRNG key (validation split and fit).
      x: (N, d) standardised features.
      labels: (N,) 1 for NR, 0 for ER.
      settings: section `method.classifier`.
      progress: a progress-bar label, or False.

    Returns:
      (model, FitResult, validation indices).
    """
    model = MLP(
        feature_widths=settings.feature_widths,
        head_widths=settings.head_widths,
        standardise=False,
    )
    # Balanced classes: the classifier estimates p(NR | x) at equal priors.
    fraction_nr = labels.mean()
    weights = np.where(labels > 0, 0.5 / fraction_nr, 0.5 / (1.0 - fraction_nr))
    result, val = _fit_on_features(key, model, x, labels, settings, progress, weights=weights)
    return model, result, val


def negative_elbo(
    model: BetaVAE, variables: dict, x: np.ndarray, key: jax.Array, n_samples: int
) -> np.ndarray:
    """Per-event -ELBO_beta averaged over `n_samples` latent draws (chunk c uses fold_in(key, c)).

    Chunks are padded to SCORE_CHUNK events so that one compiled program serves every sample.

    Args:
      model: the VAE.
      variables: its trained variables.
      x: (N, d) standardised features.
      key: PRNG key of the latent draws.
      n_samples: latent draws per event.

    Returns:
      (N,) -ELBO_beta.
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
    """Posterior means mu(x), (N, latent_dim), of the VAE's encoder."""
    return np.asarray(model.apply(variables, x, method=BetaVAE.encode)[0])


@dataclasses.dataclass(frozen=True)
class Scorer:
    """The trained pieces of the score: standardisation, VAE and classifier.

    `scorer(events, key)` gives the per-event (-ELBO, classifier logit) from which TS = -ELBO +
    R H_B follows for any R (`jaxws.stats.anomaly.anomaly_score`).
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

    def latent_means(self, events: dict) -> np.ndarray:
        """The VAE's posterior means of events, (N, latent_dim)."""
        return latent_means(self.vae, self.vae_variables, self.features(events))

    def __call__(self, events: dict, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """Per-event (-ELBO_beta, classifier logit); `key` seeds the VAE's latent draws."""
        x = self.features(events)
        nelbo = negative_elbo(self.vae, self.vae_variables, x, key, self.score_samples)
        logit = np.asarray(predict(self.classifier, self.classifier_variables, x))
        return nelbo, logit


def train_scorer(
    key: jax.Array,
    samples: dict,
    vae_settings: VAEConfig,
    classifier_settings: ClassifierConfig,
    progress: bool = False,
) -> tuple[Scorer, dict[str, Any]]:
    """Standardise on the background training sample, train the VAE and the classifier.

    Args:
      key: PRNG key (VAE: fold_in 1, classifier: fold_in 2).
      samples: `jaxws.methods.anomaly.samples.simulate_samples`'s dict.
      vae_settings: section `method.vae`.
      classifier_settings: section `method.classifier`.
      progress: progress bars while training.

    Returns:
      (scorer, metrics): training metrics (best validation losses, epochs, classifier
      validation accuracy and AUC) and, under keys starting with "_", the validation-loss
      curves and the two `FitResult`s (per-epoch training and validation losses).
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
        "classifier_val_auc": auc_of_samples(
            val_logits[val_labels == 1], val_logits[val_labels == 0]
        ),
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
        "_vae_fit": vae_fit,
        "_classifier_fit": classifier_fit,
    }
