"""What README.md and docs/ quote, recomputed where it is cheap (seconds): fails on drift.

    python tests/docs_check.py        # also `make docs-check`; tests/test_docs.py runs it

Checks, each naming the document and what drifted:

- **paths**: every repository path the documents name (`jaxws/...`, `conf/...`, `docs/...`,
  `tests/...`, `bench/...`, `experiments/...`, `notebooks/...`) exists; a named test
  (`tests/x.py::test_name`) is defined in its file.
- **modules**: every dotted `jaxws.a.b` name (in backticks or not) resolves to a module file or
  package of this checkout, and a trailing attribute (`jaxws.a.b.name`) is defined in that
  module or package.
- **experiments**: experiments/README.md lists exactly the scripts in experiments/.
- **defaults**: the config defaults the documents quote (CLAIMS: the phrase, with the value
  of the composed config filled in, must appear in the document).
- **demo**: the README's demo table equals docs/figures/quickstart_thresholds.csv (the run's
  table, committed) at the digits shown, i.e. within half a unit of the last digit; the
  controls it quotes (no-signal AUC, largest sculpting pull) equal
  docs/figures/quickstart_metrics.json the same way. A run on another machine agrees with the
  CSV only within the spread over pseudo-experiments (README, "Reproducibility"), so a fresh
  run is not compared here: regenerate the CSV and the table together.
- **performance**: every row of the README's Performance table names a command and a machine.
- **repeats**: no sentence of more than 70 characters appears twice in one document, or in
  README.md and a document of docs/ (the README points to the docs; it does not copy them).
- **bench commits**: every section of bench/README.md whose table holds measured numbers names,
  in its heading, the commit that recorded them (`[commit abcdef0]`).
- **paper table**: docs/results/paper_luminosity/README.md holds the table that
  `python experiments/paper_table.py` prints from the committed `thresholds.csv` files, line for
  line.

Plain Python and Hydra's compose (no pytest), so `make docs-check` runs in the demo's
environment.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = (
    "README.md",
    "docs/cwola.md",
    "docs/meta_learning.md",
    "docs/nplm.md",
    "docs/anomaly.md",
    "docs/simulator.md",
    "docs/pythia.md",
    "docs/own_events.md",
    "docs/reliability.md",
    "docs/INTERFACES.md",
    "docs/results/paper_luminosity/README.md",
    "docs/hunt.md",
    "docs/testing.md",
    "bench/README.md",
    "experiments/README.md",
    "notebooks/01_weak_supervision.ipynb",
    "notebooks/02_nplm.ipynb",
    "notebooks/03_anomaly.ipynb",
)

#: (document, phrase with {} for the value, config overrides, dotted key[, format])
CLAIMS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    (
        "README.md",
        "toys per compiled program; {} by default",
        ("experiment=nplm",),
        "method.chunk_size",
        "{}",
    ),
    (
        "README.md",
        "{} trials over learning rate and batch size",
        ("experiment=optuna_sweep",),
        "hydra.sweeper.n_trials",
        "{}",
    ),
    (
        "README.md",
        "parallel processes (joblib; {} by default)",
        ("hydra/launcher=local",),
        "hydra.launcher.n_jobs",
        "{}",
    ),
    (
        "README.md",
        "over {} pseudo-experiments per injection",
        ("experiment=quickstart",),
        "study.n_pseudo_experiments",
        "{}",
    ),
    (
        "README.md",
        "{}x{} pT-normalised jet images",
        ("experiment=quickstart",),
        "data.resolution",
        "{0}x{0}",
    ),
    (
        "README.md",
        "{} signal-region (SR)",
        ("experiment=quickstart",),
        "study.n_background_sr",
        "{:,}",
    ),
    (
        "docs/cwola.md",
        "{} injections x 5 pseudo-experiments",
        ("experiment=quickstart",),
        "study.injections",
        "len",
    ),
    (
        "docs/cwola.md",
        "12x12 pT-normalised images",
        ("experiment=quickstart",),
        "data.resolution",
        "12",
    ),
)


@functools.cache
def _value(key: str, overrides: tuple[str, ...]) -> object:
    from hydra import compose, initialize_config_dir

    sys.path.insert(0, str(REPO))
    from jaxws import schemas

    schemas.register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    value: object = cfg
    for part in key.split("."):
        value = value[part]  # type: ignore[index]
    return value


def check_defaults(read: Callable[[str], str]) -> list[str]:
    problems = []
    for document, phrase, overrides, key, fmt in CLAIMS:
        value = _value(key, overrides)
        if fmt == "len":
            text = str(len(value))  # type: ignore[arg-type]
        elif fmt.startswith("{"):
            text = fmt.format(value)
        else:
            text = fmt
            if str(value) != fmt:
                problems.append(f"{document}: quotes {key} = {fmt}, the config has {value}")
                continue
        expected = phrase.replace("{}x{}", text) if "{}x{}" in phrase else phrase.format(text)
        if expected not in " ".join(read(document).split()):
            problems.append(
                f"{document}: expected '{expected}' ({key} = {value} with {' '.join(overrides)})"
            )
    return problems


#: a path ends at a character no path holds; one followed by * { < is a pattern, not a path
PATH = re.compile(
    r"(?<![\w/.-])((?:jaxws|conf|docs|tests|bench|experiments|notebooks)/[\w./-]*[\w])"
    r"(?![\w*{<$])(::[\w]+)?"
)
#: files to create, named as such in the docs (a recipe's new file)
NEW_FILES = {"docs/meta_learning.md": {"conf/method/anil_meta_sgd.yaml"}}


def _commented_files() -> list[str]:
    """Scripts, configs and pyproject.toml: their comments and docstrings name paths too."""
    files = [p for p in (REPO / "experiments").iterdir() if p.suffix in (".py", ".sh")]
    files += [*sorted((REPO / "conf").rglob("*.yaml")), REPO / "pyproject.toml", REPO / "Makefile"]
    return [str(p.relative_to(REPO)) for p in sorted(files)]


def check_paths(read: Callable[[str], str]) -> list[str]:
    problems = []
    for document in (*DOCUMENTS, *_commented_files()):
        for match in PATH.finditer(read(document)):
            path, test = match.group(1), match.group(2)
            target = REPO / path
            if path in NEW_FILES.get(document, ()):
                continue
            if not target.exists():
                problems.append(f"{document}: names {path}, which does not exist")
            elif test and f"def {test[2:]}(" not in target.read_text():
                problems.append(f"{document}: names {path}{test}, which is not defined there")
    return problems


#: a dotted name, with or without backticks (not a file name such as jaxws.egg-info)
MODULE = re.compile(r"(?<![\w/.-])(jaxws(?:\.\w+)+)(?![\w-])")


def _module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base
    return None


def check_modules(read: Callable[[str], str]) -> list[str]:
    problems = []
    for document in DOCUMENTS:
        for name in set(MODULE.findall(read(document))):
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):
                found = _module_file(parts[:cut])
                if found is not None:
                    break
            rest = parts[cut:]
            if found is None or (cut == 1 and rest):
                problems.append(f"{document}: names {name}, which is no module of jaxws")
                continue
            if rest:
                files = [found] if found.is_file() else sorted(found.rglob("*.py"))
                source = "\n".join(f.read_text() for f in files)
                if not re.search(rf"\b{re.escape(rest[0])}\b", source):
                    problems.append(f"{document}: names {name}: no {rest[0]} in {found}")
    return problems


def check_experiments(read: Callable[[str], str]) -> list[str]:
    listed = set(re.findall(r"^- `([\w.]+)`", read("experiments/README.md"), flags=re.M))
    scripts = {p.name for p in (REPO / "experiments").iterdir() if p.suffix in (".py", ".sh")}
    problems = [f"experiments/README.md: does not list {name}" for name in sorted(scripts - listed)]
    problems += [
        f"experiments/README.md: lists {name}, which is not in experiments/"
        for name in sorted(listed - scripts)
    ]
    return problems


def _agrees(shown: str, value: float) -> bool:
    """The shown number is the value rounded to the digits shown (half a unit of the last)."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(float(shown) - value) <= 0.5 * 10.0**-decimals + 1e-9


