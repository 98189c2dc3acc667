"""The anomaly score TS = -ELBO + R H_B of Scaffidi and Trotta (DARWIN, arXiv:2410.00755).

Per event, H_B = -log(1 - p(x)) = softplus(logit) with p the classifier's probability of a
nuclear recoil and R >= 0 the weight of the classifier term (R = 0: pure VAE; large R: ranks
like the classifier). Larger TS means more anomalous.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike


def check_scores(values: ArrayLike, name: str) -> np.ndarray:
    """A 1-D float64 array of finite values, or a `ValueError` naming `name` and the problem.

    Args:
      values: per-event scores.
      name: what the values are (for the message).

    Returns:
      The values as a float64 NumPy array.

    Raises:
      ValueError: not 1-D, empty, or NaN/inf values (with their count).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least 2 events")
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return array


def anomaly_score(
    negative_elbo: jax.Array, classifier_logit: jax.Array, r: float | jax.Array
) -> jax.Array:
    """TS = -ELBO + R H_B with H_B = -log(1 - sigmoid(logit)) = softplus(logit) (pure, no checks).

    Args:
      negative_elbo: (N,) per-event -ELBO (or the beta-weighted loss) of the background VAE.
      classifier_logit: (N,) logit of p(NR | x).
      r: weight R of the classifier term (scalar; vmap it for a scan).

    Returns:
      (N,) scores; larger means more anomalous.
    """
    return negative_elbo + r * jax.nn.softplus(classifier_logit)


def checked_anomaly_score(
    negative_elbo: ArrayLike, classifier_logit: ArrayLike, r: float | np.ndarray | jax.Array
) -> jax.Array:
    """`anomaly_score` for one R or a 1-D array of R values ((N,) or (n_R, N)), with input checks.

    Args:
      negative_elbo: (N,) per-event -ELBO.
      classifier_logit: (N,) classifier logits.
      r: one R >= 0 or a 1-D array of them.

    Returns:
      float32 scores, (N,) for one R, (n_R, N) for several.

    Raises:
      ValueError: NaN/inf inputs, mismatched shapes, or R < 0.
    """
    nelbo = check_scores(negative_elbo, "negative_elbo")
    logit = check_scores(classifier_logit, "classifier_logit")
    if nelbo.shape != logit.shape:
        raise ValueError(
            f"negative_elbo {nelbo.shape} and classifier_logit {logit.shape} must match"
        )
    r_values = np.asarray(r, dtype=np.float64)
    if not np.all(np.isfinite(r_values)) or np.any(r_values < 0):
        raise ValueError(f"R must be finite and >= 0, got {r_values.tolist()}")
    nelbo, logit = jnp.asarray(nelbo, jnp.float32), jnp.asarray(logit, jnp.float32)
    if r_values.ndim == 0:
        return anomaly_score(nelbo, logit, float(r_values))
    return jax.vmap(anomaly_score, in_axes=(None, None, 0))(
        nelbo, logit, jnp.asarray(r_values, jnp.float32)
    )
