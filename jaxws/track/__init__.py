"""Run outputs: local files (always) and Weights & Biases (offline by default)."""

from jaxws.track.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from jaxws.track.tracker import Tracker, TrackingConfig

__all__ = [
    "Tracker",
    "TrackingConfig",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]
