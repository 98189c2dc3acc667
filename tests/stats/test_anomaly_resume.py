"""The anomaly test's toys resume from saved chunks (jaxws.train.resume.map_chunks).

At function level (no process is killed; the kill -9 path of map_chunks is tested for NPLM):
compute the toys into a directory, delete the last chunk file as a kill would leave it, rerun
and get the same arrays with the finished chunks loaded, not recomputed; changed inputs in the
same directory must not reuse a chunk.
"""

import jax
import numpy as np

from jaxws.stats import anomaly as at

B = 40.0


def samples(seed: int = 0):
    rng = np.random.default_rng(seed)
    background = rng.normal(0.0, 1.0, 3000).astype("f4")
    signal = rng.normal(2.0, 0.5, 600).astype("f4")
    return background[:1500], background[1500:], signal[:300], signal[300:]


def toys(directory, key=0, expected_background=B, blocks_per_chunk=2):
    reference, bank, template_sample, pool = samples()
    null = at.score_density(reference)
    template = at.score_density(template_sample)
    out = at.sensitivity_toys(
        jax.random.key(key),
        bank,
        pool,
        null,
        template,
        expected_background,
        [0.0, 5.0],
        40,
        10,
        checkpoint_dir=directory,
        blocks_per_chunk=blocks_per_chunk,
    )
    return {k: np.asarray(v) for k, v in out.items()}


def assert_same(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_toys_resume_to_the_same_numbers(tmp_path):
    # 4 null blocks + 2 signal blocks of 10 toys, 2 blocks per chunk: 3 chunk files.
    first = toys(tmp_path)
    files = sorted(tmp_path.glob("chunk_*.npz"))
    assert [f.name for f in files] == [f"chunk_{c:05d}.npz" for c in range(3)]
    kept = files[0].stat().st_mtime_ns
    files[-1].unlink()
    resumed = toys(tmp_path)
    assert_same(first, resumed)
    assert files[-1].exists()
    assert files[0].stat().st_mtime_ns == kept  # loaded, not recomputed
    # Without a directory, and in other chunk sizes, the toys are the same ones.
    assert_same(first, toys(None))
    np.testing.assert_allclose(toys(None, blocks_per_chunk=6)["null_gof"], first["null_gof"])


def test_changed_inputs_do_not_reuse_chunks(tmp_path):
    toys(tmp_path)
    for changed in ({"key": 1}, {"expected_background": 45.0}):
        in_place = toys(tmp_path, **changed)
        assert_same(in_place, toys(None, **changed))
        assert not np.array_equal(in_place["null_gof"], toys(None)["null_gof"])


def test_r_scan_resumes_one_r_value_per_chunk(tmp_path):
    rng = np.random.default_rng(1)
    pair = lambda n, shift=0.0: (
        rng.normal(shift, 1.0, n).astype("f4"),
        rng.normal(-2.0 + 2 * shift, 1.0, n).astype("f4"),
    )
    reference, bank = pair(1500), pair(1500)
    templates = tuple(a[None] for a in pair(300, 1.0))
    pools = tuple(a[None] for a in pair(300, 1.0))

    def scan(directory):
        return at.scan_score_weight(
            jax.random.key(3),
            [0.0, 1.0],
            reference,
            bank,
            templates,
            pools,
            B,
            5.0,
            20,
            10,
            checkpoint_dir=directory,
        )

    first = scan(tmp_path)
    (tmp_path / "chunk_00001.npz").unlink()
    resumed = scan(tmp_path)
    for name in ("gof", "q0"):
        np.testing.assert_array_equal(first[name]["median_p"], resumed[name]["median_p"])
    # One R per chunk with the same key: the same numbers as the scan in one call.
    np.testing.assert_array_equal(first["gof"]["median_p"], scan(None)["gof"]["median_p"])
