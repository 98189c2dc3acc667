"""Run outputs: checkpoints, sweep summaries and Weights & Biases (offline by default)."""

from jaxws.track.tracker import Tracker, TrackingConfig

__all__ = ["Tracker", "TrackingConfig"]
