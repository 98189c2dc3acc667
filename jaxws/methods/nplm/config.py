"""The two config sections of the NPLM method: the exponential toy and the test's settings.

``data`` (:class:`ExponentialToyConfig`): the 1D exponential toy of D'Agnolo & Wulzer
(arXiv:1806.02350) or a user's arrays. ``method`` (:class:`NPLMConfig`): which test (NPLM or
the symmetrized test of arXiv:2401.09530), the network f or kernel NPLM (Letizia et al. 2022),
its training and the toy counts; :meth:`NPLMConfig.fit` trains a chunk of toys with them.
See docs/nplm.md.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.config import check
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm
from jaxws.stats.nplm import kernel as kernel_nplm


@dataclasses.dataclass(frozen=True)
class ExponentialToyConfig:
    """Section ``data``: the exponential toy (reference exp(-x) on x >= 0).

    Attributes:
        name: group name.
        n_reference: N_R, reference events per NPLM toy.
        n_expected: N(R), data events expected under the reference (Poisson) for NPLM.
        n_a: expected size of sample A of the flavour toy (symmetrized test).
        n_b: expected size of sample B.
        signal_kind: "gaussian" bump or "tail" excess (Gamma(3)).
        signal_mean: bump position.
        signal_width: bump standard deviation.
        observed_signal_fraction: signal fraction of the "observed" flavour pair whose
            permutation null is built (symmetrized test).
        observed_file: optional .npz with user arrays, (n, d) or (n,) each, any number d of
            features: "data", "reference" and optionally "reference_weights" (one per reference
            event) for NPLM; "a" and "b" for the symmetrized test. Empty means a simulated
            observation. With a file, NPLM's null toys are drawn from its reference (see
            :func:`resampled_null_weights`) and ``n_expected`` is N(R) of the observation.
        fixed_reference: NPLM null toys share one reference sample (NPLM_package's
            toy_batch.py) instead of drawing a fresh one per toy; always the case with a file.
    """

    name: str = "nplm_exponential"
    n_reference: int = 200_000
    n_expected: float = 2000.0
    n_a: float = 2000.0
    n_b: float = 2000.0
    signal_kind: str = "gaussian"
    signal_mean: float = 4.0
    signal_width: float = 0.64
    observed_signal_fraction: float = 0.0
    observed_file: str = ""
    fixed_reference: bool = False

    def __post_init__(self) -> None:
        check(self.n_reference >= 1, f"data.n_reference must be >= 1, got {self.n_reference}")
        for field in ("n_expected", "n_a", "n_b"):
            value = getattr(self, field)
            check(math.isfinite(value) and value > 0, f"data.{field} must be > 0, got {value}")
        check(
            math.isfinite(self.observed_signal_fraction) and self.observed_signal_fraction >= 0,
            f"data.observed_signal_fraction must be >= 0, got {self.observed_signal_fraction}",
        )
        self.signal_shape()  # validates kind, mean, width

    def signal_shape(self) -> toys.SignalShape:
        """The signal shape as the samplers take it."""
        return toys.SignalShape(self.signal_kind, self.signal_mean, self.signal_width)


@dataclasses.dataclass(frozen=True)
class NPLMConfig:
    """Section ``method``: test, network, training and toy counts.

    Attributes:
        name: group name.
        test: "nplm" (data against a reference) or "symmetrized" (A against B).
        hidden: hidden widths of f ((4,) is the paper's 1-4-1); the input width is the number
            of features of the data.
        activation: hidden activation.
        clip: weight clipping value; None for none (the symmetrized test needs none).
        clip_scope: "all" (every weight, biases included: NPLM_package) or "kernels".
        init: "glorot" (NPLM_package's glorot-uniform kernels and biases) or "lecun".
        optimizer: "adam" (the papers' choice) or "newton" (an option; see docs/nplm.md).
        learning_rate: Adam rate (unused by newton).
        decay: Adam rate profile, "constant" or "cosine".
        epochs: Adam epochs or Newton iterations; t is -2 L after the last one.
        checkpoints: epochs at which t is also recorded (t against epochs); the last is
            ``epochs``.
        standardise: inputs as ``(x - mean) / std`` with the (weighted) reference's statistics
            (the pooled sample's for the symmetrized test), so the clip means the same in any
            units.
        n_toys: null toys.
        chunk_size: toys trained by one compiled call.
        schedule: "auto", "vmap" or "sequential" (lax.map) for the toys of a chunk.
        signal_fractions: injected signal fractions for the sensitivity curve (simulated
            data only).
        n_signal_toys: toys per signal fraction.
        n_permutations: permutations of the observed pair (symmetrized test).
        n_history_toys: toys drawn in the t-against-epochs figure.
        progress: progress bars over toys (tqdm, on stderr).
        model: "neural" (the network f) or "kernel" (kernel NPLM, Letizia et al. 2022:
            Nystrom Gaussian kernel, :mod:`jaxws.stats.nplm.kernel`; NPLM test only).
        kernel_centres: M, Nystrom centres of the kernel model.
        kernel_penalty: lambda of its L2 penalty (units of the summed loss).
        kernel_width: Gaussian width sigma (standardised units); null means the
            ``kernel_width_quantile`` of the reference's pairwise distances.
        kernel_width_quantile: that quantile (0.9 in the paper).
        kernel_iterations: the most Newton iterations of the (convex) kernel fit, which stops
            once converged (:class:`jaxws.stats.nplm.kernel.KernelSpec`); a toy that does not
            converge within them is counted and reported.
        normalisation_sigma: standard deviation of the normalisation nuisance (the log of the
            expected count; arXiv:2111.13633, :mod:`jaxws.stats.nplm.nuisances`); 0 is off.
            With a nuisance on, t = tau - Delta (simulated exponential toys, NPLM, neural,
            Adam only; no sensitivity or observation yet).
        scale_sigma: standard deviation of the log-scale nuisance of the exponential toy's
            observable; 0 is off.
        true_nuisances: (normalisation, scale) at which the toys' data are drawn, in units of
            their sigmas; the auxiliary measurements are drawn around them.
    """

    name: str = "nplm"
    test: str = "nplm"
    hidden: tuple[int, ...] = (4,)
    activation: str = "sigmoid"
    clip: float | None = 9.0
    clip_scope: str = "all"
    init: str = "glorot"
    optimizer: str = "adam"
    learning_rate: float = 0.001
    decay: str = "constant"
    epochs: int = 300_000
    checkpoints: tuple[int, ...] = (1000, 10000, 30000, 100000)
    standardise: bool = True
    n_toys: int = 200
    chunk_size: int = 16
    schedule: str = "auto"
    signal_fractions: tuple[float, ...] = (0.005, 0.01, 0.02)
    n_signal_toys: int = 20
    n_permutations: int = 200
    n_history_toys: int = 8
    progress: bool = True
    model: str = "neural"
    kernel_centres: int = 50
    kernel_penalty: float = 1.0
    kernel_width: float | None = None
    kernel_width_quantile: float = 0.9
    kernel_iterations: int = 30
    normalisation_sigma: float = 0.0
    scale_sigma: float = 0.0
    true_nuisances: tuple[float, ...] = (0.0, 0.0)

    def __post_init__(self) -> None:
        check(
            self.model in ("neural", "kernel"),
            f"method.model must be neural or kernel, got {self.model!r}",
        )
        check(
            self.model == "neural" or self.test == "nplm",
            "method.model=kernel is implemented for method.test=nplm only",
        )
        check(self.kernel_centres >= 1, "method.kernel_centres must be >= 1")
        check(self.kernel_iterations >= 1, "method.kernel_iterations must be >= 1")
        check(
            math.isfinite(self.kernel_penalty) and self.kernel_penalty > 0,
            f"method.kernel_penalty must be > 0, got {self.kernel_penalty}",
        )
        check(
            0 < self.kernel_width_quantile < 1,
            f"method.kernel_width_quantile must be in (0, 1), got {self.kernel_width_quantile}",
        )
        check(
            self.kernel_width is None or self.kernel_width > 0,
            f"method.kernel_width must be > 0 or null, got {self.kernel_width}",
        )
        check(
            self.test in ("nplm", "symmetrized"),
            f"method.test must be nplm or symmetrized, got {self.test!r}",
        )
        if self.clip is not None:
            check(
                isinstance(self.clip, int | float) and self.clip > 0,
                f"method.clip must be > 0 or null, got {self.clip!r}",
            )
            object.__setattr__(self, "clip", float(self.clip))
        check(self.learning_rate > 0, f"method.learning_rate must be > 0, got {self.learning_rate}")
        for field in ("n_toys", "chunk_size", "n_signal_toys", "n_permutations"):
            value = getattr(self, field)
            check(value >= 1, f"method.{field} must be >= 1, got {value}")
        check(self.n_history_toys >= 0, "method.n_history_toys must be >= 0")
        check(
            self.schedule in nplm.SCHEDULES,
            f"method.schedule must be one of {nplm.SCHEDULES}, got {self.schedule!r}",
        )
        check(
            all(math.isfinite(s) and s > 0 for s in self.signal_fractions),
            f"method.signal_fractions must be > 0, got {self.signal_fractions}",
        )
        self.network()  # validates hidden, activation
        self.training()  # validates epochs, checkpoints, optimizer, decay, clip_scope, init
        self._check_nuisances()

    def _check_nuisances(self) -> None:
        for field in ("normalisation_sigma", "scale_sigma"):
            value = getattr(self, field)
            check(
                isinstance(value, int | float) and math.isfinite(value) and value >= 0,
                f"method.{field} must be >= 0 (0 is off), got {value!r}",
            )
        truth = tuple(self.true_nuisances)
        check(
            len(truth) == 2 and all(math.isfinite(v) for v in truth),
            f"method.true_nuisances must be two finite numbers (units of sigma), got {truth}",
        )
        object.__setattr__(self, "true_nuisances", tuple(float(v) for v in truth))
        if not self.has_nuisances():
            check(
                truth == (0, 0),
                f"method.true_nuisances={list(truth)} needs a nonzero "
                "method.normalisation_sigma or method.scale_sigma",
            )
            return
        check(
            self.test == "nplm" and self.model == "neural" and self.optimizer == "adam",
            "nuisances (method.normalisation_sigma, method.scale_sigma) need method.test=nplm, "
            "method.model=neural and method.optimizer=adam",
        )

    def has_nuisances(self) -> bool:
        """Whether a systematic nuisance is on (t = tau - Delta, arXiv:2111.13633)."""
        return self.normalisation_sigma > 0 or self.scale_sigma > 0

    def nuisance_sigmas(self) -> tuple[float, float]:
        """(sigma_N, sigma_S) as :mod:`jaxws.stats.nplm.nuisances` takes them."""
        return (float(self.normalisation_sigma), float(self.scale_sigma))

    def network(self, n_inputs: int = 1) -> nplm.NetworkSpec:
        """The architecture of f for ``n_inputs`` features."""
        return nplm.NetworkSpec(n_inputs, tuple(self.hidden), self.activation)

    def training(self) -> nplm.NPLMTraining:
        """The static schedule."""
        points = (*(c for c in self.checkpoints if c < self.epochs), self.epochs)
        return nplm.NPLMTraining(
            self.epochs,
            points,
            self.decay,
            optimizer=self.optimizer,
            clip_scope=self.clip_scope,
            init=self.init,
        )

    def hparams(self) -> nplm.NPLMHparams:
        """Per-member numbers (clip inf when unclipped)."""
        clip = math.inf if self.clip is None else self.clip
        return nplm.NPLMHparams(jnp.float32(self.learning_rate), jnp.float32(clip))

    def with_kernel_width(self, reference: np.ndarray) -> NPLMConfig:
        """These settings with sigma from the reference (kernel model, width not given)."""
        if self.model != "kernel" or self.kernel_width is not None:
            return self
        width = kernel_nplm.kernel_width(reference, self.kernel_width_quantile)
        return dataclasses.replace(self, kernel_width=width)

    def recorded_checkpoints(self) -> tuple[int, ...]:
        """Training lengths at which t is recorded (the kernel fit records its end only)."""
        if self.model == "kernel":
            return (self.kernel_iterations,)
        return self.training().checkpoints

    def fit(self, keys: jax.Array, x: Any, data_weight: Any, reference_weight: Any) -> nplm.NPLMFit:
        """Train toys with these settings: ``fit_toys``, or the kernel fit.

        Args:
            keys: typed keys (E,), one per toy.
            x: events (E, n, d) or shared (n, d); the input width is d.
            data_weight: d_i, (E, n) or shared (n,).
            reference_weight: r_i, (E, n) or shared (n,).

        Returns:
            The fits with a leading toy axis (``params`` None for the kernel model, whose
            ``t_history`` holds its final t only).
        """
        if self.model == "kernel":
            if self.kernel_width is None:
                raise ValueError("kernel_width must be set before fitting (see with_kernel_width)")
            n_events = np.shape(data_weight)[-1]
            fits = kernel_nplm.fit_kernel_ensemble(
                keys,
                x,
                jnp.broadcast_to(jnp.asarray(data_weight, jnp.float32), (len(keys), n_events)),
                jnp.broadcast_to(jnp.asarray(reference_weight, jnp.float32), (len(keys), n_events)),
                self.kernel_width,
                self.kernel_penalty,
                kernel_nplm.KernelSpec(self.kernel_centres, self.kernel_iterations),
            )
            return nplm.NPLMFit(
                t=fits.t, t_history=fits.t[:, None], params=None, converged=fits.converged
            )
        return nplm.fit_toys(
            keys,
            x,
            data_weight,
            reference_weight,
            self.hparams(),
            self.network(int(np.shape(x)[-1])),
            self.training(),
            chunk_size=self.chunk_size,
            schedule=self.schedule,
        )
