"""Hydra entry point: `python -m jaxws [overrides]` (or the `jaxws` console script).

Thin on purpose: compose the config, check its top level, make the run directory's tracker,
turn the seed into one key, and hand over to `jaxws.methods.<method.name>.run`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

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
    "paths",
    "objective",
    "verbose",
}
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _group_name() -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hydra_cfg.sweep.dir)  # <date>/<time>-<name>: the group names both
        return f"{sweep_dir.parent.name}_{sweep_dir.name}"
    return ""


def enable_compilation_cache(configured: str | None = None) -> None:
    """Reuse compiled XLA programs across runs (JAX's persistent cache) in the directory of
    `jaxws.paths.compilation_cache_dir` (`JAXWS_JAX_CACHE`, else `paths.compilation_cache`,
    else the user cache directory; empty = off)."""
    import jax

    from jaxws.paths import compilation_cache_dir

    directory = compilation_cache_dir(configured)
    if directory:
        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def execute(cfg: DictConfig, run_dir: str | Path, group: str = "") -> dict:
    """Run the configured method into `run_dir`; returns its metrics."""
    import jax

    from jaxws import methods
    from jaxws.config import ConfigError, from_section
    from jaxws.track import Tracker, TrackingConfig, atomic_write_json

    unknown = sorted(set(cfg) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown top-level config key(s) {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}"
        )
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    if cfg.get("objective") is not None and not isinstance(cfg.objective, str):
        raise ConfigError(f"objective must be a metric name or null, got {cfg.objective!r}")
    if not isinstance(cfg.get("verbose", False), bool):
        raise ConfigError(f"verbose must be true or false, got {cfg.verbose!r}")
    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists():
        raise FileExistsError(
            f"{run_dir} already holds a finished run (results.json); choose a new output directory"
        )
    tracking = from_section(TrackingConfig, cfg.tracking, "tracking")
    if group and not tracking.group:
        tracking = TrackingConfig(**{**tracking.__dict__, "group": group})
    module = methods.load(cfg.method.name)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tracker = Tracker(run_dir, resolved, tracking, name=str(cfg.run_name))
    try:
        metrics = module.run(cfg, jax.random.key(cfg.seed), run_dir, tracker)
        atomic_write_json(run_dir / "results.json", metrics)
    finally:
        tracker.finish()
    return metrics


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from jaxws import console
    from jaxws.config import ConfigError

    console.configure(console.verbose_requested(cfg.get("verbose")))
    run_dir = HydraConfig.get().runtime.output_dir
    paths = cfg.get("paths") or {}
    enable_compilation_cache(paths.get("compilation_cache"))
    try:
        metrics = execute(cfg, run_dir, _group_name())
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError, ImportError) as error:
        print(f"jaxws: error: {error}", file=sys.stderr)
        sys.exit(2)
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


def main() -> None:
    _main()
