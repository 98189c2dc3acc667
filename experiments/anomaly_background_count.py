"""The expected detected background B of an exposure in the toy TPC (computed, not assumed).

B = exposure x (ER + CEvNS + neutron recoils per tonne-year in [energy_min, energy_max]) x the
detected fraction (S1 and S2 thresholds) of N simulated background events; the same numbers
`python -m jaxws experiment=anomaly_benchmark` computes from its toy bank
(`jaxws.methods.anomaly.steps.background_count`). Config overrides as for the CLI.

Usage:
    python experiments/anomaly_background_count.py [--events 200000] [overrides ...]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import jax

from jaxws.cli import compose_config
from jaxws.config import ConfigError
from jaxws.methods.anomaly.samples import _background_law
from jaxws.methods.anomaly.settings import settings_from_config
from jaxws.simulate import tpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="background events simulated")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (data.*, method.*)")
    args = parser.parse_args()
    try:
        cfg = compose_config(["experiment=anomaly_benchmark", *args.overrides])
        data, _, _, test = settings_from_config(cfg)
    except ConfigError as error:
        print(f"anomaly_background_count: error: {error}", file=sys.stderr)
        sys.exit(2)
    recoils = tpc.background_recoils(data, test.exposure_tonne_year)
    params, sensors, nr_fraction, nr_spectrum = _background_law(data)
    # A key no run uses (runs fold 0-7, 10+ and 40+ into the seed's key).
    tpc.simulate_detected(jax.random.key(0), 4096, params, sensors, nr_fraction, nr_spectrum)
    wall, cpu = time.perf_counter(), time.process_time()
    events = tpc.simulate_detected(
        jax.random.key(2_300_023), args.events, params, sensors, nr_fraction, nr_spectrum
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    detected = len(events["s1"])
    fraction = detected / args.events
    error = math.sqrt(fraction * (1 - fraction) / args.events)
    total = sum(recoils.values())
    print(
        f"exposure {test.exposure_tonne_year:g} t y, window [{data.energy_min:g}, "
        f"{data.energy_max:g}] keV, ER rate {data.er_rate_per_tonne_year_kev:g} / (t y keV); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| quantity | value |")
    print("|---|---|")
    for name, value in recoils.items():
        print(f"| {name} recoils in the window | {value:,.1f} |")
    print(
        f"| detected fraction ({detected} of {args.events} simulated) | "
        f"{fraction:.5f} +- {error:.5f} |"
    )
    print(
        f"| simulated events per second (wall, process CPU) | {args.events / wall:,.0f}, "
        f"{args.events / cpu:,.0f} |"
    )
    print(f"| B = recoils x detected fraction | {total * fraction:,.0f} +- {total * error:,.0f} |")


if __name__ == "__main__":
    main()
