"""NPLM and symmetrized NPLM experiments on the 1D exponential toy.

Follows D'Agnolo & Wulzer (arXiv:1806.02350, 1912.12155) for NPLM and Bressler, Savoray &
Zurgil (arXiv:2401.09530) for the symmetrized test; statistics in :mod:`jaxws.stats.nplm`,
toys in :mod:`jaxws.simulate.nplm_toys`.

``run`` trains null toys as vmapped ensembles, compares their t with chi2 (dof = number of
trainable parameters for NPLM, that minus one for the symmetrized test; and a fitted dof),
records t at a few epoch checkpoints (the drift with too many epochs), measures the median
significance of signal-injected toys against the empirical and the chi2 null, and for the
symmetrized test builds the permutation null of an observed pair. Config: ``data``
(:class:`ExponentialToyConfig`) and ``method`` (:class:`NPLMSettings`); see docs/nplm.md.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.style
import mplhep
import numpy as np
from matplotlib.figure import Figure
from scipy import stats as scipy_stats
from tqdm.auto import tqdm

from jaxws.config import ConfigError, check, from_section
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import kernel_nplm, nplm


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
class NPLMSettings:
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
            Nystrom Gaussian kernel, :mod:`jaxws.stats.kernel_nplm`; NPLM test only).
        kernel_centres: M, Nystrom centres of the kernel model.
        kernel_penalty: lambda of its L2 penalty (units of the summed loss).
        kernel_width: Gaussian width sigma (standardised units); null means the
            ``kernel_width_quantile`` of the reference's pairwise distances.
        kernel_width_quantile: that quantile (0.9 in the paper).
        kernel_iterations: Newton iterations of the (convex) kernel fit.
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
    checkpoints: tuple[int, ...] = ()
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
        self.train_spec()  # validates epochs, checkpoints, optimizer, decay, clip_scope, init

    def network(self, n_inputs: int = 1) -> nplm.NetworkSpec:
        """The architecture of f for ``n_inputs`` features."""
        return nplm.NetworkSpec(n_inputs, tuple(self.hidden), self.activation)

    def train_spec(self) -> nplm.TrainSpec:
        """The static schedule."""
        points = tuple(c for c in self.checkpoints if c < self.epochs) + (self.epochs,)
        return nplm.TrainSpec(
            self.epochs,
            points,
            self.decay,
            optimizer=self.optimizer,
            clip_scope=self.clip_scope,
            init=self.init,
        )

    def hparams(self) -> nplm.Hparams:
        """Per-member numbers (clip inf when unclipped)."""
        clip = math.inf if self.clip is None else self.clip
        return nplm.Hparams(jnp.float32(self.learning_rate), jnp.float32(clip))

    def with_kernel_width(self, reference: np.ndarray) -> NPLMSettings:
        """These settings with sigma from the reference (kernel model, width not given)."""
        if self.model != "kernel" or self.kernel_width is not None:
            return self
        width = kernel_nplm.kernel_width(reference, self.kernel_width_quantile)
        return dataclasses.replace(self, kernel_width=width)

    def recorded_checkpoints(self) -> tuple[int, ...]:
        """Training lengths at which t is recorded (the kernel fit records its end only)."""
        if self.model == "kernel":
            return (self.kernel_iterations,)
        return self.train_spec().checkpoints

    def fit(self, keys: jax.Array, x: Any, dw: Any, rw: Any) -> nplm.NPLMFit:
        """``fit_ensemble`` (or the kernel fit) with these settings (input width from ``x``)."""
        if self.model == "kernel":
            if self.kernel_width is None:
                raise ValueError("kernel_width must be set before fitting (see with_kernel_width)")
            n_events = np.shape(dw)[-1]
            t = kernel_nplm.fit_kernel_ensemble(
                keys,
                x,
                jnp.broadcast_to(jnp.asarray(dw, jnp.float32), (len(keys), n_events)),
                jnp.broadcast_to(jnp.asarray(rw, jnp.float32), (len(keys), n_events)),
                self.kernel_width,
                self.kernel_penalty,
                kernel_nplm.KernelSpec(self.kernel_centres, self.kernel_iterations),
            )
            return nplm.NPLMFit(t=t, t_history=t[:, None], params=None)
        return nplm.fit_ensemble(
            keys,
            x,
            dw,
            rw,
            self.hparams(),
            self.network(int(np.shape(x)[-1])),
            self.train_spec(),
            chunk_size=self.chunk_size,
            schedule=self.schedule,
        )


# --------------------------------------------------------------------------------------------
# Toy ensembles
# --------------------------------------------------------------------------------------------


def standardise_by_reference(x: jax.Array, weight: jax.Array) -> jax.Array:
    """``(x - mean) / std`` with the weighted statistics of the events of positive weight.

    Args:
        x: (n, d) events.
        weight: (n,) weights; the reference events (NPLM) or the pooled valid events
            (symmetrized) carry them, every other event 0.

    Returns:
        The standardised (n, d) events (vmappable).
    """
    w = weight / jnp.sum(weight)
    mean = w @ x
    std = jnp.sqrt(w @ (x - mean) ** 2)
    return (x - mean) / std


def _largest_fraction(settings: NPLMSettings, signal_fraction: float) -> float:
    # One buffer size for the null and all signal toys: the compiled fit is shared.
    return max(signal_fraction, *settings.signal_fractions)


def _progress(settings: NPLMSettings, total: int, what: str) -> tqdm:
    return tqdm(total=total, desc=what, unit="toy", disable=not settings.progress, leave=False)


def _nplm_toy_maker(
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    signal_fraction: float,
    shared_reference: jax.Array,
) -> Any:
    """Jitted, vmapped keys -> (x, data weight, reference weight, overflow) of NPLM toys."""
    shape = data.signal_shape()
    n_max = toys.capacity(data.n_expected * (1.0 + _largest_fraction(settings, signal_fraction)))
    reference_mask = jnp.ones(data.n_reference)

    @jax.jit
    @jax.vmap
    def make(toy_key):
        k_data, k_reference = jax.random.split(toy_key)
        if data.fixed_reference:
            k_reference = shared_reference
        sample = toys.sample_data(k_data, data.n_expected, signal_fraction, shape, n_max)
        reference = toys.sample_reference(k_reference, data.n_reference)
        x, dw, rw = nplm.nplm_inputs(
            sample.events, sample.mask, reference, reference_mask, data.n_expected
        )
        if settings.standardise:
            x = standardise_by_reference(x, rw)
        return x, dw, rw, sample.overflow

    return make


def nplm_toy_statistics(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    n_toys: int,
    signal_fraction: float = 0.0,
    reference_key: jax.Array | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """t of simulated NPLM toys: data Poisson(N(R)(1+s)), reference N_R events.

    Args:
        key: typed key, consumed.
        data: toy configuration; ``fixed_reference`` shares one reference among the toys.
        settings: method settings.
        n_toys: number of toys.
        signal_fraction: injected signal fraction s (0: null toys).
        reference_key: key of the shared reference when ``data.fixed_reference`` (the null,
            signal and observed toys of a run use the same one); None draws it from ``key``.

    Returns:
        ``(t, t_history)`` of shapes (n_toys,) and (n_toys, n_checkpoints).
    """
    k_toys, k_fit, k_shared = jax.random.split(key, 3)
    shared_reference = reference_key if reference_key is not None else k_shared
    make = _nplm_toy_maker(data, settings, signal_fraction, shared_reference)
    toy_keys = jax.random.split(k_toys, n_toys)
    fit_keys = jax.random.split(k_fit, n_toys)
    if settings.clip is None:
        # Same refusal as for user data: unclipped NPLM diverges where data leave the reference.
        x, dw, rw, _ = make(toy_keys[:1])
        events = np.asarray(x[0])
        is_data, is_reference = np.asarray(dw[0]) > 0, np.asarray(rw[0]) > 0
        nplm.check_nplm_inputs(events[is_data], events[is_reference], None)
    t, history = [], []
    label = "NPLM null toys" if signal_fraction == 0 else f"NPLM toys, signal {signal_fraction:g}"
    with _progress(settings, n_toys, label) as bar:
        for start in range(0, n_toys, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_toys)
            x, dw, rw, overflow = make(toy_keys[start:stop])
            toys.check_no_overflow(overflow, "NPLM toys")
            fit = settings.fit(fit_keys[start:stop], x, dw, rw)
            t.append(fit.t)
            history.append(fit.t_history)
            bar.update(stop - start)
    return np.concatenate(t), np.concatenate(history)


def resampled_null_weights(
    key: jax.Array, event_weights: jax.Array, n_expected: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One null toy drawn from a (weighted) reference sample, as per-event weights (vmappable).

    Poisson(N(R)) reference events become the toy's data: events are accepted with
    probability ``w_i / max w`` (so the accepted events follow the weighted reference
    distribution, unweighted, as real data) and the first Poisson(N(R)) accepted ones in a
    random order are taken. The remaining events are the toy's reference, reweighted to sum to
    N(R). Every toy shares the event array; only the weights change.

    Args:
        key: typed key, consumed.
        event_weights: (N_R,) reference event weights.
        n_expected: N(R).

    Returns:
        ``(data_weight, reference_weight, overflow)``; overflow is True when fewer events
        were accepted than the Poisson count asked for.
    """
    k_count, k_accept, k_order = jax.random.split(key, 3)
    w = jnp.asarray(event_weights, jnp.float32)
    accepted = jax.random.uniform(k_accept, w.shape) * jnp.max(w) < w
    count = jax.random.poisson(k_count, n_expected)
    priority = jnp.where(accepted, jax.random.uniform(k_order, w.shape), 2.0)
    chosen = (jnp.argsort(jnp.argsort(priority)) < count) & accepted
    data_weight = chosen.astype(jnp.float32)
    reference = jnp.where(chosen, 0.0, w)
    reference_weight = reference * (n_expected / jnp.sum(reference))
    return data_weight, reference_weight, count > jnp.sum(accepted)


