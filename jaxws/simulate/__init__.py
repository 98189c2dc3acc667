"""Event sources: built-in jet simulator, Pythia 8, TPC toy and NPLM toys.

The built-in stylised dijet simulator is the default of every experiment; Pythia 8 generation
needs the physics extra.

Names are imported lazily so that a Pythia worker process does not pay for importing JAX.
"""

_JETS = (
    "BackgroundParams",
    "SignalParams",
    "benchmark",
    "simulate_background",
    "simulate_events",
    "simulate_signal",
)

__all__ = list(_JETS)


def __getattr__(name: str) -> object:
    if name in _JETS:
        from jaxws.simulate import jets

        return getattr(jets, name)
    raise AttributeError(f"module 'jaxws.simulate' has no attribute {name!r}")
