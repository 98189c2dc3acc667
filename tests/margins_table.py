"""Margins of the statistical tests in two code generations, as a markdown table (issue 21).

Runs the tests marked `statistical` file by file (niced, one process each), natively and with
XLA limited to AVX2 and OpenBLAS's Haswell kernels (`make test-isa`'s second mode), each mode
writing the margins its assertions record (tests/margins.py) to its own file, then prints one
row per asserted quantity: the measured value and its margin in standard errors in each mode.

    python tests/margins_table.py run --out .margins                 # both modes, every file
    python tests/margins_table.py run --out .margins tests/stats/test_dijet_fit.py
    python tests/margins_table.py table .margins                     # the table again

`make margins` runs the first. A row whose smallest margin is under 2 standard errors in
either mode is marked; so is every statistical test that recorded nothing (skipped, or failed
before its assertion).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECOND_MODE = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "OPENBLAS_CORETYPE": "Haswell"}
MODES = ("native", "second")
SMALL = 2.0  # standard errors: a margin below this is marked


def statistical_files() -> list[str]:
    """Test files holding at least one test marked `statistical`."""
    return sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "tests").rglob("test_*.py")
        if "pytest.mark.statistical" in path.read_text()
    )


def _environment(mode: str, margins: Path) -> dict[str, str]:
    env = dict(os.environ, JAXWS_MARGINS=str(margins), PYTHONPATH=str(REPO))
    if mode == "second":
        env["XLA_FLAGS"] = " ".join(
            flag for flag in (os.environ.get("XLA_FLAGS", ""), SECOND_MODE["XLA_FLAGS"]) if flag
        )
        env["OPENBLAS_CORETYPE"] = SECOND_MODE["OPENBLAS_CORETYPE"]
    return env


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    avx512 = "AVX-512" if "avx512f" in Path("/proc/cpuinfo").read_text() else "no AVX-512"
    return f"{model}, {os.cpu_count()} cores, {avx512}, {platform.system()}"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(out: Path, files: list[str], modes: list[str], timeout: float) -> None:
    """Run each file's statistical tests in each mode; log outcome and time per file."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    for file in files:  # both modes of a file before the next file
        for mode in modes:
            start, load = time.time(), _load()
            command = [
                *("nice", "-n", "19"),
                sys.executable,
                *("-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"),
                *("-m", "statistical", file),
            ]
            try:
                done = subprocess.run(
                    command,
                    cwd=REPO,
                    env=_environment(mode, out / f"{mode}.jsonl"),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
                rc = done.returncode
            except subprocess.TimeoutExpired:
                summary, rc = f"timed out after {timeout:.0f} s", None
            seconds = time.time() - start
            entry = dict(mode=mode, file=file, rc=rc, summary=summary, seconds=round(seconds))
            entry.update(load_start=load, load_end=_load(), machine=_machine())
            with log.open("a") as stream:
                stream.write(json.dumps(entry) + "\n")
            print(f"{mode:7s} {file}: {summary} ({seconds:.0f} s, load {load})", flush=True)


def _collected(files: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-m", "statistical", *files],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
    )
    return [line for line in done.stdout.splitlines() if "::" in line]


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _worst(records: list[dict]) -> dict | None:
    """The record with the smallest margin (None margins, from an infinite one, last)."""
    if not records:
        return None
    return min(records, key=lambda r: math.inf if r["margin_se"] is None else r["margin_se"])


def _cell(record: dict | None, count: int) -> tuple[str, str]:
    if record is None:
        return "not run", ""
    value = f"p = {record['p']:.3g}" if "p" in record else f"{record['value']:.4g}"
    margin = "> 37" if record["margin_se"] is None else f"{record['margin_se']:.1f}"
    if record["margin_se"] is not None and record["margin_se"] < SMALL:
        margin = f"**{margin}**"
    if count > 1:
        value += f" (worst of {count})"
    return value, margin


def table(out: Path) -> str:
    """The markdown table of the margins recorded under `out`, with how they were run."""
    records = {mode: _read(out / f"{mode}.jsonl") for mode in MODES}
    runs = _read(out / "runs.jsonl")
    keys: list[tuple[str, str]] = []
    for mode in MODES:
        for r in records[mode]:
            if (r["test"], r["quantity"]) not in keys:
                keys.append((r["test"], r["quantity"]))
    lines = [
        "| test | asserted | kind (SE from) | native | SE | second mode | SE |",
        "|---|---|---|---|---|---|---|",
    ]
    for test, quantity in keys:
        cells, kind = [], ""
        for mode in MODES:
            group = [r for r in records[mode] if (r["test"], r["quantity"]) == (test, quantity)]
            worst = _worst(group)
            if worst is not None:
                kind = worst["kind"] + (f" ({worst['se_from']})" if worst.get("se_from") else "")
            cells.extend(_cell(worst, len(group)))
        name = test.removeprefix("tests/")
        quantity = quantity.replace("|", "\\|")  # markdown table cells
        lines.append(f"| {name} | {quantity} | {kind} | " + " | ".join(cells) + " |")
    files = sorted({r["file"] for r in runs})
    recorded = {r["test"] for mode in MODES for r in records[mode]}
    silent = [test for test in _collected(files) if test not in recorded] if files else []
    if silent:
        lines.append("")
        lines.append("Statistical tests that recorded nothing in either mode (skipped or failed):")
        lines.extend(f"- {test}" for test in silent)
    lines.append("")
    lines.append("| mode | file | outcome | seconds | load average at start |")
    lines.append("|---|---|---|---|---|")
    for r in runs:
        lines.append(
            f"| {r['mode']} | {r['file']} | {r['summary']} | {r['seconds']} | {r['load_start']} |"
        )
    if runs:
        lines.append("")
        lines.append(f"Machine: {runs[0]['machine']}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the statistical tests, then print")
    run_parser.add_argument("files", nargs="*", help="test files (default: every one)")
    run_parser.add_argument("--out", type=Path, default=REPO / ".margins")
    run_parser.add_argument("--modes", default="native,second")
    run_parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per file")
    table_parser = commands.add_parser("table", help="print the table of a previous run")
    table_parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        modes = [m for m in args.modes.split(",") if m]
        unknown = sorted(set(modes) - set(MODES))
        if unknown:
            parser.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
        run(args.out, args.files or statistical_files(), modes, args.timeout)
        print(table(args.out))
    else:
        print(table(args.out))


if __name__ == "__main__":
    main()
