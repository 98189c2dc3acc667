"""jaxws: weakly supervised and model-agnostic searches for new physics in JAX.

The data flow is simulate -> data -> train (ensembles) -> methods -> stats -> track.
"""

__version__ = "0.1.0"
