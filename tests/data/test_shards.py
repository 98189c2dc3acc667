"""HDF5 shards: exact round trip, refusal of truncated/corrupted files, manifest, hv-reference."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from jaxws.data import shards
from jaxws.data.shards import ShardError, load_events, read_shard, write_shard

REFERENCE = Path("/work/shared/data/hv-reference")
if not REFERENCE.exists():
    REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "hv-reference"


def _arrays(n=700, width=40, seed=0, model_id=2, label=1):
    rng = np.random.default_rng(seed)
    pt = np.sort(rng.exponential(20.0, (n, 2, width)), axis=-1)[..., ::-1]
    pt[..., width // 2 :] = 0.0
    const = np.stack([pt, rng.normal(0, 0.3, pt.shape), rng.normal(0, 0.3, pt.shape)], -1)
    const[pt == 0] = 0.0
    mjj = rng.uniform(4400, 5800, n)
    return dict(
        constituents=const,
        n_constituents=np.full((n, 2), width // 2),
        pt_truncated=np.zeros((n, 2)),
        jets=rng.normal(size=(n, 2, 4)),
        mjj=mjj,
        region=np.where((mjj >= 4700) & (mjj < 5500), 0, 1),
        label=np.full(n, label),
        model_id=np.full(n, model_id),
        seed=np.full(n, 7),
        event_index=np.arange(n) * 3,
    )


def _write(tmp_path, name="id_lambda10", **kw):
    arrays = _arrays(**kw)
    path = tmp_path / f"{name}.h5"
    digest = write_shard(path, arrays, dict(sample=name, settings=["a = 1", "b = 2"], n=3))
    return path, arrays, digest


def test_round_trip_is_exact_in_schema_dtypes(tmp_path):
    path, arrays, digest = _write(tmp_path)
    assert digest == shards.sha256_file(path)
    back = read_shard(path, expected_sha256=digest)
    for name, (dtype, _) in shards.SCHEMA.items():
        assert back[name].dtype == dtype, name
        np.testing.assert_array_equal(back[name], np.asarray(arrays[name]).astype(dtype), name)
    attrs = shards.read_attrs(path)
    assert attrs["settings"] == ["a = 1", "b = 2"]
    assert attrs["n"] == 3
    assert attrs["n_events"] == 700
    # float16 on relative coordinates: error far below a 75x75 pixel over [-1, 1]
    err = np.abs(back["constituents"].astype(np.float64) - arrays["constituents"])[..., 1:]
    assert err.max() < 2e-3
    events = load_events(path)
    assert events.constituents.dtype == np.float32
    assert len(events) == 700
    np.testing.assert_array_equal(events.model_id, 2)


def test_failed_write_leaves_previous_file(tmp_path):
    path, arrays, digest = _write(tmp_path)
    bad = dict(arrays, mjj=arrays["mjj"][:-1])
    with pytest.raises(ShardError, match="mjj has 699"):
        write_shard(path, bad, {})
    assert shards.sha256_file(path) == digest
    assert not list(tmp_path.glob(".tmp-*"))


def test_truncated_file_is_refused_naming_it(tmp_path):
    path, _, _ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=str(path)):
        load_events(path)


def test_corrupted_chunk_is_refused_without_manifest(tmp_path):
    path, _, _ = _write(tmp_path)
    with h5py.File(path) as f:
        info = f["jets"].id.get_chunk_info(0)
    with open(path, "r+b") as f:  # flip bytes inside the first compressed chunk of `jets`
        f.seek(info.byte_offset + info.size // 2)
        block = bytearray(f.read(8))
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes(b ^ 0xFF for b in block))
    with pytest.raises(ShardError, match=rf"{path}.*corrupted"):
        read_shard(path)


def test_manifest_checksum_mismatch_is_refused(tmp_path):
    path, _, digest = _write(tmp_path / "id_lambda10")
    record = dict(
        file="id_lambda10/id_lambda10.h5", model="id_lambda10", n_stored=700, sha256=digest
    )
    shards.write_record(path, record)
    manifest = shards.rebuild_manifest(tmp_path)
    assert manifest["n_events"] == {"id_lambda10": 700}
    assert len(load_events(tmp_path / "manifest.json")) == 700
    with h5py.File(path, "r+") as f:  # a valid HDF5 edit that changes content
        f.attrs["sample"] = "tampered"
    with pytest.raises(ShardError, match="does not match the manifest"):
        load_events(tmp_path)


def test_temporary_files_are_not_shards(tmp_path):
    _write(tmp_path)
    tmp = tmp_path / ".tmp-id_lambda10.h5.abc"
    tmp.write_bytes(b"partial")
    assert len(load_events(tmp_path)) == 700  # directory scan skips it
    with pytest.raises(ShardError, match="temporary file"):
        read_shard(tmp)


def test_load_events_selects_models_regions_and_refuses_too_many(tmp_path):
    _write(tmp_path, "qcd", seed=1, model_id=-1, label=0)
    _write(tmp_path, "id_lambda10", seed=2)
    events = load_events(tmp_path, models=["qcd", "hv_id_lambda10"], max_events=100, regions=[0])
    sr_qcd = (_arrays(seed=1)["region"][:100] == 0).sum()
    sr_sig = (_arrays(seed=2)["region"][:100] == 0).sum()
    assert len(events) == sr_qcd + sr_sig
    assert np.all(events.region == 0)
    np.testing.assert_array_equal(events.model_id, np.repeat([-1, 2], [sr_qcd, sr_sig]))
    with pytest.raises(
        ShardError, match=r"asked for 701 events of 'qcd' but the shards hold only 700"
    ):
        load_events(tmp_path, models=["qcd"], max_events=701)
    with pytest.raises(ShardError, match="'dd_lambda1' not in the shards"):
        load_events(tmp_path, models=["dd_lambda1"])
    events = load_events(tmp_path, models=["id_lambda10"], model_list=["dd_lambda5", "id_lambda10"])
    np.testing.assert_array_equal(events.model_id, 1)


def test_reads_hv_reference_files():
    path = REFERENCE / "hv_dd_lambda10.h5"
    with open(REFERENCE / "README.md") as f:
        readme = f.read()
    digest = shards.sha256_file(path)
    assert digest in readme
    events = load_events(
        [REFERENCE / "qcd.h5", path], models=["qcd", "dd_lambda10"], max_events=1000
    )
    assert len(events) == 2000
    np.testing.assert_array_equal(events.model_id, np.repeat([-1, 9], 1000))
    np.testing.assert_array_equal(events.label, np.repeat([0, 1], 1000))
    assert events.constituents.shape[1:] == (2, 256, 3)


def test_atomic_json_and_manifest_errors(tmp_path):
    shards.write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ShardError, match="manifest is not valid JSON"):
        load_events(tmp_path)
