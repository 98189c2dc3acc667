"""Ctrl-C inside `interruptible()`: raised again until handled, and an interrupt lost in a
finalizer is not reported as a traceback (other errors in finalizers still are).

Run in a fresh interpreter: pytest installs its own `sys.unraisablehook`.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import contextlib, gc, signal, sys
from jaxws import interrupt

class RaisesOnDelete:
    def __init__(self, error):
        self.error = error
    def __del__(self):
        raise self.error("from a finalizer")

def finalize(error):
    RaisesOnDelete(error)
    gc.collect()

try:
    with interrupt.interruptible(repeat_s=0.2):
        finalize(KeyboardInterrupt)
        print("-- sigint --", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # swallowed, as a finalizer would
            signal.raise_signal(signal.SIGINT)
        assert interrupt.requested()
        finalize(KeyboardInterrupt)
        finalize(ValueError)
        signal.pause()
except KeyboardInterrupt:
    print("handled", flush=True)
print(sys.unraisablehook is sys.__unraisablehook__, flush=True)
"""


def test_interrupt_lost_in_a_finalizer_is_quiet_and_raised_again():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    before, after = out.stderr.split("-- sigint --")
    assert "KeyboardInterrupt: from a finalizer" in before  # no SIGINT yet: reported as usual
    assert "KeyboardInterrupt" not in after  # after the SIGINT: dropped quietly
    assert "ValueError: from a finalizer" in after  # anything else: still reported
    assert out.stdout.split() == ["handled", "True"]  # raised again; hook restored
