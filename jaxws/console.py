"""A quiet console: jaxws's messages, warnings, errors and progress bars; no library INFO.

INFO from the libraries underneath shows only when asked.

Hidden unless `verbose=true` (config) or `JAXWS_VERBOSE=1` (environment):
- Python INFO records of jax (e.g. "Unable to initialize backend 'tpu'"), absl (orbax logs about
  30 INFO lines per checkpoint save through it), orbax and etils;
- matplotlib's font-fallback warnings;
- XLA's C++ log below FATAL, which carries the "Very slow compile?" alarm
  (`TF_CPP_MIN_LOG_LEVEL=3`; only effective before jax is first imported, so set here at
  the entry point; a value already in the environment is kept).

Progress bars: when stderr is not a terminal (a log file, a batch job), tqdm redraws at most
every 30 s instead of every 0.1 s, so a log holds a few progress lines instead of hundreds
(`TQDM_MININTERVAL`, read by tqdm >= 4.66; an existing value is kept).
"""

from __future__ import annotations

import logging
import os
import sys

LIBRARY_LOGGERS = ("jax", "jaxlib", "absl", "orbax", "etils", "jax._src.xla_bridge")
#: loggers whose warnings are noise for a user (font fallbacks of the plot style)
NOISY_WARNINGS = ("matplotlib.font_manager",)


def verbose_requested(configured: bool | None = None) -> bool:
    """True if the config (`verbose`) or `JAXWS_VERBOSE` (1/true/yes) asks for library logs."""
    if configured:
        return True
    return os.environ.get("JAXWS_VERBOSE", "").lower() in ("1", "true", "yes")


def configure(verbose: bool = False) -> None:
    """Set library log levels and environment defaults (see module docstring)."""
    level = logging.INFO if verbose else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in NOISY_WARNINGS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_MININTERVAL", "30")
