"""Event samples: background, signal and mixed `JetEvents`, drawn in chunks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from jaxws.data.events import JetEvents
from jaxws.data.samples import benchmark_names
from jaxws.simulate.jets.params import (
    _BENCHMARKS,
    DEFAULT_MAX_CONSTITUENTS,
    MJJ_WINDOW,
    BackgroundParams,
    SignalParams,
)
from jaxws.simulate.jets.sampling import _simulate


def simulate_background(
    key: jax.Array,
    n: int,
    params: BackgroundParams,
    max_constituents: int = DEFAULT_MAX_CONSTITUENTS,
    first_event: int | jax.Array = 0,
    mjj_range: tuple[float, float] = MJJ_WINDOW,
) -> dict[str, jax.Array]:
    """Draw `n` QCD dijet events in the mjj window (JetEvents fields except model_id).

    Jittable and vmappable over `key` and `params`.

    Args:
        key: typed PRNG key (consumed).
        n: number of events (static).
        params: background parameters (pytree).
        max_constituents: C, constituents kept per jet (static).
        first_event: index of the first event; event i uses fold_in(key, i), so chunks of a
            large sample drawn with increasing `first_event` equal one big draw.
        mjj_range: (low, high) GeV, where mjj is drawn (static; default the benchmark window
            4400-5800; a wide range such as (3500, 7000) gives the full dijet spectrum of a
            bump hunt, `jaxws.methods.hunt`). `region` still marks the benchmark's SR and SB.

    Returns:
        dict with constituents (n, 2, C, 3) float32, n_constituents (n, 2) int32, jets
        (n, 2, 4) float32, mjj (n,) float32, region (n,) int8, label (n,) int8 = 0.
    """
    return _simulate(
        key, n, params, SignalParams(), False, max_constituents, first_event, tuple(mjj_range)
    )


def simulate_signal(
    key: jax.Array,
    n: int,
    params: SignalParams,
    max_constituents: int = DEFAULT_MAX_CONSTITUENTS,
    first_event: int | jax.Array = 0,
    mjj_range: tuple[float, float] = MJJ_WINDOW,
) -> dict[str, jax.Array]:
    """Draw `n` dark-shower events in the mjj window.

    Same arguments and layout as `simulate_background`, label = 1. The Z' decay is s-channel:
    y* follows 1 + cos^2(theta*).

    Args:
        key: typed PRNG key (consumed).
        n: number of events (static).
        params: signal parameters (pytree).
        max_constituents: C, constituents kept per jet (static).
        first_event: index of the first event (see `simulate_background`).
        mjj_range: as in `simulate_background`.

    Returns:
        dict with the fields of `simulate_background`, label (n,) int8 = 1.
    """
    return _simulate(
        key, n, BackgroundParams(), params, True, max_constituents, first_event, tuple(mjj_range)
    )


def _draw_in_chunks(
    simulate: Callable[..., dict[str, jax.Array]],
    key: jax.Array,
    n: int,
    params: BackgroundParams | SignalParams,
    max_constituents: int,
    chunk_size: int,
    mjj_range: tuple[float, float] = MJJ_WINDOW,
):
    chunk = max(1, min(chunk_size, n))
    parts = []
    for start in range(0, n, chunk):
        out = simulate(key, chunk, params, max_constituents, start, mjj_range)
        size = min(chunk, n - start)
        parts.append({name: np.asarray(value)[:size] for name, value in out.items()})
    if not parts:
        out = jax.eval_shape(lambda: simulate(key, 1, params, max_constituents, 0, mjj_range))
        return {name: np.zeros((0, *v.shape[1:]), v.dtype) for name, v in out.items()}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def simulate_events(
    seed_or_key: int | jax.Array,
    n_background: int,
    signals: Mapping[str, int] | None = None,
    *,
    background_params: BackgroundParams | None = None,
    signal_params: Mapping[str, SignalParams] | None = None,
    model_names: Sequence[str] | None = None,
    max_constituents: int = DEFAULT_MAX_CONSTITUENTS,
    chunk_size: int = 16384,
    mjj_range: tuple[float, float] = MJJ_WINDOW,
) -> JetEvents:
    """Draw background and signal events as one host-side `JetEvents`.

    Background comes first, then each signal model in the order of `signals`; not shuffled.

    Args:
        seed_or_key: integer seed or typed key. The background uses fold_in(key, 0), signal
            model m uses fold_in(key, 1 + model_id), so a model's events do not depend on
            which other models are drawn, and event i draws the same random numbers whatever
            the chunking (its float32 values agree to the last bits: XLA may vectorise another
            chunk size differently).
        n_background: number of QCD events (all in the mjj window, about 49 % in the SR).
        signals: model name -> number of events. Names are benchmarks (`benchmark_names()`)
            or keys of `signal_params`.
        background_params: defaults to `BackgroundParams()`.
        signal_params: extra named signal models (override benchmarks of the same name).
        model_names: the list `model_id` indexes; defaults to the benchmarks followed by the
            names in `signal_params` (so a benchmark's model_id is its position in
            `benchmark_names()`).
        max_constituents: C, constituents kept per jet.
        chunk_size: events per compiled call (bounds memory; changes the events only in their
            last bits).
        mjj_range: (low, high) GeV where mjj is drawn (see `simulate_background`).

    Returns:
        JetEvents with numpy fields of the schema's dtypes; model_id is -1 for background.

    Raises:
        ValueError: If a count is negative, a signal model is unknown or missing from
            `model_names`, or `max_constituents` or `chunk_size` is not positive.
    """
    is_seed = isinstance(seed_or_key, int | np.integer)
    key = jax.random.key(int(seed_or_key)) if is_seed else seed_or_key
    signals = dict(signals or {})
    known = dict(_BENCHMARKS) | dict(signal_params or {})
    if model_names is None:
        model_names = benchmark_names() + [m for m in (signal_params or {}) if m not in _BENCHMARKS]
    model_names = list(model_names)
    counts = {"background": n_background} | {f"signals[{k!r}]": v for k, v in signals.items()}
    for what, count in counts.items():
        if not isinstance(count, int | np.integer) or count < 0:
            raise ValueError(f"simulate_events: {what} must be a non-negative integer, got {count}")
    for name in signals:
        if name not in known:
            raise ValueError(
                f"simulate_events: unknown signal model {name!r}; known: {', '.join(known)}"
            )
        if name not in model_names:
            raise ValueError(f"simulate_events: signal model {name!r} is not in model_names")
    if max_constituents < 1 or chunk_size < 1:
        raise ValueError("simulate_events: max_constituents and chunk_size must be positive")
    mjj_range = (float(mjj_range[0]), float(mjj_range[1]))
    if not 0 < mjj_range[0] < mjj_range[1] < 13000.0:
        raise ValueError(
            f"simulate_events: mjj_range must be 0 < low < high < 13000, got {mjj_range}"
        )

    params = background_params if background_params is not None else BackgroundParams()
    parts = []
    fields = _draw_in_chunks(
        simulate_background,
        jax.random.fold_in(key, 0),
        int(n_background),
        params,
        max_constituents,
        chunk_size,
        mjj_range,
    )
    parts.append(JetEvents(**fields, model_id=np.full(len(fields["mjj"]), -1, np.int16)))
    for name, count in signals.items():
        model_id = model_names.index(name)
        fields = _draw_in_chunks(
            simulate_signal,
            jax.random.fold_in(key, 1 + model_id),
            int(count),
            known[name],
            max_constituents,
            chunk_size,
            mjj_range,
        )
        parts.append(JetEvents(**fields, model_id=np.full(count, model_id, np.int16)))
    return JetEvents.concatenate(parts).to_numpy()
