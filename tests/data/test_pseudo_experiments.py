"""The CWoLa pseudo-experiment builder: counts, luminosity scaling, disjoint test sets."""

import numpy as np
import pytest

from jaxws.config import ConfigError
from jaxws.data.events import JetEvents
from jaxws.data.pseudo_experiments import StudyDesign, build_pseudo_experiments, pool_events


def fake_events(n, sr_fraction, label, seed):
    rng = np.random.default_rng(seed)
    region = np.where(rng.random(n) < sr_fraction, 0, 1).astype(np.int8)
    return JetEvents(
        constituents=np.zeros((n, 2, 4, 3), np.float32),
        n_constituents=np.zeros((n, 2), np.int32),
        jets=np.zeros((n, 2, 4), np.float32),
        mjj=np.zeros(n, np.float32),
        region=region,
        label=np.full(n, label, np.int8),
        model_id=np.full(n, -1 if label == 0 else 2, np.int16),
    )


def test_counts_follow_the_luminosity_and_the_signal_mjj_shape():
    background = fake_events(6000, 0.5, 0, seed=0)
    signal = fake_events(3000, 0.8, 1, seed=1)
    design = StudyDesign(
        n_background_sr=1000,
        injections=(0, 100, 400),
        n_pseudo_experiments=3,
        n_test_signal=500,
        n_test_background=800,
    )
    pe = build_pseudo_experiments(0, background, signal, design)
    pool = pool_events(background, signal)
    bkg_ratio = (background.region == 1).sum() / (background.region == 0).sum()
    sig_ratio = (signal.region == 1).sum() / (signal.region == 0).sum()
    assert pe.n_background_sb == round(1000 * bkg_ratio)
    members = pe.members
    for m, injection in enumerate(pe.injection):
        index = np.concatenate(
            [
                members.train_index[m][members.train_weight[m] > 0],
                members.val_index[m][members.val_weight[m] > 0],
            ]
        )
        label = np.concatenate(
            [
                members.train_label[m][members.train_weight[m] > 0],
                members.val_label[m][members.val_weight[m] > 0],
            ]
        )
        assert len(np.unique(index)) == len(index)  # no event twice within an experiment
        truth, region = pool.label[index], pool.region[index]
        np.testing.assert_array_equal(label, region == 0)  # CWoLa label = SR
        assert ((truth == 1) & (region == 0)).sum() == injection
        assert ((truth == 1) & (region == 1)).sum() == round(injection * sig_ratio)
        assert ((truth == 0) & (region == 0)).sum() == 1000
        n_val = (members.val_weight[m] > 0).sum()
        assert abs(n_val / len(index) - 0.2) < 0.01
        assert not np.intersect1d(index, pe.test_index).size  # test events never trained on
    assert (pool.label[pe.test_index] == pe.test_label).all()
    assert (pool.region[pe.test_index] == 0).all()


def test_more_signal_than_exists_is_refused_with_numbers():
    background = fake_events(6000, 0.5, 0, seed=0)
    signal = fake_events(500, 0.8, 1, seed=1)
    design = StudyDesign(
        n_background_sr=1000,
        injections=(0, 300),
        n_pseudo_experiments=1,
        n_test_signal=200,
        n_test_background=500,
    )
    with pytest.raises(ValueError, match=r"SR signal \(test \+ largest injection\): need 500"):
        build_pseudo_experiments(0, background, signal, design)


def test_reserved_background_is_never_drawn_and_zero_reserve_changes_nothing():
    background = fake_events(6000, 0.5, 0, seed=0)
    signal = fake_events(3000, 0.8, 1, seed=1)
    sizes = {"n_background_sr": 800, "injections": (0, 200), "n_pseudo_experiments": 4,
             "n_test_signal": 500, "n_test_background": 700}  # fmt: skip
    plain = build_pseudo_experiments(3, background, signal, StudyDesign(**sizes))
    same = build_pseudo_experiments(
        3, background, signal, StudyDesign(**sizes, reserve_background_sr=0)
    )
    np.testing.assert_array_equal(plain.members.train_index, same.members.train_index)
    reserved = build_pseudo_experiments(
        3, background, signal, StudyDesign(**sizes, reserve_background_sr=1500)
    )
    np.testing.assert_array_equal(plain.test_index, reserved.test_index)  # same test set
    members = reserved.members
    drawn = np.unique(np.concatenate([members.train_index.ravel(), members.val_index.ravel()]))
    used = np.union1d(drawn, reserved.test_index)
    sr_background = np.flatnonzero(background.region == 0)
    unused = np.setdiff1d(sr_background, used)
    # Exactly the reserve stays unused: the ~3k SR events less test set and reserve leave a
    # pool of about 800, which every member draws whole.
    assert len(unused) == 1500
    with pytest.raises(ConfigError, match=r"test \+ reserve \+ training"):
        build_pseudo_experiments(
            3, background, signal, StudyDesign(**sizes, reserve_background_sr=2500)
        )


def test_transfer_counts_only_weighted_entries_as_used_background():
    # Members of different sizes are padded with index 0 at weight 0; event 0 is not used.
    from types import SimpleNamespace

    from jaxws.methods.transfer import _used_background

    background = fake_events(4000, 0.5, 0, seed=4)
    signal = fake_events(2000, 0.8, 1, seed=5)
    design = StudyDesign(
        n_background_sr=500, injections=(0, 300), n_pseudo_experiments=1,
        n_test_signal=200, n_test_background=300,
    )  # fmt: skip
    experiments = build_pseudo_experiments(0, background, signal, design)
    members = experiments.members
    padded = (members.train_weight == 0).any() or (members.val_weight == 0).any()
    assert padded  # the injection-0 member is shorter than the other
    used = _used_background(SimpleNamespace(experiments=experiments))
    truly = np.concatenate(
        [
            members.train_index[members.train_weight > 0],
            members.val_index[members.val_weight > 0],
            experiments.test_index,
        ]
    )
    np.testing.assert_array_equal(used, np.unique(truly))