def check_demo(read: Callable[[str], str]) -> list[str]:
    readme = read("README.md")
    section = readme.split("## The demo", 1)[1].split("\n## ", 1)[0]
    rows = {
        row["method"].lower(): row
        for row in csv.DictReader((REPO / "docs/figures/quickstart_thresholds.csv").open())
    }
    problems = []
    table = re.findall(
        r"^\| (CWoLa|transfer|MTL) \| ([\d.]+) \+- ([\d.]+) \| ([\d.]+) \+- ([\d.]+) "
        r"\| ([\d.]+) \|",
        section,
        flags=re.M,
    )
    if len(table) != 3:
        return [f"README.md: the demo table has {len(table)} of its 3 method rows"]
    for method, *shown in table:
        row = rows[method.lower()]
        columns = (
            "threshold_z",
            "threshold_z_std",
            "signal_for_5sigma",
            "signal_for_5sigma_std",
            "ratio_to_cwola",
        )
        for text, column in zip(shown, columns, strict=True):
            if not _agrees(text, float(row[column])):
                problems.append(
                    f"README.md: demo table, {method} {column} reads {text}, "
                    f"docs/figures/quickstart_thresholds.csv has {float(row[column]):.4g}"
                )
    metrics = json.loads((REPO / "docs/figures/quickstart_metrics.json").read_text())
    quoted = {
        r"\(AUC ([\d.]+) for CWoLa\)": "cwola/no_signal_auc_mean",
        r"largest\s+\|pull\| ([\d.]+)\)": None,
    }
    for pattern, key in quoted.items():
        match = re.search(pattern, section)
        if match is None:
            problems.append(f"README.md: the demo section no longer quotes /{pattern}/")
            continue
        value = (
            metrics[key]
            if key
            else max(v for k, v in metrics.items() if k.endswith("/sculpting_max_abs_pull"))
        )
        if not _agrees(match.group(1), value):
            problems.append(
                f"README.md: demo reads {match.group(0)!r}, quickstart_metrics.json has {value:.4g}"
            )
    return problems