def resampled_toy_statistics(
    key: jax.Array,
    reference: np.ndarray,
    reference_weights: np.ndarray,
    n_expected: float,
    settings: NPLMSettings,
    n_toys: int,
) -> tuple[np.ndarray, np.ndarray]:
    """t of NPLM null toys drawn from a user reference (:func:`resampled_null_weights`).

    Args:
        key: typed key, consumed.
        reference: (N_R, d) reference events, already standardised if asked.
        reference_weights: (N_R,) event weights.
        n_expected: N(R).
        settings: method settings.
        n_toys: number of toys.

    Returns:
        ``(t, t_history)``.
    """
    k_toys, k_fit = jax.random.split(key)
    make = jax.jit(
        jax.vmap(lambda k: resampled_null_weights(k, jnp.asarray(reference_weights), n_expected))
    )
    toy_keys = jax.random.split(k_toys, n_toys)
    fit_keys = jax.random.split(k_fit, n_toys)
    x = jnp.asarray(reference, jnp.float32)
    t, history = [], []
    with _progress(settings, n_toys, "NPLM null toys (from the reference)") as bar:
        for start in range(0, n_toys, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_toys)
            dw, rw, overflow = make(toy_keys[start:stop])
            toys.check_no_overflow(overflow, "NPLM toys drawn from the reference")
            fit = settings.fit(fit_keys[start:stop], x, dw, rw)
            t.append(fit.t)
            history.append(fit.t_history)
            bar.update(stop - start)
    return np.concatenate(t), np.concatenate(history)


