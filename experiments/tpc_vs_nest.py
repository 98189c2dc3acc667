"""The toy TPC's ER and NR bands against NEST through the same toy detector (a markdown table).

    PYTHONPATH=. python experiments/tpc_vs_nest.py

ER and NR recoils flat in 1-100 keV; photons and electrons from NEST (nestpy, 200 V/cm, with
NEST's fluctuations) or from the toy (`tpc.quanta`), then the toy's S1, S2 and thresholds.
Per S1 bin: the distance between the ER and NR medians of log10(S2/S1) in decades and the ER
leakage below the NR median (50% NR acceptance). Requires the `physics` extra.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp

from jaxws.simulate import nest_reference, tpc

if __name__ == "__main__":
    params = tpc.TPCParams()
    sensors = jnp.asarray(tpc.sensor_grid_for(params, 2), jnp.float32)
    result = nest_reference.band_comparison(params, sensors, n_events=20000)
    bins = result["nest"]["s1_bins"]
    print("| S1 bin [PE] | separation NEST | separation toy | leakage NEST | leakage toy |")
    print("|---|---|---|---|---|")
    for i, (lo, hi) in enumerate(itertools.pairwise(bins)):
        nest, toy = result["nest"], result["toy"]
        print(
            f"| {lo:g}-{hi:g} | {nest['separation'][i]:.3f} | {toy['separation'][i]:.3f} | "
            f"{nest['leakage'][i]:.2e} | {toy['leakage'][i]:.2e} |"
        )
    print(
        f"| all ({bins[0]:g}-{bins[-1]:g}) | | | {result['nest']['leakage_total']:.2e} | "
        f"{result['toy']['leakage_total']:.2e} |"
    )
