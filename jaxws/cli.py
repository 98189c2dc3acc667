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
}
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _group_name() -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir).name
    return ""


def enable_compilation_cache() -> None:
    """Reuse compiled XLA programs across runs (JAX's persistent cache; `JAXWS_JAX_CACHE`
    overrides the directory, an empty value turns it off)."""
    import os

    import jax

    directory = os.environ.get("JAXWS_JAX_CACHE", str(Path(".cache") / "jax-compilation"))
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
    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists():
        raise FileExistsError(
            f"{run_dir} already holds a finished run (results.json); choose a new output directory"
        )
    tracking = from_section(TrackingConfig, cfg.tracking, "tracking")
    if group and not tracking.group:
        tracking = TrackingConfig(**{**tracking.__dict__, "group": group})
    module = methods.load(cfg.method.name)
    if hasattr(module, "check_inputs"):
        module.check_inputs(cfg)  # bad config or user files: refused before anything is written
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tracker = Tracker(run_dir, resolved, tracking, name=str(cfg.run_name))
    try:
        metrics = module.run(cfg, jax.random.key(cfg.seed), run_dir, tracker)
        atomic_write_json(run_dir / "results.json", metrics)
    finally:
        tracker.finish()
    return metrics


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from jaxws.config import ConfigError

    run_dir = HydraConfig.get().runtime.output_dir
    enable_compilation_cache()
    try:
        metrics = execute(cfg, run_dir, _group_name())
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError, ImportError) as error:
        print(f"jaxws: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"jaxws: results in {run_dir}")
    if "figure" in metrics:
        print(f"jaxws: figure: {metrics['figure']}")


def main() -> None:
    _main()