def _symmetrized(
    keys: jax.Array, events: Any, in_a: Any, valid: Any, settings: NPLMSettings
) -> tuple[np.ndarray, np.ndarray]:
    events = jnp.asarray(events, jnp.float32)
    if settings.standardise:
        valid_array = jnp.asarray(valid, jnp.float32)
        if events.ndim == 3:
            events = jax.vmap(standardise_by_reference)(
                events, jnp.broadcast_to(valid_array, events.shape[:2])
            )
        else:
            events = standardise_by_reference(events, valid_array)
    return nplm.symmetrized_test(
        keys,
        events,
        in_a,
        valid,
        settings.hparams(),
        settings.network(int(events.shape[-1])),
        settings.train_spec(),
        chunk_size=settings.chunk_size,
    )


def symmetrized_toy_statistics(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    n_toys: int,
    signal_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``t_{A+B}(A) + t_{A+B}(B)`` of flavour toys (signal injected into A only).

    Args:
        key: typed key, consumed.
        data: toy configuration (n_a, n_b).
        settings: method settings.
        n_toys: number of toys.
        signal_fraction: injected signal fraction of A.

    Returns:
        ``(t, t_history)`` of shapes (n_toys,) and (n_toys, n_checkpoints).
    """
    shape = data.signal_shape()
    n_max_a = toys.capacity(data.n_a * (1.0 + _largest_fraction(settings, signal_fraction)))
    n_max_b = toys.capacity(data.n_b)
    make = jax.jit(
        jax.vmap(
            lambda k: toys.sample_flavour_toy(
                k, data.n_a, data.n_b, signal_fraction, shape, n_max_a, n_max_b
            )
        )
    )
    k_toys, k_fit = jax.random.split(key)
    toy_keys = jax.random.split(k_toys, n_toys)
    fit_keys = jax.random.split(k_fit, n_toys)
    t, history = [], []
    with _progress(settings, n_toys, "symmetrized toys") as bar:
        for start in range(0, n_toys, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_toys)
            toy = make(toy_keys[start:stop])
            toys.check_no_overflow(toy.overflow, "flavour toys")
            chunk_t, chunk_history = _symmetrized(
                fit_keys[start:stop], toy.events, toy.in_a, toy.valid, settings
            )
            t.append(chunk_t)
            history.append(chunk_history)
            bar.update(stop - start)
    return np.concatenate(t), np.concatenate(history)


def permutation_null(
    key: jax.Array,
    events: np.ndarray,
    in_a: np.ndarray,
    valid: np.ndarray,
    settings: NPLMSettings,
    n_permutations: int,
) -> np.ndarray:
    """Symmetrized t of random relabellings of one observed pair (same N_A, N_B).

    Args:
        key: typed key, consumed.
        events: pooled events (n, d).
        in_a: (n,) indicator of the observed A.
        valid: (n,) indicator of real events.
        settings: method settings.
        n_permutations: number of permutations.

    Returns:
        (n_permutations,) t values; the events are shared, only the labels change.
    """
    k_labels, k_fit = jax.random.split(key)
    n_a = jnp.sum(jnp.asarray(in_a) * jnp.asarray(valid))
    labels = jax.vmap(lambda k: nplm.permutation_labels(k, jnp.asarray(valid), n_a))(
        jax.random.split(k_labels, n_permutations)
    )
    fit_keys = jax.random.split(k_fit, n_permutations)
    t = []
    with _progress(settings, n_permutations, "permutations") as bar:
        for start in range(0, n_permutations, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_permutations)
            chunk_t, _ = _symmetrized(
                fit_keys[start:stop], events, labels[start:stop], valid, settings
            )
            t.append(chunk_t)
            bar.update(stop - start)
    return np.concatenate(t)


def clip_calibration(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    clips: tuple[float, ...],
    n_toys: int,
    significance_level: float = 0.01,
) -> list[dict[str, Any]]:
    """Scan weight-clip values: where does the NPLM null follow chi2(n_params)?

    The papers choose the clip so that null toys follow chi2 with dof = number of trainable
    parameters at the chosen training length (arXiv:1912.12155). Every clip value trains the
    same null toys (same data, reference and initial weights; clip is a vmapped leaf, so all
    clips share one compiled program).

    Args:
        key: typed key, consumed.
        data: toy configuration (simulated exponential).
        settings: method settings (everything but the clip).
        clips: clip values to scan.
        n_toys: null toys per clip.
        significance_level: a clip "follows chi2" when the KS p-value against chi2(dof) and the
            binomial p-values of the counts beyond chi2's 95% and 99% points all exceed it.

    Returns:
        One row per clip: ``clip``, ``follows_chi2`` and :func:`compare_with_chi2`'s numbers.
    """
    dof = nplm.n_parameters(settings.network())
    k_toys, k_fit, k_shared = jax.random.split(key, 3)
    make = _nplm_toy_maker(data, settings, 0.0, k_shared)
    fit_keys = jax.random.split(k_fit, n_toys)
    t_by_clip = {clip: [] for clip in clips}
    toy_keys = jax.random.split(k_toys, n_toys)
    with _progress(settings, n_toys * len(clips), "clip calibration") as bar:
        for start in range(0, n_toys, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_toys)
            x, dw, rw, overflow = make(toy_keys[start:stop])
            toys.check_no_overflow(overflow, "NPLM toys")
            n = stop - start
            tile = lambda a: jnp.concatenate([a] * len(clips))  # noqa: E731
            hparams = nplm.Hparams(
                jnp.full(n * len(clips), settings.learning_rate, jnp.float32),
                jnp.repeat(jnp.asarray(clips, jnp.float32), n),
            )
            fit = nplm.fit_ensemble(
                tile(fit_keys[start:stop]),
                tile(x),
                tile(dw),
                tile(rw),
                hparams,
                settings.network(int(x.shape[-1])),
                settings.train_spec(),
                chunk_size=settings.chunk_size * len(clips),
                schedule=settings.schedule,
            )
            for i, clip in enumerate(clips):
                t_by_clip[clip].append(fit.t[i * n : (i + 1) * n])
            bar.update(n * len(clips))
    rows = []
    for clip in clips:
        comparison = nplm.compare_with_chi2(np.concatenate(t_by_clip[clip]), dof)
        follows = min(
            comparison["ks_pvalue"],
            comparison["binomial_pvalue_q95"],
            comparison["binomial_pvalue_q99"],
        )
        rows.append({"clip": clip, "follows_chi2": follows > significance_level, **comparison})
    return rows


# --------------------------------------------------------------------------------------------
# User inputs (checked before any toy trains)
# --------------------------------------------------------------------------------------------


class Observation(NamedTuple):
    """Validated user arrays: NPLM (data, reference, weights) or symmetrized (a, b, None)."""

    first: np.ndarray
    second: np.ndarray
    reference_weights: np.ndarray | None


def load_observation(data: ExponentialToyConfig, settings: NPLMSettings) -> Observation | None:
    """Load and check ``data.observed_file``; None when the observation is simulated.

    Every array is checked here, before any toy trains, so a bad file costs nothing.

    Args:
        data: the data section.
        settings: the method section (test, clip).

    Returns:
        The validated arrays (float64, (n, d)).

    Raises:
        ValueError: one line naming the file, the array and the problem.
    """
    if not data.observed_file:
        return None
    path = data.observed_file
    where = f"data.observed_file {path!r}"
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{where} does not exist")
    names = ("data", "reference") if settings.test == "nplm" else ("a", "b")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            missing = [n for n in names if n not in arrays]
            if missing:
                raise ValueError(f"{where} lacks arrays {missing} (has {sorted(arrays.files)})")
            first, second = arrays[names[0]], arrays[names[1]]
            weights = arrays["reference_weights"] if "reference_weights" in arrays else None
    except ValueError as error:
        if str(error).startswith(where):
            raise
        raise ValueError(f"{where} is not a readable .npz file ({error})") from None
    except OSError as error:
        raise ValueError(f"{where} is not a readable .npz file ({error})") from None
    labels = tuple(f"{where}: array {n!r}" for n in names)
    try:
        if settings.test == "nplm":
            first, second = nplm.check_nplm_inputs(first, second, settings.clip)
            w = (
                np.ones(len(second))
                if weights is None
                else nplm.check_event_weights(
                    f"{where}: array 'reference_weights'", weights, len(second)
                )
            )
            if settings.standardise:
                nplm.reference_statistics(second, w)
            accepted = float(w.sum() / w.max())
            if accepted < 5.0 * data.n_expected:
                raise ValueError(
                    f"{where}: the reference holds {accepted:.0f} effective events, fewer than "
                    f"5 x N(R) = {5 * data.n_expected:g} needed to draw null toys from it"
                )
            return Observation(first, second, w)
        first, second = nplm.check_samples(first, second, ("a", "b"))
        return Observation(first, second, None)
    except ValueError as error:
        message = str(error)
        for name, label in zip(names, labels, strict=True):
            if message.startswith(f"{name} "):
                message = f"{label}{message[len(name) :]}"
                break
        if not message.startswith(where):
            message = f"{where}: {message}"
        raise ValueError(message) from None


def check_inputs(cfg: Any) -> None:
    """Check the config sections and any user file (the CLI calls this before writing).

    Args:
        cfg: the resolved config.

    Raises:
        ConfigError, ValueError: one line naming what is wrong.
    """
    data = from_section(ExponentialToyConfig, cfg.get("data"), "data")
    settings = from_section(NPLMSettings, cfg.get("method"), "method")
    try:
        observation = load_observation(data, settings)
    except ConfigError:
        raise
    except ValueError as error:  # a bad user file: one line, exit 2 at the CLI
        raise ConfigError(str(error)) from None
    if observation is not None and settings.test == "nplm":
        # Data outside the reference's range make the NPLM loss unbounded (the network can
        # put infinite weight where the reference has none): refuse them up front.
        low, high = observation.second.min(axis=0), observation.second.max(axis=0)
        outside = np.flatnonzero(
            ((observation.first < low) | (observation.first > high)).any(axis=1)
        )
        if len(outside):
            raise ConfigError(
                f"data.observed_file {data.observed_file!r}: {len(outside)} data events lie "
                f"outside the reference support (first at index {outside[0]}); the NPLM "
                "loss is unbounded there"
            )


def validate(cfg: Any) -> None:
    """`jaxws.methods.validate`'s hook: the sections and the observed file, before any toy."""
    check_inputs(cfg)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(8, 6))
    return figure, figure.subplots()


