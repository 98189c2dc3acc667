"""Own events in: numpy, awkward, ROOT (uproot) and plain HDF5 round trips, bad inputs named,
and `data=events` end to end."""

import dataclasses
import json

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot
from hydra import compose, initialize_config_dir

from jaxws.cli import CONFIG_DIR, execute
from jaxws.config import ConfigError
from jaxws.data import readers
from jaxws.data.events import JetEvents
from jaxws.data.readers import EventsError
from jaxws.data.shards import ShardError
from jaxws.simulate.sources import PythiaSource, make_source

FIELDS = readers.REQUIRED + readers.OPTIONAL


def random_events(n=9, width=6, seed=0, label=0):
    """Events in the schema with ragged constituent lists (one jet full, some nearly empty)."""
    rng = np.random.default_rng(seed)
    constituents = rng.uniform(0.1, 300.0, (n, 2, width, 3)).astype(np.float32)
    constituents[..., 1:] -= 150.0
    constituents[..., 0] = -np.sort(-constituents[..., 0], axis=2)
    counts = rng.integers(1, width + 1, (n, 2))
    counts[0, 0] = width
    padding = np.arange(width) >= counts[..., None]
    constituents[padding] = 0.0
    return JetEvents(
        constituents=constituents,
        n_constituents=counts.astype(np.int32),
        jets=rng.normal(size=(n, 2, 4)).astype(np.float32),
        mjj=rng.uniform(4400, 5800, n).astype(np.float32),
        region=rng.integers(0, 2, n).astype(np.int8),
        label=np.full(n, label, np.int8),
        model_id=np.full(n, -1 if label == 0 else 0, np.int16),
    )


def assert_same(a, b):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_root_file_written_by_uproot_round_trips_exactly(tmp_path):
    events = random_events()
    path = readers.write_root(tmp_path / "events.root", events)
    # the file is a real TTree with one jagged branch per jet and coordinate (read by uproot alone)
    with uproot.open(path) as file:
        tree = file["events"]
        assert tree.num_entries == len(events)
        jagged = tree["jet1_constituent_pt"].array(library="ak")
        np.testing.assert_array_equal(ak.num(jagged), (events.constituents[:, 1, :, 0] > 0).sum(1))
    assert_same(readers.read_root(path), events)


def test_awkward_lists_are_sorted_padded_and_truncated():
    table = {
        "mjj": [5000.0, 4500.0],
        "region": [0, 1],
        "jet0_pt": [900.0, 800.0],
        "jet0_eta": [0.1, -0.2],
        "jet0_phi": [1.0, -1.0],
        "jet0_mass": [50.0, 60.0],
        "jet1_pt": [850.0, 780.0],
        "jet1_eta": [0.3, 0.4],
        "jet1_phi": [-2.0, 2.0],
        "jet1_mass": [40.0, 30.0],
        "jet0_constituent_pt": [[1.0, 5.0, 3.0], [2.0]],
        "jet0_constituent_deta": [[0.1, 0.5, 0.3], [0.2]],
        "jet0_constituent_dphi": [[-0.1, -0.5, -0.3], [-0.2]],
        "jet1_constituent_pt": [[], [4.0, 7.0]],
        "jet1_constituent_deta": [[], [0.4, 0.7]],
        "jet1_constituent_dphi": [[], [-0.4, -0.7]],
    }
    events = readers.events_from_awkward(table, label=1, model_id=3)
    np.testing.assert_array_equal(events.constituents[0, 0, :, 0], [5.0, 3.0, 1.0])
    np.testing.assert_array_equal(events.constituents[0, 0, :, 1], np.float32([0.5, 0.3, 0.1]))
    np.testing.assert_array_equal(events.constituents[1, 1, :, 0], [7.0, 4.0, 0.0])
    np.testing.assert_array_equal(events.n_constituents, [[3, 0], [1, 2]])
    np.testing.assert_array_equal(events.jets[1, 1], np.float32([780.0, 0.4, 2.0, 30.0]))
    assert events.label.tolist() == [1, 1]
    assert events.model_id.tolist() == [3, 3]
    hardest = readers.events_from_awkward(table, label=1, max_constituents=2)
    np.testing.assert_array_equal(hardest.constituents[0, 0, :, 0], [5.0, 3.0])
    np.testing.assert_array_equal(hardest.n_constituents, [[3, 0], [1, 2]])
    renamed = {("Mjj" if k == "mjj" else k): v for k, v in table.items()}
    assert_same(readers.events_from_awkward(renamed, {"mjj": "Mjj"}, label=1, model_id=3), events)
    with pytest.raises(EventsError, match="branch 'jet1_mass' missing"):
        readers.events_from_awkward({k: v for k, v in table.items() if k != "jet1_mass"}, label=0)


def test_plain_hdf5_without_attributes_round_trips_exactly(tmp_path):
    events = random_events(label=1)
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as file:  # a user's file: datasets only, no 'sample' attribute
        for name in FIELDS:
            file[name] = getattr(events, name)
        file["something_else"] = np.arange(3)
    assert_same(readers.read_hdf5(path), events)
    assert_same(readers.read_hdf5(readers.write_hdf5(tmp_path / "again.h5", events)), events)
    # required datasets only: n_constituents counted, label and model_id from the arguments
    with h5py.File(path, "w") as file:
        for name in readers.REQUIRED:
            file[name] = getattr(events, name)
    minimal = readers.read_hdf5(path, label=1, model_id=0)
    assert_same(minimal, events)


