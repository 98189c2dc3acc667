"""Hydra entry point: `python -m jaxws [overrides]` (or the `jaxws` console script).

Thin on purpose: register the structured-config schemas (`jaxws.schemas`), compose the
config (Hydra refuses unknown keys and wrong types), validate all of it (every section, the
sections the method reads, every input file) before anything is written, take the run
directory's lock, make its tracker, turn the seed into one key, and hand over to
`jaxws.methods.<method.name>.run`.

What a run promises about its directory:
- a refused run (bad config, bad input, a finished run already there, another run holding
  the directory) writes nothing into it; Hydra's own `.hydra/` record is written by us, after
  validation (`hydra.output_subdir` is null in conf/config.yaml);
- a second run into a directory that a running one holds is refused (an flock on
  `<run_dir>/.jaxws.lock`);
- rerunning into an interrupted run's directory resumes it only with the same config (the
  `tracking` section may differ);
- user mistakes end with one line on stderr and exit code 2; Ctrl-C ends with one line saying
  what was saved and how to resume (exit code 130); anything else keeps its traceback.
jax is imported only after the cheap checks, so a refused run costs about a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from jaxws.config import ConfigError
from jaxws.interrupt import interruptible

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from jaxws.track import TrackingConfig

TOP_LEVEL_KEYS = {
    "data",
    "model",
    "method",
    "training",
    "study",
    "tracking",
    "seed",
    "run_name",
    "stats",
    "dry_run",
    "paths",
    "objective",
    "verbose",
}
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
LOCK_NAME = ".jaxws.lock"
# Sections that may differ when an interrupted run is resumed (they do not change results).
RESUME_MAY_DIFFER = ("tracking",)


class RunDirectoryError(ConfigError):
    """The run directory holds a finished run, another config's run, or a running run."""


class RunDirectoryCheck(Callback):
    """Hydra callback (conf/config.yaml): make the run directory before Hydra does.

    An unusable path (a file in the way, no permission, a read-only disk) then ends in one
    line naming it, exit code 2, instead of Hydra's error report.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Make `hydra.run.dir` (removed again if it was new) or exit with code 2."""
        from jaxws.files import make_directory

        try:
            path = Path(str(config.hydra.run.dir))
        except Exception as error:  # an interpolation error names the key
            _exit(f"error: hydra.run.dir does not resolve: {' '.join(str(error).split())}", 2)
        existed = path.exists()
        try:
            make_directory(path)
        except OSError as error:
            _exit(f"error: {error.strerror}", 2)
        if not existed:
            _remove_if_empty(path)  # Hydra makes it again; this only proved that it can


def _group_name() -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hydra_cfg.sweep.dir)  # <date>/<time>-<name>: the group names both
        return f"{sweep_dir.parent.name}_{sweep_dir.name}"
    return ""


def enable_compilation_cache(configured: str | None = None) -> None:
    """Reuse compiled XLA programs across runs (JAX's persistent cache).

    The directory is `JAXWS_JAX_CACHE` (empty = off), else the config's
    `paths.compilation_cache`, else the user cache directory (`jaxws.paths`,
    `jaxws.train.compile_cache`).

    Args:
      configured: the config's `paths.compilation_cache`, if any.
    """
    from jaxws.paths import compilation_cache_dir
    from jaxws.train import compile_cache

    directory = compilation_cache_dir(configured)
    if directory:
        compile_cache.enable(directory)


