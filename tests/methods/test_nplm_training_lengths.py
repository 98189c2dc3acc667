"""The null at several training lengths: one training, t read at each length."""

import jax
import numpy as np
import pytest

from jaxws.methods import nplm as nplm_method
from jaxws.stats import nplm

DATA = nplm_method.ExponentialToyConfig(n_reference=200, n_expected=20.0)
SETTINGS = nplm_method.NPLMConfig(learning_rate=0.1, chunk_size=6, progress=False)


def test_each_length_is_the_null_of_a_training_that_long():
    rows = nplm_method.training_length_scan(jax.random.key(3), DATA, SETTINGS, (6, 3, 6), 6)
    assert [row["epochs"] for row in rows] == [3, 6]  # sorted, repeated lengths once
    assert all(row["dof"] == 13 for row in rows)
    # The longest length is an ordinary run of that many epochs on the same toys.
    settings = nplm_method.NPLMConfig(
        learning_rate=0.1, chunk_size=6, progress=False, epochs=6, checkpoints=(3,)
    )
    t, history, converged = nplm_method.nplm_toy_statistics(jax.random.key(3), DATA, settings, 6)
    assert converged.all()  # Adam claims no minimum: every toy counts
    np.testing.assert_array_equal(history[:, 1], t)
    for row, column in zip(rows, (0, 1), strict=True):
        expected = nplm.compare_with_chi2(history[:, column], 13)
        assert row["mean"] == pytest.approx(expected["mean"])
        assert row["ks_pvalue"] == pytest.approx(expected["ks_pvalue"])
        assert row["follows_chi2"] == nplm.follows_chi2(expected)


def test_lengths_must_be_positive():
    with pytest.raises(ValueError, match="training lengths"):
        nplm_method.training_length_scan(jax.random.key(0), DATA, SETTINGS, (0, 5), 4)
