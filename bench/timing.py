"""Side-by-side timing for the benchmarks: interleaved repetitions, load average, medians.

On a shared machine, timings taken minutes apart differ by the load in between. Every
comparison here therefore runs its cases in one process, round-robin (case A, B, C, A, B, C,
...; the order rotates each round), after one untimed warm-up call of each, and reports for
each case the median over rounds with its spread (min and max), in wall-clock and in process
CPU seconds, together with the load average before and after.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, formatted."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_lines() -> list[str]:
    """Markdown bullet lines naming the machine, the versions and the time."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    import jax

    devices = jax.devices()
    backend = f"- jax backend: {jax.default_backend()}, {len(devices)} x {devices[0].device_kind}"
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- jax {version('jax')}, jaxlib {version('jaxlib')}, flax {version('flax')}, "
        f"torch {version('torch')}, python {platform.python_version()}",
        backend,
        f"- date: {now}",
    ]


def interleave(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, dict]:
    """Time `cases` round-robin.

    Args:
      cases: name -> a call that runs the work and blocks until it is done.
      rounds: timed calls per case.

    Returns:
      name -> {"wall": [seconds per call], "cpu": [process CPU seconds per call]}; the load
      average before and after is under the key "_load".
    """
    before = load_average()
    for fn in cases.values():
        fn()  # warm-up (and compilation, if the call compiles lazily)
    times = {name: {"wall": [], "cpu": []} for name in cases}
    names = list(cases)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            cpu = time.process_time()
            wall = time.perf_counter()
            cases[name]()
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    times["_load"] = {"before": before, "after": load_average()}
    return times


def summary(samples: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(samples), min(samples), max(samples)


def fmt_spread(samples: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """'median [min-max]' of samples * scale."""
    med, lo, hi = summary([s * scale for s in samples])
    return f"{med:,.{digits}f} [{lo:,.{digits}f}-{hi:,.{digits}f}]"
