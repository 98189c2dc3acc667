"""The scripts in experiments/ compose the config as the CLI does (schemas registered) and
refuse bad input with one line and exit code 2, before any toy is trained."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("nplm_symmetrized_null.py", ["--lengths", "0"], "--lengths must be >= 1"),
        ("nplm_clip_calibration.py", ["--clips", "0"], "--clips must be > 0"),
        ("anomaly_null_check.py", ["data.nope=1"], "data.nope: Key 'nope' not in 'TPCConfig'"),
    ],
)
def test_script_composes_the_config_and_refuses_bad_input(script, args, message, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written