def null_histogram_figure(t_null: np.ndarray, dof: float, fitted_dof: float, label: str) -> Figure:
    """Histogram of null toys' t with the chi2(dof) and chi2(fitted dof) densities."""
    with matplotlib.style.context(mplhep.style.CMS):
        figure, ax = _figure()
        top = max(float(np.max(t_null)), scipy_stats.chi2(dof).ppf(0.999))
        ax.hist(t_null, bins=30, range=(0, top), density=True, histtype="step", label=label)
        grid = np.linspace(0, top, 400)
        ax.plot(grid, scipy_stats.chi2(dof).pdf(grid), label=rf"$\chi^2_{{{dof:g}}}$")
        ax.plot(
            grid,
            scipy_stats.chi2(fitted_dof).pdf(grid),
            linestyle="--",
            label=rf"$\chi^2$, fitted dof {fitted_dof:.1f}",
        )
        ax.set_xlabel("t")
        ax.set_ylabel("density")
        ax.legend()
    return figure


def history_figure(
    checkpoints: tuple[int, ...], t_history: np.ndarray, dof: float, n_show: int
) -> Figure:
    """t against epochs for a few toys, with the median over all toys and the chi2 median."""
    with matplotlib.style.context(mplhep.style.CMS):
        figure, ax = _figure()
        for row in t_history[:n_show]:
            ax.plot(checkpoints, row, color="grey", alpha=0.6, marker="o", markersize=3)
        ax.plot(checkpoints, np.median(t_history, axis=0), color="black", label="median of toys")
        ax.axhline(
            scipy_stats.chi2(dof).median(), linestyle="--", label=rf"$\chi^2_{{{dof:g}}}$ median"
        )
        ax.set_xscale("log")
        ax.set_xlabel("epochs")
        ax.set_ylabel("t")
        ax.legend()
    return figure