def _resolved(cfg: DictConfig) -> dict:
    from omegaconf.errors import MissingMandatoryValue

    from jaxws.files import _to_jsonable

    try:
        return _to_jsonable(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except MissingMandatoryValue as error:  # a key the schema has and the YAML does not set
        raise ConfigError(
            f"config lacks a value for {error.full_key} (the YAML files hold every value; "
            "set it in its group file or on the command line)"
        ) from error
    except Exception as error:  # omegaconf's interpolation errors name the key
        raise ConfigError(f"config does not resolve: {' '.join(str(error).split())}") from error


def _schema_fields(node: Any) -> list[str] | None:
    """The keys a section's schema allows (`jaxws.schemas`), or None for a plain dict."""
    import dataclasses

    if not isinstance(node, DictConfig):
        return None
    schema = OmegaConf.get_type(node)
    if schema is None or not dataclasses.is_dataclass(schema):
        return None
    return [f.name for f in dataclasses.fields(schema)]


def check_schema_keys(cfg: DictConfig) -> None:
    """Refuse keys that a section's schema lacks (`+training.learning_rat=1`).

    Hydra refuses `training.learning_rat=1` at compose time; a `+` override adds the key
    anyway (it forces the add), so the composed config is checked once more.
    """
    for section in sorted(str(k) for k in cfg):
        node = cfg.get(section)
        allowed = _schema_fields(node)
        unknown = sorted(set(node) - set(allowed)) if allowed is not None else []
        if unknown:
            raise ConfigError(
                f"unknown key(s) {[f'{section}.{k}' for k in unknown]}; the schema of "
                f"'{section}' allows {allowed}"
            )


def override_key(override: str) -> str:
    """The config key of a command-line override: `+training.x=1` -> `training.x`."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0].strip()


def check_applicable(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse command-line overrides of sections the chosen method does not read.

    `training.learning_rate=1` under `method=nplm` (which trains with `method.*`) would be
    accepted and ignored; it ends instead in one line naming the key and the method.

    Args:
      cfg: the composed config.
      overrides: the command-line overrides (Hydra's `overrides.task`).
    """
    from jaxws.methods import STUDY_SECTIONS, sections

    name = str(cfg.method.get("name", ""))
    unused = set(STUDY_SECTIONS) - set(sections(name))
    for override in overrides:
        key = override_key(override)
        if key.split(".", 1)[0] in unused:
            raise ConfigError(
                f"{key} does not apply to method={name}, which reads "
                f"{['method', *sections(name)]} and ignores {sorted(unused)}; remove {override!r}"
            )


def check_top_level(cfg: DictConfig) -> TrackingConfig:
    """The checks that need no jax: top-level keys, schema keys, seed, run name, tracking.

    Args:
      cfg: the composed config.

    Returns:
      The `TrackingConfig`.
    """
    from jaxws.config import from_section
    from jaxws.track import TrackingConfig

    unknown = sorted(set(cfg) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown top-level config key(s) {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}"
        )
    missing = sorted(k for k in ("method", "seed", "run_name") if k not in cfg)
    if missing:
        raise ConfigError(f"config lacks top-level key(s) {missing}")
    seed = cfg.seed
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(cfg.method, DictConfig) or not isinstance(cfg.method.get("name"), str):
        raise ConfigError("method must be a config group with a 'name' (e.g. method=cwola)")
    if cfg.get("objective") is not None and not isinstance(cfg.objective, str):
        raise ConfigError(f"objective must be a metric name or null, got {cfg.objective!r}")
    if not isinstance(cfg.get("verbose", False), bool):
        raise ConfigError(f"verbose must be true or false, got {cfg.verbose!r}")
    check_schema_keys(cfg)
    return from_section(TrackingConfig, cfg.get("tracking"), "tracking")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def check_run_directory(run_dir: Path, resolved: dict) -> None:
    """Refuse a directory holding a finished run, or an interrupted run of another config."""
    if (run_dir / "results.json").exists():
        raise RunDirectoryError(
            f"{run_dir} already holds a finished run (results.json); choose a new output "
            "directory (hydra.run.dir=...)"
        )
    previous = run_dir / "config.json"
    if previous.exists():
        try:
            old = json.loads(previous.read_text())
        except (OSError, ValueError) as error:
            raise RunDirectoryError(
                f"{previous}: unreadable config of an interrupted run ({error}); choose a new "
                "output directory"
            ) from error
        # Compare as stored: through JSON, as config.json was written (NaN -> null, etc.).
        resolved = json.loads(json.dumps(resolved, allow_nan=False))
        keep = {k: v for k, v in resolved.items() if k not in RESUME_MAY_DIFFER}
        old = {k: v for k, v in old.items() if k not in RESUME_MAY_DIFFER}
        changed = _differences(old, keep)
        if changed:
            raise RunDirectoryError(
                f"{run_dir} holds an interrupted run with another config (differs in "
                f"{changed[:12]}); resume with the same config or choose a new output directory"
            )


@contextlib.contextmanager
def run_directory_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on `<run_dir>/.jaxws.lock`; refuse if another run holds it."""
    import fcntl

    from jaxws.files import default_file_mode, make_directory, named_os_error

    make_directory(run_dir)
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, default_file_mode())
    except OSError as error:
        raise named_os_error(error, path, "create lock file") from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(
                f"{run_dir} is in use by another running jaxws run (lock {path}); wait for it "
                "or choose a new output directory"
            ) from None
        try:
            # The run that held the lock may have finished between our checks and the lock.
            if (run_dir / "results.json").exists():
                raise RunDirectoryError(f"{run_dir} already holds a finished run (results.json)")
            yield
        finally:
            # Safe while we hold it: a run that opened the old file re-checks results.json.
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)


def execute(
    cfg: DictConfig,
    run_dir: str | Path,
    group: str = "",
    hydra_record: dict[str, str] | None = None,
) -> dict:
    """Validate everything, then run the configured method into `run_dir`; returns its metrics.

    Args:
      cfg: the composed config.
      run_dir: the run directory.
      group: W&B group (the sweep directory's name in a multirun).
      hydra_record: file name -> text written into `<run_dir>/.hydra/` once the run is
        accepted (Hydra's record of the composed config and overrides).

    Raises:
      ConfigError: a user mistake (config, input file, run directory), before any file is
        written.
    """
    from jaxws.files import atomic_write_json, atomic_write_text
    from jaxws.track import Tracker, TrackingConfig

    run_dir = Path(run_dir)
    tracking = check_top_level(cfg)
    resolved = _resolved(cfg)
    if cfg.get("dry_run", False):
        return dry_run(cfg)
    check_run_directory(run_dir, resolved)
    if group and not tracking.group:
        tracking = TrackingConfig(**{**tracking.__dict__, "group": group})

    import jax

    from jaxws import methods

    module = methods.load(cfg.method.name)
    methods.validate(module, cfg)
    from jaxws.methods.dry_run import check_events_study

    check_events_study(cfg)
    with run_directory_lock(run_dir):
        check_run_directory(run_dir, resolved)
        for name, text in (hydra_record or {}).items():
            atomic_write_text(run_dir / ".hydra" / name, text)
        tracker = Tracker(run_dir, resolved, tracking, name=str(cfg.run_name))
        try:
            metrics = module.run(cfg, jax.random.key(cfg.seed), run_dir, tracker)
            atomic_write_json(run_dir / "results.json", metrics)
        finally:
            tracker.finish()
    return metrics


def dry_run(cfg: DictConfig) -> dict:
    """`dry_run=true`: validate the whole run (data sizes included) and report.

    Nothing is trained or written (`jaxws.methods.dry_run`).

    Args:
      cfg: the composed config.

    Returns:
      `{"dry_run": True}`.
    """
    from jaxws import methods
    from jaxws.methods.dry_run import validate

    methods.validate(methods.load(cfg.method.name), cfg)
    lines = validate(cfg)
    print("jaxws: dry run: the configuration is valid; nothing was trained or written")
    for line in lines:
        print(f"jaxws:   {line}")
    return {"dry_run": True}


def _hydra_record() -> dict[str, str]:
    """What Hydra would have written to `.hydra/` (config, hydra config, overrides)."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    return {
        "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task),
        "hydra.yaml": OmegaConf.to_yaml({"hydra": hydra_cfg}),
    }


def _saved_chunks(run_dir: Path) -> int:
    return len(list((run_dir / "checkpoints").rglob("chunk_*.npz")))


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from jaxws import console

    console.configure(console.verbose_requested(cfg.get("verbose")))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    record = {"config.yaml": OmegaConf.to_yaml(cfg), **_hydra_record()}
    paths = cfg.get("paths") or {}
    try:
        check_applicable(cfg, HydraConfig.get().overrides.task)
        enable_compilation_cache(paths.get("compilation_cache"))
        with interruptible():
            metrics = execute(cfg, run_dir, _group_name(), hydra_record=record)
    except ConfigError as error:
        _remove_if_empty(run_dir)
        _exit(f"error: {error}", 2)
    except OSError as error:
        if error.filename is None:
            raise
        _exit(f"error: {error.strerror or error}" + _named(error), 2)
    except KeyboardInterrupt:
        n = _saved_chunks(run_dir)
        saved = f"{n} finished training chunk(s) are saved under {run_dir / 'checkpoints'}"
        _exit(
            f"interrupted; {saved if n else 'no finished training chunk was saved'}; rerun the "
            f"same command with hydra.run.dir={run_dir} to resume",
            130,
            hard=True,
        )
    if metrics.get("dry_run"):
        _remove_if_empty(run_dir)
        return
    print(f"jaxws: results in {run_dir}")
    if "figure" in metrics:
        print(f"jaxws: figure: {metrics['figure']}")
    objective = cfg.get("objective")
    if objective:  # the value a sweeper (Optuna) optimises
        if objective not in metrics:
            print(
                f"jaxws: error: objective {objective!r} not among {sorted(metrics)}",
                file=sys.stderr,
            )
            sys.exit(2)
        return float(metrics[objective])
    return None


def _named(error: OSError) -> str:
    text = str(error.strerror or "")
    return "" if str(error.filename) in text else f": {error.filename}"


def _remove_if_empty(run_dir: Path) -> None:
    """Hydra makes the run directory before the task runs; a refused run leaves none behind."""
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def _exit(message: str, code: int, hard: bool = False) -> None:
    print(f"jaxws: {message}", file=sys.stderr)
    if hard:
        # After an interrupt XLA's threads may still be running a computation, and tearing
        # the interpreter down under them crashed (exit -11 instead of 130). Everything the run
        # wrote is already complete (atomic writes; the tracker finished), so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def check_overrides(args: list[str]) -> None:
    """Compose the config from command-line overrides once, to refuse a bad override early.

    A typo in a key, a key the section's schema lacks, a value of the wrong type, an unknown
    group option, bad syntax, a key without a value, or an override of a section the method
    does not read ends with one line and exit code 2 before jax is used and before Hydra makes
    a run directory. Flags (`-m`, `--cfg`, `--help`, ...) are left to Hydra (`_main` checks
    each job of a multirun the same way).

    Args:
      args: the command-line arguments (without the program name).
    """
    if any(arg.startswith("-") for arg in args):
        return
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=args)
    except (HydraException, OmegaConfBaseException) as error:
        _exit(f"error: bad command-line override: {composition_error(error)}", 2)
    try:
        check_schema_keys(cfg)
        _resolved(cfg)
        check_applicable(cfg, args)
    except ConfigError as error:
        _exit(f"error: {error}", 2)


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The composed config of `overrides`, for scripts that run a method outside the CLI.

    Registers the structured-config schemas, composes `conf/config.yaml` with the overrides and
    checks every section's keys against its schema, as the CLI does.

    Args:
      overrides: Hydra overrides, e.g. ``["experiment=nplm", "method.clip=9"]``.

    Returns:
      The config.

    Raises:
      ConfigError: one line naming the bad override or key.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from jaxws import schemas

    schemas.register()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"bad override: {composition_error(error)}") from None
    check_schema_keys(cfg)
    return cfg


def composition_error(error: Exception) -> str:
    """One line from Hydra's composition error, naming the key and what the schema allows."""
    import dataclasses

    cause = error.__cause__
    key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    if key and cause is not None:
        first = str(cause).splitlines()[0]
        allowed = ""
        if schema is not None and dataclasses.is_dataclass(schema):
            allowed = f"; allowed: {[f.name for f in dataclasses.fields(schema)]}"
        return f"{key}: {first}{allowed}"
    text = str(error).split("Config search path")[0]
    return " ".join(text.split())


def main() -> None:
    """Console entry point: register the schemas, check the overrides, run Hydra's `_main`."""
    from jaxws import schemas

    schemas.register()
    check_overrides(sys.argv[1:])
    _main()
