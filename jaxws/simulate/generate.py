"""The generation command: its config checked completely, then `generation.run_generation`.

CLI (Hydra; config in conf/generate.yaml):

    python -m jaxws.simulate.generate models=[qcd,id_lambda10] events=500 seeds=[1,2] \
        out=data/pythia

A bad config is one line naming the key and exit code 2, before any directory or event is made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxws.config import ConfigError
from jaxws.simulate.hidden_valley import parse_model
from jaxws.simulate.pythia import Selection, Smearing

if TYPE_CHECKING:
    from omegaconf import DictConfig


from jaxws.simulate.generation import plan_shards, run_generation

KNOWN_KEYS = (
    "models",
    "seeds",
    "events",
    "out",
    "processes",
    "max_generated",
    "model_list",
    "selection",
    "smearing",
    "progress",
)


def _positive_int(value: Any, key: str, allow_null: bool = False) -> int | None:
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "null or a positive integer" if allow_null else "a positive integer"
        raise ConfigError(f"{key} must be {allowed}, got {value!r}")
    return value


def _as_list(value: Any, key: str) -> list:
    value = value if isinstance(value, list) else [value]
    if not value:
        raise ConfigError(f"{key} must list at least one entry")
    return value


def check_config(cfg: DictConfig) -> dict[str, Any]:
    """Validate a generation config completely, before any directory or event is made.

    Args:
        cfg: The generation config (conf/generate.yaml with overrides).

    Returns:
        Keyword arguments of `run_generation` (with `specs` planned).

    Raises:
        ConfigError: naming the key and what is allowed.
    """
    from omegaconf import OmegaConf

    from jaxws.config import from_section

    try:
        c = OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # omegaconf's interpolation errors name the key
        raise ConfigError(f"config does not resolve: {' '.join(str(error).split())}") from error
    unknown = sorted(set(c) - set(KNOWN_KEYS) - {"hydra"})
    if unknown:
        raise ConfigError(f"unknown generate config key(s) {unknown}; known: {sorted(KNOWN_KEYS)}")
    models = _as_list(c.get("models"), "models")
    for model in models:
        if not isinstance(model, str):
            raise ConfigError(f"models must be model names, got {model!r}")
        try:
            parse_model(model)
        except ValueError as error:
            raise ConfigError(f"models: {model!r}: {error}") from error
    seeds = _as_list(c.get("seeds"), "seeds")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ConfigError(f"seeds must be integers in [0, 2^31), got {seed!r}")
    events = _positive_int(c.get("events"), "events")
    out = c.get("out")
    if not isinstance(out, str) or not out:
        raise ConfigError(f"out must be a directory path, got {out!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"out {out!r} exists and is not a directory")
    model_list = c.get("model_list")
    if model_list is not None and (
        not isinstance(model_list, list) or not all(isinstance(m, str) for m in model_list)
    ):
        raise ConfigError(f"model_list must be null or a list of model names, got {model_list!r}")
    if not isinstance(c.get("progress", True), bool):
        raise ConfigError(f"progress must be true or false, got {c.get('progress')!r}")
    try:
        specs = plan_shards(models, seeds, events)
    except ValueError as error:
        raise ConfigError(f"models/seeds/events: {error}") from error
    return dict(
        out=out,
        specs=specs,
        selection=from_section(Selection, c.get("selection"), "selection"),
        smearing=from_section(Smearing, c.get("smearing"), "smearing"),
        processes=_positive_int(c.get("processes"), "processes", allow_null=True),
        max_generated=_positive_int(c.get("max_generated"), "max_generated", allow_null=True),
        model_list=model_list,
        progress=c.get("progress", True),
    )


def main_from_config(cfg: DictConfig) -> dict[str, Any]:
    """Run a generation from a Hydra/OmegaConf config (conf/generate.yaml).

    Args:
        cfg: The generation config.

    Returns:
        The manifest written by `run_generation`.

    Raises:
        ConfigError: If the config is invalid (see `check_config`).
    """
    manifest = run_generation(**check_config(cfg))
    print(json.dumps(manifest["n_events"], indent=1))
    return manifest


def _task(cfg: DictConfig) -> None:
    """Hydra task: user mistakes and named I/O errors as one line (exit 2), Ctrl-C likewise."""
    out = Path(str(cfg.get("out", "")))
    try:
        main_from_config(cfg)
    except ConfigError as error:
        _exit(f"error: {error}", 2)
    except OSError as error:
        if error.filename is None:
            raise
        reason = str(error.strerror or error)
        _exit(
            f"error: {reason}" + ("" if str(error.filename) in reason else f": {error.filename}"), 2
        )
    except ImportError as error:
        if "pythia8mc" not in str(error):
            raise
        _exit(f"error: {error}", 2)
    except KeyboardInterrupt:
        done = len(list(out.rglob("*.h5"))) if out.is_dir() else 0
        _exit(
            f"interrupted; {done} finished shard(s) are kept in {out}; rerun the same command "
            "to generate only the missing ones",
            130,
        )


def _exit(message: str, code: int) -> None:
    print(f"jaxws.simulate.generate: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    """Command-line entry point: `python -m jaxws.simulate.generate key=value ...`."""
    import hydra

    # conf/generate.yaml beside the main entry point's groups, so the launchers of
    # conf/hydra/launcher (`hydra/launcher=slurm`, `local`) compose here too.
    conf = Path(__file__).resolve().parents[2] / "conf"
    hydra.main(version_base="1.3", config_path=str(conf), config_name="generate")(_task)()


if __name__ == "__main__":
    main()
