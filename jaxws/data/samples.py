"""Names of the samples: the paper's 14 signal benchmarks, model ids and name spelling.

A sample is named by its model: `qcd[...]` for the background, `<id|dd>_lambda<GeV>[...]` for a
dark-shower point (the grammar is `jaxws.simulate.hidden_valley.parse_model`'s). The reference
files of ../shared/data/hv-reference spell signal names with an `hv_` prefix; `canonical_name`
drops it. A signal sample's `model_id` (stored with its events) is its index in a model list,
by default the 14 benchmarks in the order of `benchmark_names`; the background's is -1.
"""

from __future__ import annotations

#: Lambda_D [GeV] of the paper's benchmarks (arXiv:2312.06152, sec. 2).
BENCHMARK_LAMBDAS = (1, 5, 10, 20, 30, 40, 50)


def benchmark_names() -> list[str]:
    """The paper's 14 signal benchmarks in a fixed order: id_lambda1..50, dd_lambda1..50.

    The position in this list is the default `model_id` of a benchmark; QCD has model_id -1.
    """
    return [f"{s}_lambda{lam:g}" for s in ("id", "dd") for lam in BENCHMARK_LAMBDAS]


def canonical_name(name: str) -> str:
    """Model name without the reference files' `hv_` prefix (hv_id_lambda10 -> id_lambda10)."""
    return name[3:] if name.startswith("hv_") else name


def model_id_of(name: str, model_list: list[str] | None = None) -> int:
    """Index of a model in `model_list` (default: the 14 benchmarks); -1 for QCD.

    Raises:
        ValueError: a signal model that is not in the list.
    """
    name = canonical_name(name)
    if name.startswith("qcd"):
        return -1
    models = [canonical_name(m) for m in (model_list or benchmark_names())]
    if name not in models:
        raise ValueError(
            f"model {name!r} is not in the model list {models}; pass model_list to assign it an id"
        )
    return models.index(name)
