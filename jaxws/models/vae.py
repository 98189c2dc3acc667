"""A beta-VAE with a Gaussian decoder of learned variance, for background-only density modelling.

Follows the anomaly-aware search of Scaffidi and Trotta (DARWIN, arXiv:2410.00755): a VAE
trained on electron recoils only; its per-event negative ELBO is the unsupervised part of the
anomaly score. Conventions:

* encoder q(z | x) = N(mu(x), diag sigma^2(x)), prior p(z) = N(0, 1);
* decoder p(x | z) = N(mu_D(z), diag sigma_D^2), with sigma_D either a network output per event
  (`decoder_variance="network"`, as in the slides) or one learned number per feature
  (`"feature"`, the exact family of a linear-Gaussian model);
* per event, -ELBO_beta(x) = -E_q[log p(x | z)] + beta KL(q(z | x) || p(z)), the expectation
  estimated with `n_samples` reparameterised draws from the rng stream "sample"; beta = 1 gives
  the true -ELBO, an upper bound of -log p(x).

`__call__(x, train)` returns the per-event -ELBO_beta (the training loss; use
`loss_fn=lambda out, y: out` with `jaxws.train.fit`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_TWO_PI = math.log(2.0 * math.pi)


def gaussian_log_density(x: jax.Array, mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """Log-density log N(x | mean, diag exp(log_variance)) summed over the last axis."""
    return -0.5 * jnp.sum(
        LOG_TWO_PI + log_variance + (x - mean) ** 2 * jnp.exp(-log_variance), axis=-1
    )


def kl_to_standard_normal(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """KL(N(mean, diag exp(log_variance)) || N(0, 1)) summed over the last axis (closed form)."""
    return 0.5 * jnp.sum(jnp.exp(log_variance) + mean**2 - 1.0 - log_variance, axis=-1)


class BetaVAE(nn.Module):
    """beta-VAE with MLP encoder and decoder (empty `hidden` gives the linear VAE).

    Attributes:
      data_dim: number of input features D.
      latent_dim: latent size.
      hidden: hidden layer widths of the encoder (the decoder mirrors them).
      beta: weight of the KL term in the loss returned by `__call__`.
      decoder_variance: "network" (per-event log-variance head) or "feature" (one per feature).
      min_log_variance: soft floor of the decoder log-variance, so the likelihood stays bounded.
      n_samples: reparameterised draws per event for the reconstruction expectation.
    """

    data_dim: int
    latent_dim: int = 2
    hidden: Sequence[int] = (64, 64)
    beta: float = 1.0
    decoder_variance: str = "network"
    min_log_variance: float = -9.0
    n_samples: int = 1

    def setup(self) -> None:
        """Create the encoder and decoder layers.

        Raises:
          ValueError: If `decoder_variance` is neither "network" nor "feature".
        """
        if self.decoder_variance not in ("network", "feature"):
            raise ValueError(
                f"BetaVAE.decoder_variance must be 'network' or 'feature', "
                f"got {self.decoder_variance!r}"
            )
        self.encoder_layers = [
            nn.Dense(width, name=f"encoder_{i}") for i, width in enumerate(self.hidden)
        ]
        self.encoder_mean = nn.Dense(self.latent_dim, name="encoder_mean")
        self.encoder_log_variance = nn.Dense(self.latent_dim, name="encoder_log_variance")
        self.decoder_layers = [
            nn.Dense(width, name=f"decoder_{i}") for i, width in enumerate(reversed(self.hidden))
        ]
        self.decoder_mean = nn.Dense(self.data_dim, name="decoder_mean")
        if self.decoder_variance == "network":
            self.decoder_log_variance = nn.Dense(self.data_dim, name="decoder_log_variance")
        else:
            self.decoder_log_variance_param = self.param(
                "decoder_log_variance", nn.initializers.zeros, (self.data_dim,)
            )

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Posterior mean and log-variance (B, latent_dim) each."""
        h = x
        for layer in self.encoder_layers:
            h = nn.gelu(layer(h))
        return self.encoder_mean(h), self.encoder_log_variance(h)

    def decode(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Decoder mean and (floored) log-variance (..., data_dim) each."""
        h = z
        for layer in self.decoder_layers:
            h = nn.gelu(layer(h))
        mean = self.decoder_mean(h)
        if self.decoder_variance == "network":
            raw = self.decoder_log_variance(h)
        else:
            raw = jnp.broadcast_to(self.decoder_log_variance_param, mean.shape)
        # Soft floor: a Gaussian with vanishing variance would make the likelihood unbounded.
        floor = self.min_log_variance
        return mean, floor + jax.nn.softplus(raw - floor)

    def elbo_terms(self, x: jax.Array, n_samples: int | None = None) -> tuple[jax.Array, jax.Array]:
        """Per-event Monte Carlo E_q[log p(x | z)] and closed-form KL(q || p), shapes (B,).

        Draws `n_samples` (default: the module's) latent samples from the rng stream "sample"
        (a fixed key when the stream is absent).
        """
        samples = self.n_samples if n_samples is None else n_samples
        mean, log_variance = self.encode(x)
        # Without a "sample" stream (the engine's validation pass, `predict`) a fixed key is
        # used: still an unbiased one-key estimate, and the same noise every epoch.
        key = self.make_rng("sample") if self.has_rng("sample") else jax.random.key(0)
        noise = jax.random.normal(key, (samples, *mean.shape))
        z = mean + jnp.exp(0.5 * log_variance) * noise
        decoded_mean, decoded_log_variance = self.decode(z)
        reconstruction = jnp.mean(
            gaussian_log_density(x, decoded_mean, decoded_log_variance), axis=0
        )
        return reconstruction, kl_to_standard_normal(mean, log_variance)

    def negative_elbo(
        self, x: jax.Array, beta: float | jax.Array | None = None, n_samples: int | None = None
    ) -> jax.Array:
        """Per-event -E_q[log p(x | z)] + beta KL (beta defaults to the module's)."""
        weight = self.beta if beta is None else beta
        reconstruction, kl = self.elbo_terms(x, n_samples)
        return -reconstruction + weight * kl

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Per-event training loss -ELBO_beta (B,); `train` is unused (no dropout or norm)."""
        del train
        return self.negative_elbo(x)