def sensitivity_figure(
    fractions: list[float], z_empirical: list[float], z_chi2: list[float]
) -> Figure:
    """Median Z of signal-injected toys against the signal fraction."""
    with matplotlib.style.context(mplhep.style.CMS):
        figure, ax = _figure()
        ax.plot(fractions, z_empirical, marker="o", label="empirical null")
        ax.plot(fractions, z_chi2, marker="s", linestyle="--", label=r"$\chi^2$ null")
        ax.set_xlabel("signal fraction")
        ax.set_ylabel("median Z")
        ax.legend()
    return figure


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def run(cfg: Any, key: jax.Array, run_dir: str | Path, tracker: Any) -> dict:
    """Null toys, chi2 comparison (bulk and tail), t against epochs, sensitivity, observation.

    Args:
        cfg: the resolved config (sections ``data`` and ``method``).
        key: typed PRNG key, consumed.
        run_dir: the run directory (outputs go through the tracker).
        tracker: ``jaxws.track.Tracker``-like (log_metrics, save_json, save_figure).

    Returns:
        Metrics: chi2 comparison of the null, sensitivity per signal fraction, observed t with
        p and Z from toys (``z_toys_is_bound`` when no toy reaches it) and from chi2, and
        ``figure`` (the figures folder).
    """
    data = from_section(ExponentialToyConfig, cfg.get("data"), "data")
    settings = from_section(NPLMSettings, cfg.get("method"), "method")
    observation = load_observation(data, settings)  # every input checked before any toy
    n_features = 1 if observation is None else observation.first.shape[1]
    n_params = nplm.n_parameters(settings.network(n_features))
    symmetrized = settings.test == "symmetrized"
    # NPLM: normalisation is a free direction (N(R) expected, N_D Poisson): dof = n_params.
    # Symmetrized: weights use observed counts, so the normalisation direction is fixed.
    dof = n_params - 1 if symmetrized else n_params
    k_null, k_signal, k_observed, k_permutation, k_reference = jax.random.split(key, 5)

    prepared = None
    if observation is not None and not symmetrized:
        prepared = _prepare_nplm_observation(observation, data, settings)
        settings = settings.with_kernel_width(prepared["reference"])
    elif settings.model == "kernel":
        reference = np.asarray(toys.sample_reference(k_reference, min(data.n_reference, 2000)))
        if settings.standardise:
            reference = (reference - reference.mean(0)) / reference.std(0)
        settings = settings.with_kernel_width(reference)
    if observation is not None and not symmetrized:
        t_null, t_history = resampled_toy_statistics(
            k_null,
            prepared["reference"],
            observation.reference_weights,
            data.n_expected,
            settings,
            settings.n_toys,
        )
    elif symmetrized:
        t_null, t_history = symmetrized_toy_statistics(k_null, data, settings, settings.n_toys)
    else:
        t_null, t_history = nplm_toy_statistics(
            k_null, data, settings, settings.n_toys, reference_key=k_reference
        )
    if settings.model == "kernel":
        # A penalised kernel model has no integer parameter count: chi2 at the fitted dof.
        dof = nplm.fit_chi2_dof(t_null[t_null > 0])
    comparison = nplm.compare_with_chi2(t_null, dof)
    metrics: dict[str, Any] = {f"null/{k}": v for k, v in comparison.items()}
    metrics["n_parameters"] = n_params if settings.model == "neural" else settings.kernel_centres
    if settings.model == "kernel":
        metrics["kernel_width"] = settings.kernel_width
    metrics["n_features"] = n_features
    tracker.save_json(
        "null_toys",
        {
            "t": t_null.tolist(),
            "checkpoints": list(settings.recorded_checkpoints()),
            "t_history": t_history.tolist(),
            "comparison": comparison,
        },
    )
    tracker.save_figure(
        "null_t_histogram",
        null_histogram_figure(t_null, dof, comparison["fitted_dof"], f"{settings.test} null toys"),
    )
    tracker.save_figure(
        "t_against_epochs",
        history_figure(settings.recorded_checkpoints(), t_history, dof, settings.n_history_toys),
    )

    if observation is None:  # sensitivity needs a signal model: simulated data only
        metrics.update(_sensitivity(k_signal, k_reference, data, settings, t_null, dof, tracker))
    metrics.update(
        _observed(
            k_observed, k_permutation, k_reference, data, settings, t_null, dof, prepared,
            observation,
        )
    )  # fmt: skip
    tracker.log_metrics(metrics)
    metrics["figure"] = str(Path(run_dir) / "figures")
    return metrics