def check_performance(read: Callable[[str], str]) -> list[str]:
    section = read("README.md").split("## Performance", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    problems = [] if rows else ["README.md: the Performance table is empty"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != 4 or "`" not in cells[2] or not cells[3]:
            problems.append(f"README.md: Performance row without its command or machine: {row}")
    return problems


def _sentences(text: str) -> list[str]:
    """Prose sentences longer than 70 characters (table rows and code blocks left out)."""
    prose = re.sub(r"```.*?```", "\n\n", text, flags=re.S)
    lines = [line for line in prose.splitlines() if not line.lstrip().startswith(("|", "#"))]
    sentences = []
    for paragraph in re.split(r"\n\s*\n", "\n".join(lines)):
        sentences += re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split()))
    return [s for s in sentences if len(s) > 70]


def check_repeats(read: Callable[[str], str]) -> list[str]:
    problems = []
    readme = set(_sentences(read("README.md")))
    for document in DOCUMENTS:
        if not document.endswith(".md"):
            continue
        sentences = _sentences(read(document))
        for sentence in sorted({s for s in sentences if sentences.count(s) > 1}):
            problems.append(f"{document}: says twice: '{sentence[:80]}...'")
        if document.startswith("docs/"):
            for sentence in sorted(readme & set(sentences)):
                problems.append(f"README.md and {document} both say: '{sentence[:80]}...'")
    return problems


def check_bench_commits(read: Callable[[str], str]) -> list[str]:
    problems = []
    sections = re.split(r"^(?=#)", read("bench/README.md"), flags=re.M)
    for section in sections:
        heading, _, body = section.partition("\n")
        measured = [
            line
            for line in body.splitlines()
            if line.startswith("|") and "---" not in line and re.search(r"\d\.\d", line)
        ]
        if measured and not re.search(r"\[commit [0-9a-f]{7,40}\]", heading):
            problems.append(f"bench/README.md: section '{heading[:60]}' names no [commit ...]")
    return problems


PAPER_TABLE = "docs/results/paper_luminosity/README.md"


def check_paper_table(read: Callable[[str], str]) -> list[str]:
    import contextlib
    import importlib.util
    import io

    spec = importlib.util.spec_from_file_location(
        "paper_table", REPO / "experiments/paper_table.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.path.insert(0, str(REPO))
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        module.main()
    text = read(PAPER_TABLE)
    return [
        f"{PAPER_TABLE}: lacks the row '{line}' that experiments/paper_table.py prints"
        for line in printed.getvalue().splitlines()
        if line not in text.splitlines()
    ]


CHECKS = (
    check_paths,
    check_modules,
    check_experiments,
    check_defaults,
    check_demo,
    check_performance,
    check_repeats,
    check_bench_commits,
    check_paper_table,
)


def run_checks(texts: dict[str, str] | None = None) -> list[str]:
    """Every check's problems; `texts` replaces documents' contents (for tests)."""
    texts = texts or {}

    def read(document: str) -> str:
        return texts[document] if document in texts else (REPO / document).read_text()

    return [problem for check in CHECKS for problem in check(read)]


def main() -> int:
    problems = run_checks()
    for problem in problems:
        print(f"docs-check: {problem}")
    print(f"docs-check: {len(problems)} problem(s)" if problems else "docs-check: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