def test_numpy_arrays_and_bad_inputs_are_named(tmp_path):
    events = random_events()
    arrays = {name: getattr(events, name) for name in FIELDS}
    assert_same(readers.events_from_arrays(arrays), events)
    with pytest.raises(EventsError, match=r"required dataset\(s\) \['jets'\] missing"):
        readers.events_from_arrays({k: v for k, v in arrays.items() if k != "jets"})
    with pytest.raises(EventsError, match=r"jets must have shape \(N, 2, 4\), got \(9, 2, 3\)"):
        readers.events_from_arrays({**arrays, "jets": arrays["jets"][..., :3]})
    with pytest.raises(EventsError, match=r"constituents must have shape \(N, 2, C, 3\)"):
        readers.events_from_arrays({**arrays, "constituents": arrays["constituents"][:, 0]})
    with pytest.raises(EventsError, match="region has 8 events, mjj has 9"):
        readers.events_from_arrays({**arrays, "region": arrays["region"][1:]})
    with pytest.raises(EventsError, match="mjj holds NaN or inf"):
        readers.events_from_arrays({**arrays, "mjj": np.where(arrays["mjj"] > 5000, np.nan, 1)})
    with pytest.raises(EventsError, match="region must be 0"):
        readers.events_from_arrays({**arrays, "region": arrays["region"] + 5})
    with pytest.raises(EventsError, match="no 'label' dataset"):
        readers.events_from_arrays({k: arrays[k] for k in readers.REQUIRED})
    path = tmp_path / "broken.h5"
    with h5py.File(path, "w") as file:
        file["mjj"] = arrays["mjj"]
    with pytest.raises(EventsError, match=r"broken.h5: required dataset\(s\) \['constituents'"):
        readers.read_hdf5(path, label=0)
    with pytest.raises(EventsError, match="HDF5 file not found"):
        readers.read_hdf5(tmp_path / "nope.h5")
    path.write_bytes(b"not hdf5")
    with pytest.raises(EventsError, match="not a readable HDF5 file"):
        readers.read_hdf5(path)
    root = readers.write_root(tmp_path / "e.root", events, tree="jets")
    with pytest.raises(EventsError, match="no TTree 'events'"):
        readers.read_root(root)


def data_section(tmp_path, **extra):
    background, signal = random_events(seed=1), random_events(seed=2, label=1)
    readers.write_hdf5(tmp_path / "bkg.h5", background)
    readers.write_hdf5(tmp_path / "sig.h5", signal)
    section = {
        "source": "events",
        "background": str(tmp_path / "bkg.h5"),
        "signals": {"other": str(tmp_path / "bkg.h5"), "mine": str(tmp_path / "sig.h5")},
        "signal": "mine",
        **extra,
    }
    return section, background, signal


def test_events_source_reads_the_configured_files(tmp_path):
    section, background, signal = data_section(tmp_path)
    source = make_source(section)
    assert source.model_names() == ["other", "mine"]
    assert_same(source.background(), background)
    first = signal.take(np.arange(4))
    expected = dataclasses.replace(first, model_id=np.full(4, 1, np.int16))  # position in signals
    assert_same(source.signal("mine", 4), expected)
    with pytest.raises(EventsError, match="given as signal but its 'label' dataset holds 0"):
        source.signal("other")
    with pytest.raises(EventsError, match="asked for 99 events, the file holds 9"):
        source.signal("mine", 99)
    with pytest.raises(ConfigError, match=r"data.signal 'yours' is not a key of data.signals"):
        make_source({**section, "signal": "yours"})
    with pytest.raises(ConfigError, match=r"data.background must name your background HDF5"):
        make_source({**section, "background": ""})


def test_pythia_without_shards_says_how_to_make_them(tmp_path):
    source = make_source({"source": "pythia", "paths": [str(tmp_path / "data/pythia")]})
    assert isinstance(source, PythiaSource)
    with pytest.raises(ShardError, match=r"python -m jaxws.simulate.generate .*hv-reference"):
        source.background()


def test_data_events_runs_the_cwola_study_on_user_files(tmp_path):
    """A CWoLa study from two user HDF5 files (made from simulator events), shrunk."""
    from jaxws.simulate.sources import SimulatorConfig, SimulatorSource

    simulator = SimulatorSource(SimulatorConfig(n_background=3000, n_signal=1500, resolution=8))
    readers.write_hdf5(tmp_path / "bkg.h5", simulator.background())
    readers.write_hdf5(tmp_path / "sig.h5", simulator.signal("id_lambda10"))
    overrides = [
        "data=events",
        f"data.background={tmp_path / 'bkg.h5'}",
        f"+data.signals={{id_lambda10:{tmp_path / 'sig.h5'}}}",
        "data.signal=id_lambda10",
        "data.resolution=8",
        "tracking=none",  # the shapes of test_cli's TINY study: its compiled programs are reused
        "tracking.figure_formats=[png]",
        "study.n_background_sr=600",
        "study.injections=[0,150]",
        "study.n_pseudo_experiments=2",
        "study.n_test_signal=300",
        "study.n_test_background=300",
        "training.max_epochs=2",
        "training.batch_size=128",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    execute(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["_target_"] == "jaxws.data.readers.EventsSource"
    assert (tmp_path / "run" / "study.csv").is_file()
