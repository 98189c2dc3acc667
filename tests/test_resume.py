"""kill -9 in the middle of a study, rerun the same command: the same final numbers.

A run is killed (SIGKILL: no handler, no cleanup) right after its first chunk of members is
saved (`JAXWS_KILL_AFTER_CHUNKS=1` makes the process send itself SIGKILL at that point, so the
test does not race the run), then rerun with the same config into the same directory; its
results must equal those of an uninterrupted run, and the rerun must have loaded the saved
chunk rather than retrained it.
Together with the chunk-level tests (tests/train/test_engine.py) this covers every method that
trains ensembles through `fit_ensemble` with a checkpoint directory and the NPLM toys
(`methods.nplm.toy_statistics.run_toy_chunks`). Transfer stands for the study methods: its
fine-tuning chunks go through the same `fit_ensemble` chunk loop as CWoLa's training from
scratch (and the meta variants' fine-tuning), with frozen parameters and a pretraining
artifact on top; a separate CWoLa case cost about 30 s of the suite and tested no other code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from shrunk import TINY_CWOLA, TINY_NPLM

REPO = Path(__file__).resolve().parents[1]

# Two pseudo-experiments x two injections = 4 members in chunks of 2.
CWOLA = [*TINY_CWOLA, "training.chunk_size=2"]
TRANSFER = [
    *CWOLA,
    "method=transfer",
    "method.source.n_background=400",
    "method.source.n_signal_per_model=40",
    "method.pretrain.n_signal=300",
    "method.pretrain.n_background=300",
    "method.pretrain.max_epochs=2",
]
# Eight null toys in chunks of 4 (the first saved chunk belongs to the null).
NPLM = [
    "experiment=nplm",
    *(o for o in TINY_NPLM if not o.startswith("method.chunk_size=")),
    "method.chunk_size=4",
]
CASES = {
    "transfer": (TRANSFER, "transfer/head"),
    "nplm": (NPLM, "nplm_null"),
}


def _command(run_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "jaxws", *overrides, f"hydra.run.dir={run_dir}"]


def _env() -> dict:
    # The runs share the test session's compilation cache (`JAXWS_JAX_CACHE`, set in
    # conftest.py): the three runs of a case compile once, and the cases and the other tests that
    # run the same programs (CWoLa data preparation, README commands) reuse each other's
    # programs. A cached program is the same XLA executable as a fresh compile, and all three
    # runs of a case see the same cache, so the comparison below is unchanged.
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _results(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    skip = ("figure", "seconds", "loaded_from_artifact")  # paths, timings, cache hits
    return {k: v for k, v in metrics.items() if not any(s in k for s in skip)}


@pytest.mark.parametrize("method", sorted(CASES))
def test_killed_run_resumes_to_the_same_numbers(method, tmp_path):
    extra, chunks = CASES[method]
    env = _env()
    reference = tmp_path / "uninterrupted"
    subprocess.run(_command(reference, extra), cwd=tmp_path, env=env, check=True, timeout=600)

    run_dir = tmp_path / "killed"
    killed = subprocess.run(
        _command(run_dir, extra),
        cwd=tmp_path,
        env={**env, "JAXWS_KILL_AFTER_CHUNKS": "1"},
        capture_output=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_chunk = run_dir / "checkpoints" / chunks / "chunk_00000.npz"
    assert first_chunk.exists(), "the run never saved its first chunk"
    assert not (run_dir / "checkpoints" / chunks / "chunk_00001.npz").exists()
    assert not (run_dir / "results.json").exists()  # written when a run finishes
    saved = first_chunk.stat().st_mtime_ns

    subprocess.run(_command(run_dir, extra), cwd=tmp_path, env=env, check=True, timeout=600)
    assert first_chunk.stat().st_mtime_ns == saved  # loaded, not retrained and rewritten
    assert _results(run_dir) == _results(reference)
