"""Methods: each module has `run(cfg, key, run_dir, tracker) -> metrics` (Hydra `method=<name>`).

Study methods (cwola, transfer, mtl and the meta-learning variants) also expose
`study(cfg, inputs, key, tracker) -> StudyResult`, so `method=compare` can run several of them
on the same pseudo-experiments.
"""

import importlib


def load(name: str):
    """The method module `jaxws.methods.<name>` (or a registered meta-learning variant)."""
    try:
        return importlib.import_module(f"jaxws.methods.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"jaxws.methods.{name}":
            raise
    try:
        from jaxws.methods import meta

        return meta.method_module(name)
    except (ImportError, AttributeError, KeyError, ValueError):
        raise ValueError(f"unknown method {name!r}") from None
