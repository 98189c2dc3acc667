"""Event sources: the built-in stylised dijet simulator (default of every experiment), Pythia 8
generation (physics extra), the TPC toy and the NPLM toys.

Names are imported lazily so that a Pythia worker process does not pay for importing JAX.
"""

_JETS = (
    "BackgroundParams",
    "SignalParams",
    "benchmark",
    "benchmark_names",
    "simulate_background",
    "simulate_events",
    "simulate_signal",
)

__all__ = list(_JETS)


def __getattr__(name):
    if name in _JETS:
        from jaxws.simulate import jets

        return getattr(jets, name)
    raise AttributeError(f"module 'jaxws.simulate' has no attribute {name!r}")