def _sensitivity(
    key: jax.Array,
    reference_key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    t_null: np.ndarray,
    dof: float,
    tracker: Any,
) -> dict[str, float]:
    """Median Z of signal-injected toys per signal fraction, from the toys and from chi2."""
    symmetrized = settings.test == "symmetrized"
    sensitivity = []
    signal_keys = jax.random.split(key, len(settings.signal_fractions))
    for fraction, signal_key in zip(settings.signal_fractions, signal_keys, strict=True):
        if symmetrized:
            t_signal, _ = symmetrized_toy_statistics(
                signal_key, data, settings, settings.n_signal_toys, fraction
            )
        else:
            t_signal, _ = nplm_toy_statistics(
                signal_key, data, settings, settings.n_signal_toys, fraction, reference_key
            )
        result = nplm.significance(float(np.median(t_signal)), t_null, dof)
        sensitivity.append(
            {
                "signal_fraction": fraction,
                "median_t": result["t"],
                "z_empirical": result["z_toys"],
                "z_empirical_is_bound": result["z_toys_is_bound"],
                "z_chi2": result["z_chi2"],
            }
        )
    tracker.save_json("sensitivity", sensitivity)
    tracker.save_figure(
        "sensitivity",
        sensitivity_figure(
            [row["signal_fraction"] for row in sensitivity],
            [row["z_empirical"] for row in sensitivity],
            [row["z_chi2"] for row in sensitivity],
        ),
    )
    metrics: dict[str, float] = {}
    for row in sensitivity:
        metrics[f"sensitivity/{row['signal_fraction']:g}/z_empirical"] = row["z_empirical"]
        metrics[f"sensitivity/{row['signal_fraction']:g}/z_empirical_is_bound"] = row[
            "z_empirical_is_bound"
        ]
        metrics[f"sensitivity/{row['signal_fraction']:g}/z_chi2"] = row["z_chi2"]
    return metrics


