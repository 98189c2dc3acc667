"""Event sources: the built-in stylised dijet simulator (default of every experiment)."""

from jaxws.simulate.jets import (
    BackgroundParams,
    SignalParams,
    benchmark,
    benchmark_names,
    simulate_background,
    simulate_events,
    simulate_signal,
)

__all__ = [
    "BackgroundParams",
    "SignalParams",
    "benchmark",
    "benchmark_names",
    "simulate_background",
    "simulate_events",
    "simulate_signal",
]
