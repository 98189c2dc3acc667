"""The quantile -> standard-normal transform: scikit-learn as an independent reference,
exact invertibility, monotonicity, and its use by `weak_supervision(..., inputs="quantile")`."""

import numpy as np
import pytest
from scipy.special import ndtri

from jaxws.config import ConfigError
from jaxws.data.quantile import BOUND, Z_MAX, QuantileNormal


def heavy_tailed(rng, n):
    """Three continuous features: a narrow peak on a heavy tail, a lognormal, a Gaussian."""
    peak = np.where(rng.random(n) < 0.05, rng.normal(0.5, 0.01, n), rng.standard_cauchy(n))
    return np.stack([peak, rng.lognormal(0, 2, n), rng.normal(3, 1e-3, n)], axis=1)


@pytest.mark.parametrize("n_quantiles", [1000, 37])
def test_matches_scikit_learn_quantile_transformer(n_quantiles):
    """Same quantiles and the same z as QuantileTransformer(output_distribution="normal")
    (no subsampling) on training events, new events inside and outside the fitted range, and
    the inverse; scikit-learn computes the same conventions independently."""
    from sklearn.preprocessing import QuantileTransformer

    rng = np.random.default_rng(0)
    train, new = heavy_tailed(rng, 5000), heavy_tailed(rng, 3000)
    new[:5] = [[-1e9, 0.0, 2.0], [1e9, 1e9, 4.0], [0.5, 1.0, 3.0], [-3.0, 1e-5, 2.999], [7, 7, 7]]
    ours = QuantileNormal.fit(train, n_quantiles=n_quantiles)
    reference = QuantileTransformer(
        n_quantiles=n_quantiles, output_distribution="normal", subsample=None
    ).fit(train)
    np.testing.assert_allclose(ours.quantiles, reference.quantiles_, rtol=0, atol=0)
    for x in (train, new):
        np.testing.assert_allclose(ours.transform(x), reference.transform(x), rtol=0, atol=1e-9)
    z = np.random.default_rng(1).normal(size=(2000, 3)) * 2
    np.testing.assert_allclose(
        ours.inverse(z), reference.inverse_transform(z), rtol=1e-12, atol=1e-12
    )


def test_exactly_invertible_inside_the_fitted_range():
    """inverse(transform(x)) == x for events inside the fitted range (continuous features:
    strictly increasing quantiles), and transform(inverse(z)) == z for |z| up to 5."""
    rng = np.random.default_rng(2)
    train = heavy_tailed(rng, 4000)
    qn = QuantileNormal.fit(train)
    lo, hi = train.min(axis=0), train.max(axis=0)
    inside = heavy_tailed(rng, 4000)
    inside = inside[((inside > lo) & (inside < hi)).all(axis=1)]
    assert len(inside) > 3900
    for x in (train[(train > lo).all(axis=1) & (train < hi).all(axis=1)], inside):
        back = qn.inverse(qn.transform(x))
        np.testing.assert_allclose(back, x, rtol=1e-9, atol=1e-12 * np.abs(x).max())
    z = np.linspace(-5, 5, 1001)[:, None].repeat(3, axis=1)
    np.testing.assert_allclose(qn.transform(qn.inverse(z)), z, rtol=0, atol=1e-8)


def test_monotone_saturating_and_standard_normal_on_the_training_events():
    """Each feature's map is non-decreasing everywhere, strictly increasing inside the fitted
    range, bounded by Phi^-1(1e-7) = -5.199 and its negative (reached outside the range), and
    maps the training events onto a standard normal (mean 0, sd 1, up to the 1/n_quantiles
    resolution of the tails)."""
    rng = np.random.default_rng(3)
    train = heavy_tailed(rng, 20_000)
    qn = QuantileNormal.fit(train)
    for j in range(3):
        grid = np.sort(np.concatenate([train[:, j], rng.uniform(-1e3, 1e3, 5000)]))
        x = np.zeros((len(grid), 3))
        x[:, j] = grid
        z = qn.transform(x)[:, j]
        assert (np.diff(z) >= 0).all()
        lo, hi = train[:, j].min(), train[:, j].max()
        inside = (grid > lo) & (grid < hi)
        assert (np.diff(z[inside]) > 0).all()
        bound = -ndtri(BOUND)
        assert abs(bound - 5.199) < 1e-3
        assert bound == Z_MAX
        assert (np.abs(z) <= bound).all()
        np.testing.assert_array_equal(z[grid < lo], -bound)
        np.testing.assert_array_equal(z[grid > hi], bound)
    z = qn.transform(train)
    # Standard errors of mean and sd for 20k normal draws: 0.007 and 0.005; the values are
    # quantiles of the sample itself, so far closer; the extreme 1/1000 is squeezed.
    assert np.abs(z.mean(axis=0)).max() < 0.01
    assert np.abs(z.std(axis=0) - 1).max() < 0.02