def _prepare_nplm_observation(
    observation: Observation, data: ExponentialToyConfig, settings: NPLMSettings
) -> dict[str, np.ndarray]:
    """User data and reference, standardised by the weighted reference statistics."""
    observed, reference, weights = observation
    if settings.standardise:
        mean, std = nplm.reference_statistics(reference, weights)
        observed, reference = (observed - mean) / std, (reference - mean) / std
    return {"data": observed, "reference": reference, "weights": weights}


def _observed(
    key: jax.Array,
    permutation_key: jax.Array,
    reference_key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    t_null: np.ndarray,
    dof: float,
    prepared: dict | None,
    observation: Observation | None,
) -> dict[str, Any]:
    """t of the observation (user arrays or one simulated toy) with labelled p-values and Z.

    NPLM: p and Z from the null toys and from chi2(dof). Symmetrized: the permutation null of
    the observed pair is the default p-value (``observed/p``), toys and chi2 beside it.
    """
    k_toy, k_fit = jax.random.split(key)
    result: dict[str, Any] = {}
    if settings.test == "nplm":
        if prepared is not None:
            observed, reference, weights = prepared["data"], prepared["reference"], None
            weights = prepared["weights"]
            x, dw, rw = nplm.nplm_inputs(
                jnp.asarray(observed, jnp.float32),
                np.ones(len(observed)),
                jnp.asarray(reference, jnp.float32),
                np.ones(len(reference)),
                data.n_expected,
                weights,
            )
        else:
            n_max = toys.capacity(data.n_expected * (1 + data.observed_signal_fraction))
            k_data, k_reference = jax.random.split(k_toy)
            if data.fixed_reference:
                k_reference = reference_key
            sample = toys.sample_data(
                k_data, data.n_expected, data.observed_signal_fraction, data.signal_shape(), n_max
            )
            reference = toys.sample_reference(k_reference, data.n_reference)
            x, dw, rw = nplm.nplm_inputs(
                sample.events, sample.mask, reference, jnp.ones(data.n_reference), data.n_expected
            )
            if settings.standardise:
                x = standardise_by_reference(x, rw)
        fit = settings.fit(k_fit[None], x, dw, rw)
        t_observed = float(fit.t[0])
    else:
        if observation is not None:
            events, in_a, valid = toys.pad_arrays(observation.first, observation.second)
        else:
            s = data.observed_signal_fraction
            toy = toys.sample_flavour_toy(
                k_toy,
                data.n_a,
                data.n_b,
                s,
                data.signal_shape(),
                toys.capacity(data.n_a * (1 + s)),
                toys.capacity(data.n_b),
            )
            events, in_a, valid = (np.asarray(a) for a in (toy.events, toy.in_a, toy.valid))
        t, _ = _symmetrized(k_fit[None], events, in_a, valid, settings)
        t_observed = float(t[0])
        t_permutation = permutation_null(
            permutation_key, events, in_a, valid, settings, settings.n_permutations
        )
        permutation = nplm.significance(t_observed, t_permutation, dof)
        result["observed/p_permutation"] = permutation["p_toys"]
        result["observed/z_permutation"] = permutation["z_toys"]
        result["observed/z_permutation_is_bound"] = permutation["z_toys_is_bound"]
        positive = t_permutation[t_permutation > 0]
        result["permutation/fitted_dof"] = (
            nplm.fit_chi2_dof(positive) if positive.size >= 2 else math.nan
        )
    toys_result = nplm.significance(t_observed, t_null, dof)
    result.update(
        {
            "observed/t": t_observed,
            "observed/p_toys": toys_result["p_toys"],
            "observed/z_toys": toys_result["z_toys"],
            "observed/z_toys_is_bound": toys_result["z_toys_is_bound"],
            "observed/p_chi2": toys_result["p_chi2"],
            "observed/z_chi2": toys_result["z_chi2"],
        }
    )
    if settings.test == "symmetrized":
        result["observed/p"] = result["observed/p_permutation"]
        result["observed/p_source"] = "permutations"
    else:
        result["observed/p"] = toys_result["p_toys"]
        result["observed/p_source"] = "toys"
    print(f"jaxws: observed {nplm.format_significance(toys_result)}")
    return result
