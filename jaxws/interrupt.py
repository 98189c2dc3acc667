"""Ctrl-C that ends a run, however busy the process is when it arrives.

Python turns SIGINT into `KeyboardInterrupt` at the next bytecode of the main thread. When that
bytecode belongs to a finalizer (`__del__`, a weakref callback: JAX arrays are freed all the time
during training), Python prints "Exception ignored" and the interrupt is lost, and the run goes
on. Inside `interruptible()`, a SIGINT is remembered and `KeyboardInterrupt` is raised again
every `repeat_s` seconds (SIGALRM) until it reaches the code that handles it; the timer is
disarmed when the block is left. Such a lost interrupt is not reported either (a traceback
after ctrl-c would read as a crash): while the block is active, `sys.unraisablehook` drops a
`KeyboardInterrupt` raised in a finalizer once a SIGINT arrived, and passes anything else on.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

_requested = False
_repeat_s = 0.5


def requested() -> bool:
    """True once a SIGINT arrived inside `interruptible()`."""
    return _requested


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    signal.setitimer(signal.ITIMER_REAL, _repeat_s)
    raise KeyboardInterrupt


def _quiet_lost_interrupts(previous_hook):  # noqa: ANN001
    def hook(unraisable):  # noqa: ANN001
        if _requested and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return  # raised again by the alarm until it is handled
        previous_hook(unraisable)

    return hook


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _requested:
        signal.setitimer(signal.ITIMER_REAL, _repeat_s)
        raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible(repeat_s: float = 0.5) -> Iterator[None]:
    """Within the block, a SIGINT raises `KeyboardInterrupt` until it is handled.

    Only in the main thread (signal handlers can only be set there); elsewhere a no-op.

    Args:
      repeat_s: seconds between repeated `KeyboardInterrupt`s after a SIGINT.
    """
    global _requested, _repeat_s
    try:
        previous = signal.signal(signal.SIGINT, _on_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    previous_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_lost_interrupts(previous_hook)
    _requested, _repeat_s = False, repeat_s
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
