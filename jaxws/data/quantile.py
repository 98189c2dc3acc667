"""A per-feature quantile transform to a standard normal, fitted on training data (NumPy).

Boosted trees are invariant to monotone transforms of each input; a neural network is not. On
features whose interesting structure is a narrow peak inside a heavy-tailed distribution (the
LHCO jet masses), standardising keeps the peak narrow and the tails long; mapping each feature
through its empirical CDF and the inverse normal CDF spreads the data evenly instead.

Conventions (those of scikit-learn's `QuantileTransformer(output_distribution="normal")`,
which `tests/data/test_quantile.py` uses as an independent reference):

* `quantiles[:, j]`: the values of feature j at the `n_quantiles` evenly spaced probabilities
  `references = linspace(0, 1, n_quantiles)` (`numpy.percentile`, linear interpolation;
  `n_quantiles` is at most the number of events), over all fitted events (no subsampling).
* forward: u = the empirical CDF, piecewise linear between the quantiles (the mean of
  interpolating upwards and downwards, so a value repeated over several quantiles maps to the
  middle of its probability range); values at or below the first quantile get u = 0, at or
  above the last u = 1; u is clipped to [`BOUND`, 1 - `BOUND`] and z = Phi^-1(u). So z lies in
  [-5.199, 5.199] (`Z_MAX`), and events outside the fitted range saturate at the ends (as a
  tree's outermost bin does). (scikit-learn also sends x within an absolute 1e-7 above the
  first quantile, or below the last, to the ends; this module does not.)
* inverse: x = the quantiles interpolated at u = Phi(z) (the first or last quantile where u is
  within `BOUND` of 0 or 1); exact (to rounding) inside the fitted range where the quantiles
  are strictly increasing.

The transform is monotone non-decreasing in each feature, strictly increasing between
distinct quantiles.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import ndtr, ndtri

from jaxws.config import ConfigError

#: Probabilities are clipped to [BOUND, 1 - BOUND] before Phi^-1 (scikit-learn's constant).
BOUND = 1e-7
#: The largest |z| the forward map returns, -Phi^-1(BOUND) = 5.199.
Z_MAX = float(-ndtri(BOUND))


@dataclasses.dataclass(frozen=True)
class QuantileNormal:
    """Per-feature quantile -> standard normal transform of (N, D) feature vectors.

    Attributes:
      quantiles: (n_quantiles, D) float64, non-decreasing down each column.
      references: (n_quantiles,) float64, the probabilities of the quantiles, 0 to 1.
    """

    quantiles: np.ndarray
    references: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, n_quantiles: int = 1000) -> QuantileNormal:
        """Fit on (N, D) events: the quantiles of every feature (N >= 2)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ConfigError(f"the quantile transform needs (N >= 2, D) features, got {x.shape}")
        if not np.isfinite(x).all():
            raise ConfigError("the quantile transform needs finite features (NaN or inf found)")
        if isinstance(n_quantiles, bool) or not isinstance(n_quantiles, int) or n_quantiles < 2:
            raise ConfigError(f"n_quantiles must be an integer >= 2, got {n_quantiles!r}")
        n = min(n_quantiles, len(x))
        references = np.linspace(0.0, 1.0, n)
        quantiles = np.percentile(x, 100.0 * references, axis=0)
        # percentile can break monotonicity by rounding; enforce it as scikit-learn does.
        quantiles = np.maximum.accumulate(quantiles, axis=0)
        return QuantileNormal(quantiles, references)

    def uniform(self, x: np.ndarray) -> np.ndarray:
        """(N, D) empirical CDF values u in [0, 1] (before clipping and Phi^-1), float64."""
        x = self._checked(x)
        u = np.empty_like(x)
        r = self.references
        for j in range(x.shape[1]):
            q = self.quantiles[:, j]
            up = np.interp(x[:, j], q, r)
            down = -np.interp(-x[:, j], -q[::-1], -r[::-1])
            u[:, j] = 0.5 * (up + down)
            u[x[:, j] <= q[0], j] = 0.0
            u[x[:, j] >= q[-1], j] = 1.0
        return u

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N, D) standard-normal scores z (float64), |z| <= 5.199."""
        z = ndtri(np.clip(self.uniform(x), BOUND, 1.0 - BOUND))
        return np.clip(z, -Z_MAX, Z_MAX)  # symmetric: 1 - BOUND is not exact in float64

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """(N, D) normal scores -> features: the quantiles interpolated at Phi(z) (float64)."""
        z = self._checked(z)
        u = ndtr(z)
        x = np.stack(
            [np.interp(u[:, j], self.references, self.quantiles[:, j]) for j in range(z.shape[1])],
            axis=1,
        )
        # Beyond the forward map's range (|z| > Z_MAX): the ends of the fitted range.
        x = np.where(u < BOUND, self.quantiles[0], x)
        return np.where(u > 1.0 - BOUND, self.quantiles[-1], x)

    def _checked(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self.quantiles.shape[1]:
            raise ConfigError(
                f"the quantile transform was fitted on {self.quantiles.shape[1]} features, got "
                f"shape {x.shape}"
            )
        return x
