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
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.style
import mplhep
import numpy as np
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from jaxws.config import ConfigError, check, from_section
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm


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
        observed_file: optional .npz with user arrays ("data" and "reference" for NPLM, "a" and
            "b" for the symmetrized test); empty means a simulated observation.
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
        hidden: hidden widths of f ((4,) is the paper's 1-4-1).
        activation: hidden activation.
        clip: weight clipping of the kernels; None for none (the symmetrized test needs none).
        optimizer: "newton" (converges in ~200 iterations) or "adam" (the papers' choice).
        learning_rate: Adam rate (unused by newton).
        decay: Adam rate profile, "constant" or "cosine".
        epochs: Adam epochs or Newton iterations.
        checkpoints: epochs at which t is recorded (t against epochs); the last is ``epochs``.
        n_toys: null toys.
        chunk_size: toys trained together by one vmapped call.
        signal_fractions: injected signal fractions for the sensitivity curve.
        n_signal_toys: toys per signal fraction.
        n_permutations: permutations of the observed pair (symmetrized test).
        n_history_toys: toys drawn in the t-against-epochs figure.
    """

    name: str = "nplm"
    test: str = "nplm"
    hidden: tuple[int, ...] = (4,)
    activation: str = "sigmoid"
    clip: float | None = 9.0
    optimizer: str = "newton"
    learning_rate: float = 0.001
    decay: str = "constant"
    epochs: int = 200
    checkpoints: tuple[int, ...] = (25, 50, 100, 200)
    n_toys: int = 200
    chunk_size: int = 16
    signal_fractions: tuple[float, ...] = (0.005, 0.01, 0.02)
    n_signal_toys: int = 20
    n_permutations: int = 200
    n_history_toys: int = 8

    def __post_init__(self) -> None:
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
            all(math.isfinite(s) and s > 0 for s in self.signal_fractions),
            f"method.signal_fractions must be > 0, got {self.signal_fractions}",
        )
        self.network()  # validates hidden, activation
        self.train_spec()  # validates epochs, checkpoints, optimizer, decay

    def network(self) -> nplm.NetworkSpec:
        """The architecture of f."""
        return nplm.NetworkSpec(1, tuple(self.hidden), self.activation)

    def train_spec(self) -> nplm.TrainSpec:
        """The static schedule."""
        points = tuple(c for c in self.checkpoints if c < self.epochs) + (self.epochs,)
        return nplm.TrainSpec(self.epochs, points, self.decay, optimizer=self.optimizer)

    def hparams(self) -> nplm.Hparams:
        """Per-member numbers (clip inf when unclipped)."""
        clip = math.inf if self.clip is None else self.clip
        return nplm.Hparams(jnp.float32(self.learning_rate), jnp.float32(clip))


# --------------------------------------------------------------------------------------------
# Toy ensembles
# --------------------------------------------------------------------------------------------


def _largest_fraction(settings: NPLMSettings, signal_fraction: float) -> float:
    # One buffer size for the null and all signal toys: the compiled fit is shared.
    return max(signal_fraction, *settings.signal_fractions)


def nplm_toy_statistics(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    n_toys: int,
    signal_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """t of NPLM toys: fresh reference (N_R) and data (Poisson(N(R)(1+s))) per toy.

    Args:
        key: typed key, consumed.
        data: toy configuration.
        settings: method settings.
        n_toys: number of toys.
        signal_fraction: injected signal fraction s (0: null toys).

    Returns:
        ``(t, t_history)`` of shapes (n_toys,) and (n_toys, n_checkpoints).
    """
    shape = data.signal_shape()
    n_max = toys.capacity(data.n_expected * (1.0 + _largest_fraction(settings, signal_fraction)))
    reference_mask = jnp.ones(data.n_reference)

    @jax.jit
    @jax.vmap
    def make(toy_key):
        k_data, k_reference = jax.random.split(toy_key)
        sample = toys.sample_data(k_data, data.n_expected, signal_fraction, shape, n_max)
        reference = toys.sample_reference(k_reference, data.n_reference)
        x, dw, rw = nplm.nplm_inputs(
            sample.events, sample.mask, reference, reference_mask, data.n_expected
        )
        return x, dw, rw, sample.overflow

    k_toys, k_fit = jax.random.split(key)
    toy_keys = jax.random.split(k_toys, n_toys)
    fit_keys = jax.random.split(k_fit, n_toys)
    if settings.clip is None:
        # Same refusal as for user data: unclipped NPLM diverges where data leave the reference.
        x, dw, rw, _ = make(toy_keys[:1])
        events = np.asarray(x[0])
        is_data, is_reference = np.asarray(dw[0]) > 0, np.asarray(rw[0]) > 0
        nplm.check_nplm_inputs(events[is_data], events[is_reference], None, (0.0, None))
    t, history = [], []
    for start in range(0, n_toys, settings.chunk_size):
        stop = min(start + settings.chunk_size, n_toys)
        x, dw, rw, overflow = make(toy_keys[start:stop])
        toys.check_no_overflow(overflow, "NPLM toys")
        fit = nplm.fit_ensemble(
            fit_keys[start:stop],
            x,
            dw,
            rw,
            settings.hparams(),
            settings.network(),
            settings.train_spec(),
            chunk_size=settings.chunk_size,
        )
        t.append(fit.t)
        history.append(fit.t_history)
    return np.concatenate(t), np.concatenate(history)


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
    for start in range(0, n_toys, settings.chunk_size):
        stop = min(start + settings.chunk_size, n_toys)
        toy = make(toy_keys[start:stop])
        toys.check_no_overflow(toy.overflow, "flavour toys")
        chunk_t, chunk_history = nplm.symmetrized_test(
            fit_keys[start:stop],
            toy.events,
            toy.in_a,
            toy.valid,
            settings.hparams(),
            settings.network(),
            settings.train_spec(),
            chunk_size=settings.chunk_size,
        )
        t.append(chunk_t)
        history.append(chunk_history)
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
        events: pooled events (n, 1).
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
    t, _ = nplm.symmetrized_test(
        jax.random.split(k_fit, n_permutations),
        jnp.asarray(events),
        labels,
        jnp.asarray(valid),
        settings.hparams(),
        settings.network(),
        settings.train_spec(),
        chunk_size=settings.chunk_size,
    )
    return t


#: fewest events per observed array: below this a t value has no useful null distribution
MIN_OBSERVED_EVENTS = 10


def _load_observed(path: str, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays of a user `.npz`, refusing anything but numeric arrays of enough events."""
    file = Path(path)
    where = f"data.observed_file {path!r}"
    if not file.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ConfigError(
            f"{where} is not a readable .npz archive of numeric arrays (jaxws never loads "
            f"pickles): {' '.join(str(error).split())[:120]}"
        ) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ConfigError(f"{where} holds a single .npy array; it needs an .npz with {names}")
    with archive as arrays:
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ConfigError(f"{where} lacks arrays {missing}; it holds {list(arrays)}")
        try:
            loaded = [arrays[n] for n in names]
        except (OSError, ValueError, EOFError) as error:
            raise ConfigError(f"{where}: an array cannot be read ({error})") from error
    for name, array in zip(names, loaded, strict=True):
        if array.dtype.kind not in "fiu":
            raise ConfigError(f"{where}: array {name!r} has dtype {array.dtype}; need numbers")
        if len(array) < MIN_OBSERVED_EVENTS:
            raise ConfigError(
                f"{where}: array {name!r} has {len(array)} events; need at least "
                f"{MIN_OBSERVED_EVENTS}"
            )
        bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if bad.any():
            raise ConfigError(
                f"{where}: array {name!r} has {int(bad.sum())} events with NaN or inf (first at "
                f"index {int(np.argmax(bad))})"
            )
    return loaded[0], loaded[1]


def _checked_observed(data, settings) -> tuple[np.ndarray, np.ndarray]:
    """The observed file's arrays, checked as the test will use them (errors name the file)."""
    names = ("data", "reference") if settings.test == "nplm" else ("a", "b")
    first, second = _load_observed(data.observed_file, names)
    try:
        if settings.test == "nplm":
            return nplm.check_nplm_inputs(first, second, settings.clip, (0.0, None))
        return nplm.check_samples(first, second, ("a", "b"), (0.0, None))
    except ValueError as error:
        raise ConfigError(f"data.observed_file {data.observed_file!r}: {error}") from error


def validate(cfg: Any) -> None:
    """Check the ``data`` and ``method`` sections and the observed file before any toy runs."""
    data = from_section(ExponentialToyConfig, cfg.get("data"), "data")
    settings = from_section(NPLMSettings, cfg.get("method"), "method")
    if data.observed_file:
        _checked_observed(data, settings)


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
    """Null toys, chi2 comparison, t against epochs, sensitivity, observed p-values.

    Args:
        cfg: the resolved config (sections ``data`` and ``method``).
        key: typed PRNG key, consumed.
        run_dir: the run directory (outputs go through the tracker).
        tracker: ``jaxws.track.Tracker``-like (log_metrics, save_json, save_figure).

    Returns:
        Metrics: chi2 comparison of the null, sensitivity per signal fraction, observed p/Z.
    """
    data = from_section(ExponentialToyConfig, cfg.get("data"), "data")
    settings = from_section(NPLMSettings, cfg.get("method"), "method")
    n_params = nplm.n_parameters(settings.network())
    symmetrized = settings.test == "symmetrized"
    # NPLM: normalisation is a free direction (N(R) expected, N_D Poisson): dof = n_params.
    # Symmetrized: weights use observed counts, so the normalisation direction is fixed.
    dof = n_params - 1 if symmetrized else n_params
    toy_statistics = symmetrized_toy_statistics if symmetrized else nplm_toy_statistics
    k_null, k_signal, k_observed, k_permutation = jax.random.split(key, 4)

    t_null, t_history = toy_statistics(k_null, data, settings, settings.n_toys)
    comparison = nplm.compare_with_chi2(t_null, dof)
    metrics: dict[str, Any] = {f"null/{k}": v for k, v in comparison.items()}
    metrics["n_parameters"] = n_params
    tracker.save_json(
        "null_toys",
        {
            "t": t_null.tolist(),
            "checkpoints": list(settings.train_spec().checkpoints),
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
        history_figure(settings.train_spec().checkpoints, t_history, dof, settings.n_history_toys),
    )

    sensitivity = []
    signal_keys = jax.random.split(k_signal, len(settings.signal_fractions))
    for fraction, signal_key in zip(settings.signal_fractions, signal_keys, strict=True):
        t_signal, _ = toy_statistics(signal_key, data, settings, settings.n_signal_toys, fraction)
        median = float(np.median(t_signal))
        sensitivity.append(
            {
                "signal_fraction": fraction,
                "median_t": median,
                "z_empirical": float(nplm.z_from_p(nplm.empirical_p_value(median, t_null))),
                "z_chi2": float(nplm.z_from_p(nplm.chi2_p_value(median, dof))),
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
    for row in sensitivity:
        metrics[f"sensitivity/{row['signal_fraction']:g}/z_empirical"] = row["z_empirical"]
        metrics[f"sensitivity/{row['signal_fraction']:g}/z_chi2"] = row["z_chi2"]

    metrics.update(_observed(k_observed, k_permutation, data, settings, t_null, dof))
    tracker.log_metrics(metrics)
    return metrics


def _observed(
    key: jax.Array,
    permutation_key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMSettings,
    t_null: np.ndarray,
    dof: float,
) -> dict[str, float]:
    """t of the observation (user arrays or one simulated toy) with p-values and Z."""
    k_toy, k_fit = jax.random.split(key)
    result: dict[str, float] = {}
    if settings.test == "nplm":
        if data.observed_file:
            observed, reference = _checked_observed(data, settings)
        else:
            n_max = toys.capacity(data.n_expected * (1 + data.observed_signal_fraction))
            k_data, k_reference = jax.random.split(k_toy)
            sample = toys.sample_data(
                k_data, data.n_expected, data.observed_signal_fraction, data.signal_shape(), n_max
            )
            observed = np.asarray(sample.events)[np.asarray(sample.mask) > 0]
            reference = np.asarray(toys.sample_reference(k_reference, data.n_reference))
        observed, reference = nplm.check_nplm_inputs(
            observed, reference, settings.clip, (0.0, None)
        )
        x, dw, rw = nplm.nplm_inputs(
            observed, np.ones(len(observed)), reference, np.ones(len(reference)), data.n_expected
        )
        fit = nplm.fit_ensemble(
            k_fit[None], x, dw, rw, settings.hparams(), settings.network(), settings.train_spec()
        )
        t_observed = float(fit.t[0])
    else:
        if data.observed_file:
            first, second = _checked_observed(data, settings)
            events, in_a, valid = toys.pad_arrays(first, second)
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
        t, _ = nplm.symmetrized_test(
            k_fit[None],
            events,
            in_a,
            valid,
            settings.hparams(),
            settings.network(),
            settings.train_spec(),
        )
        t_observed = float(t[0])
        t_permutation = permutation_null(
            permutation_key, events, in_a, valid, settings, settings.n_permutations
        )
        p_permutation = nplm.empirical_p_value(t_observed, t_permutation)
        result["observed/p_permutation"] = p_permutation
        result["observed/z_permutation"] = float(nplm.z_from_p(p_permutation))
        result["permutation/fitted_dof"] = nplm.fit_chi2_dof(t_permutation)
    p_toys = nplm.empirical_p_value(t_observed, t_null)
    p_chi2 = float(nplm.chi2_p_value(t_observed, dof))
    result.update(
        {
            "observed/t": t_observed,
            "observed/p_toys": p_toys,
            "observed/z_toys": float(nplm.z_from_p(p_toys)),
            "observed/p_chi2": p_chi2,
            "observed/z_chi2": float(nplm.z_from_p(p_chi2)),
        }
    )
    return result