def test_repeated_values_map_to_the_middle_of_their_probability_range():
    """A value repeated by 60% of the events maps to the middle of its probability range, as
    scikit-learn's two-way interpolation does (u = 0.2 + 0.6 / 2 = 0.5 -> z = 0)."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-2, -1, 2000), np.full(6000, 0.0), rng.uniform(1, 2, 2000)])
    qn = QuantileNormal.fit(x[:, None], n_quantiles=101)
    assert abs(qn.transform(np.array([[0.0]]))[0, 0]) < 0.02


def test_bad_inputs_are_refused_by_name():
    good = np.random.default_rng(5).normal(size=(50, 2))
    with pytest.raises(ConfigError, match="finite"):
        QuantileNormal.fit(np.where(good > 2, np.nan, good))
    with pytest.raises(ConfigError, match="n_quantiles"):
        QuantileNormal.fit(good, n_quantiles=1)
    with pytest.raises(ConfigError, match=r"\(N >= 2, D\)"):
        QuantileNormal.fit(good[:, 0])
    with pytest.raises(ConfigError, match="fitted on 2 features"):
        QuantileNormal.fit(good).transform(good[:, :1])


def test_weak_supervision_with_quantile_inputs_ignores_monotone_transforms_of_the_inputs():
    """With inputs="quantile" (fitted on the training pool) the members see only the events'
    ranks within the pool: feeding x or g(x) per feature, with g strictly increasing (here
    exp, a cube and an affine map), trains the same members and gives the same scores on
    the training events (up to float32 rounding of the transformed pool; 1e-4 on
    probabilities). With inputs="raw" the same g changes the scores. The pool has <= 1000
    events, so the quantiles are the events themselves."""
    from jaxws.methods.cwola import weak_supervision
    from jaxws.models.mlp import MLP
    from jaxws.train import TrainConfig, predict_ensemble

    rng = np.random.default_rng(6)
    a = rng.normal(0.4, 1.0, (300, 3)).astype(np.float32)
    b = rng.normal(0.0, 1.0, (300, 3)).astype(np.float32)

    def g(x):
        return np.stack([np.exp(x[:, 0]), x[:, 1] ** 3, 5 * x[:, 2] - 2], axis=1)

    config = TrainConfig(batch_size=100, max_epochs=3, patience=3)
    kwargs = dict(n_members=2, seed=1, config=config, model=MLP((16,), (16,)))
    plain = weak_supervision(a, b, inputs="quantile", **kwargs)
    warped = weak_supervision(g(a), g(b), inputs="quantile", **kwargs)
    np.testing.assert_allclose(plain(a), warped(g(a)), rtol=0, atol=1e-4)
    raw = weak_supervision(a, b, inputs="raw", **kwargs)
    raw_warped = weak_supervision(g(a), g(b), inputs="raw", **kwargs)
    assert np.abs(raw(a) - raw_warped(g(a))).max() > 1e-2
    # The scorer applies the fitted transform itself: members see transform(x).
    z = plain.input_transform.transform(a).astype(np.float32)
    logits = np.asarray(predict_ensemble(plain.model, plain.variables, z, 4096))
    np.testing.assert_array_equal(plain.member_scores(a), logits)


def test_weak_supervision_refuses_bad_inputs_settings():
    from jaxws.methods.cwola import weak_supervision

    rng = np.random.default_rng(7)
    good = rng.normal(size=(100, 3)).astype(np.float32)
    for bad in ("standard", "", 1, True):
        with pytest.raises(ConfigError, match="inputs must be 'raw' or 'quantile'"):
            weak_supervision(good, good, inputs=bad)
    with pytest.raises(ConfigError, match="inputs: not used"):
        weak_supervision(good, good, classifier="trees", inputs="quantile")
    images = rng.random((40, 2, 4, 4)).astype(np.float32)
    with pytest.raises(ConfigError, match="inputs='quantile' needs feature vectors"):
        weak_supervision(images, images, inputs="quantile")
