"""The run tracker: config, metrics, tables and figures in the run directory, and in W&B.

The resolved config, metrics, tables and figures are written to the run directory and mirrored
to Weights & Biases.

W&B runs in offline mode by default (no network needed; `wandb sync <run_dir>/wandb/...`
uploads later). A Hydra multirun sweep shares one W&B group (its date and time), so a sweep reads
as one unit; each run is named after its overrides.
`tracking=none` turns W&B off; the local files are always written and are the record: if W&B
fails to start or to write, the run goes on with local files only and says so once.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxws.config import check
from jaxws.files import (
    _to_jsonable,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    make_directory,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from wandb.sdk.wandb_run import Run


#: The figure files a run writes unless `tracking.figure_formats` says otherwise.
FIGURE_FORMATS = ("png", "pdf")


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """The `tracking` config group: where and how a run is mirrored to W&B.

    Attributes:
      wandb: log to Weights & Biases.
      mode: W&B mode, "offline" (default, no network), "online" or "disabled".
      project: W&B project.
      group: W&B group; empty = the Hydra sweep directory for multiruns, else the run name.
      tags: W&B tags.
      figure_formats: the files each figure is saved as under `figures/`: "png" (always: W&B
        and the console use it) and any of "pdf", "svg" (vector, for papers).
    """

    wandb: bool = True
    mode: str = "offline"
    project: str = "jaxws"
    group: str = ""
    tags: tuple[str, ...] = ()
    figure_formats: tuple[str, ...] = FIGURE_FORMATS

    def __post_init__(self):
        check(
            self.mode in ("offline", "online", "disabled"),
            f"tracking.mode must be offline, online or disabled, got {self.mode!r}",
        )
        formats = list(self.figure_formats)
        check(
            "png" in formats
            and set(formats) <= {"png", "pdf", "svg"}
            and len(set(formats)) == len(formats),
            "tracking.figure_formats must list png and, optionally, pdf and svg, each once; got "
            f"{formats}",
        )


def sweep_run_name(name: str) -> str:
    """W&B run name: `name`, plus the job's overrides inside a Hydra multirun.

    Inside a multirun the name reads like `cwola:seed=1,training.learning_rate=0.001`, so runs
    of a sweep are told apart; otherwise it is `name`.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return name
    hydra_cfg = HydraConfig.get()
    overrides = hydra_cfg.job.get("override_dirname", "")
    if hydra_cfg.mode != RunMode.MULTIRUN or not overrides:
        return name
    return f"{name}:{overrides}"


class Tracker:
    """Writes a run's outputs atomically into `run_dir` and mirrors them to W&B.

    Args:
      run_dir: the run's output directory (Hydra's run or sweep sub-directory).
      config: the resolved config (a plain dict), written to `config.json` and given to W&B.
      tracking: `TrackingConfig`; None means local files only.
      name: run name.
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: dict | None = None,
        tracking: TrackingConfig | None = None,
        name: str = "run",
    ):
        self.run_dir = make_directory(run_dir)
        self.metrics: dict[str, Any] = {}
        # This session's metrics.jsonl lines; the file is rewritten from them, so a resumed
        # run replaces the interrupted run's lines instead of appending duplicates.
        self._metric_lines: list[str] = []
        self._wandb_run = None
        self.wandb_failure: str | None = None
        self.figure_formats = tuple(tracking.figure_formats) if tracking else FIGURE_FORMATS
        if config is not None:
            atomic_write_json(self.run_dir / "config.json", config)
        if tracking is not None and tracking.wandb and tracking.mode != "disabled":
            try:
                import wandb

                self._wandb_run = wandb.init(
                    project=tracking.project,
                    group=tracking.group or name,
                    name=sweep_run_name(name),
                    tags=list(tracking.tags),
                    config=_to_jsonable(config or {}),
                    dir=str(self.run_dir),
                    mode=tracking.mode,
                    reinit="create_new",
                )
            except Exception as error:  # W&B is optional; local files are the record
                self._wandb_failed("start", error)

    @property
    def wandb_run(self) -> Run | None:
        """The live W&B run, or None (W&B off or failed)."""
        return self._wandb_run

    def _wandb_failed(self, action: str, error: BaseException) -> None:
        """Drop W&B after its first failure and say so once; local files carry on."""
        if self.wandb_failure is None:
            reason = " ".join(str(error).split()) or type(error).__name__
            self.wandb_failure = f"W&B failed to {action} ({reason})"
            print(
                f"jaxws: warning: {self.wandb_failure}; continuing with local files in "
                f"{self.run_dir}",
                file=sys.stderr,
            )
        run, self._wandb_run = self._wandb_run, None
        if run is not None:
            # Already reported; nothing more to do if finishing fails too.
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)

    def _to_wandb(self, action: str, call: Callable[[Run], object]) -> None:
        if self._wandb_run is None:
            return
        try:
            call(self._wandb_run)
        except Exception as error:  # W&B is optional
            self._wandb_failed(action, error)

    def path(self, name: str) -> Path:
        """Path of `name` inside the run directory (nothing is created)."""
        return self.run_dir / name

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Record scalar metrics (kept for `metrics.json`, appended to `metrics.jsonl`)."""
        metrics = _to_jsonable(metrics)
        self.metrics.update(metrics)
        self._metric_lines.append(json.dumps({"step": step, **metrics}, allow_nan=False) + "\n")
        atomic_write_text(self.run_dir / "metrics.jsonl", "".join(self._metric_lines))
        atomic_write_json(self.run_dir / "metrics.json", self.metrics)
        self._to_wandb("log metrics", lambda run: run.log(metrics, step=step))

    def save_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as `<name>.json` in the run directory (and save it to W&B).

        Returns:
            The path of the JSON file.
        """
        path = atomic_write_json(self.run_dir / f"{name}.json", obj)
        self._to_wandb(
            "save a file",
            lambda run: run.save(str(path), base_path=str(self.run_dir), policy="now"),
        )
        return path

    def save_table(self, name: str, rows: list[dict[str, Any]]) -> Path:
        """A list of flat dicts as CSV (and a W&B table)."""
        if not rows:
            raise ValueError(f"table {name!r} has no rows")
        columns = list(rows[0])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(_to_jsonable(row))
        path = atomic_write_bytes(self.run_dir / f"{name}.csv", buffer.getvalue().encode())

        def log_table(run: Run) -> None:
            import wandb

            data = [[_to_jsonable(row[c]) for c in columns] for row in rows]
            run.log({name: wandb.Table(columns=columns, data=data)})

        self._to_wandb("log a table", log_table)
        return path

    def save_figure(self, name: str, fig: Figure) -> Path:
        """Save a figure under `figures/` in each of `figure_formats`; returns the PNG path.

        PNG and PDF unless `tracking.figure_formats` says otherwise.
        """
        paths = {}
        for suffix in self.figure_formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=suffix, dpi=150, bbox_inches="tight")
            paths[suffix] = atomic_write_bytes(
                self.run_dir / "figures" / f"{name}.{suffix}", buffer.getvalue()
            )

        def log_image(run: Run) -> None:
            import wandb

            run.log({name: wandb.Image(str(paths["png"]))})

        self._to_wandb("log a figure", log_image)
        return paths["png"]

    def finish(self) -> None:
        """Close the W&B run (if any); a failure there is reported, not raised."""
        self._to_wandb("finish", lambda run: run.finish())
        self._wandb_run = None
