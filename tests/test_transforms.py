"""Target transforms: a contract every registered transform meets, then the built-ins' specifics."""

from __future__ import annotations

import json

import numpy as np
import pytest

import aam_core
from aam_core.errors import AAMError, ConfigError, DataError
from aam_plugins.transforms.zscore_category import UnseenCategoryWarning

BUILTINS = ["none", "minmax", "zscore", "zscore-category", "log-minmax", "log-zscore"]
REGISTERED = [info.name for info in aam_core.list_plugins("transform")]


def make(name: str):
    """A fresh instance built the way the pipeline builds it: through the registry."""
    return aam_core.get_plugin("transform", name).factory(options=None)


def cats_for(transform, categories: np.ndarray) -> np.ndarray | None:
    return categories if transform.uses_categories else None


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """60 positive, skewed targets in three categories plus one category with a single row."""
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 10.0, size=61)
    categories = np.array(["a", "b", "c"] * 20 + ["solo"])
    y[categories == "b"] += 40.0
    return y, categories


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(REGISTERED)


# -- contract: every registered transform ------------------------------------------------------


@pytest.mark.parametrize("name", REGISTERED)
def test_round_trip(name, data):
    y, categories = data
    t = make(name)
    cats = cats_for(t, categories)
    assert t.fit(y, cats) is t
    z = t.transform(y, cats)
    assert z.dtype == np.float64 and z.shape == y.shape
    assert np.isfinite(z).all()
    back = t.inverse_transform(z, cats)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", REGISTERED)
def test_state_survives_json(name, data):
    y, categories = data
    t = make(name)
    cats = cats_for(t, categories)
    train = np.r_[0:40, 60]  # a subset, with the single-row category
    t.fit(y[train], None if cats is None else cats[train])
    fresh = make(name)
    fresh.load_state_dict(json.loads(json.dumps(t.state_dict())))
    z = t.transform(y, cats)
    np.testing.assert_array_equal(fresh.transform(y, cats), z)
    np.testing.assert_array_equal(fresh.inverse_transform(z, cats), t.inverse_transform(z, cats))


@pytest.mark.parametrize("name", REGISTERED)
def test_fit_is_deterministic_and_leaves_input_alone(name, data):
    y, categories = data
    original = y.copy()
    t1, t2 = make(name), make(name)
    cats = cats_for(t1, categories)
    t1.fit(y, cats)
    t1.transform(y, cats)
    np.testing.assert_array_equal(y, original)
    assert t1.state_dict() == t2.fit(y, cats).state_dict()


@pytest.mark.parametrize("name", REGISTERED)
def test_single_sample_category(name, data):
    y, categories = data
    t = make(name)
    cats = cats_for(t, categories)
    z = t.fit(y, cats).transform(y, cats)
    solo = categories == "solo"
    assert np.isfinite(z[solo]).all()
    np.testing.assert_allclose(t.inverse_transform(z, cats)[solo], y[solo], rtol=1e-12)


@pytest.mark.parametrize("name", REGISTERED)
def test_use_before_fit_is_an_error(name, data):
    y, categories = data
    t = make(name)
    with pytest.raises((RuntimeError, AAMError), match="fit"):
        t.transform(y, cats_for(t, categories))


@pytest.mark.parametrize("name", REGISTERED)
def test_nan_target_is_a_data_error(name, data):
    y, categories = data
    t = make(name)
    cats = cats_for(t, categories)
    bad = y.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(DataError, match="2 missing"):
        t.fit(bad, cats)
    t.fit(y, cats)
    with pytest.raises(DataError, match="NaN"):
        t.transform(bad, cats)


# -- built-in specifics ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in BUILTINS if n != "none"])
def test_constant_target_is_a_data_error(name):
    t = make(name)
    y = np.full(10, 3.5)
    cats = cats_for(t, np.array(["a", "b"] * 5))
    with pytest.raises(DataError, match=r"target is constant \(value 3.5\); nothing to learn"):
        t.fit(y, cats)


def test_minmax_maps_training_range_to_unit_interval(data):
    y, _ = data
    train, rest = y[:30], y[30:]
    t = make("minmax").fit(train)
    z = t.transform(train)
    assert z.min() == 0.0 and z.max() == 1.0
    assert z[np.argmin(train)] == 0.0 and z[np.argmax(train)] == 1.0
    # held-out values beyond the training range are not clipped
    outside = (rest < train.min()) | (rest > train.max())
    assert outside.any()
    zr = t.transform(rest)
    assert ((zr < 0) | (zr > 1))[outside].all()


@pytest.mark.parametrize("name", ["zscore", "log-zscore"])
def test_zscore_fits_on_the_rows_given(name, data):
    y, _ = data
    train = y[:30]
    shifted = np.concatenate([train, y[30:] + 100.0])  # held-out rows far from the training ones
    t = make(name).fit(train)
    z_train = t.transform(train)
    assert abs(z_train.mean()) < 1e-12 and abs(z_train.std() - 1.0) < 1e-12
    assert t.transform(shifted).mean() > 0.5


def test_zscore_category_fits_on_the_rows_given(data):
    y, categories = data
    train = slice(0, 30)
    t = make("zscore-category").fit(y[train], categories[train])
    z = t.transform(y[train], categories[train])
    for label in ["a", "b", "c"]:
        rows = categories[train] == label
        assert abs(z[rows].mean()) < 1e-12 and abs(z[rows].std() - 1.0) < 1e-12
    state = t.state_dict()
    assert state["global_mean"] == pytest.approx(y[train].mean(), rel=1e-14)
    assert state["categories"]["a"]["count"] == 10
    assert "solo" not in state["categories"]  # row 60 was not in the training split
    with pytest.warns(UnseenCategoryWarning, match="'solo'"):
        z_all = t.transform(y + 100.0, categories)
    assert z_all.mean() > 1.0


def test_zscore_category_single_row_uses_global_std_and_round_trips_exactly(data):
    y, categories = data
    t = make("zscore-category").fit(y, categories)
    solo = categories == "solo"
    z = t.transform(y, categories)
    assert z[solo][0] == 0.0
    assert t.state_dict()["categories"]["solo"]["std"] == t.state_dict()["global_std"]
    assert t.inverse_transform(z, categories)[solo][0] == y[solo][0]


def test_zscore_category_zero_std_uses_global_std():
    y = np.array([5.0, 5.0, 5.0, 1.0, 3.0, 8.0])
    categories = np.array(["flat", "flat", "flat", "x", "x", "x"])
    t = make("zscore-category").fit(y, categories)
    z = t.transform(np.array([5.0, 6.0]), np.array(["flat", "flat"]))
    assert z[0] == 0.0
    assert z[1] == pytest.approx(1.0 / y.std())


def test_zscore_category_unseen_category_warns_and_uses_global_stats(data):
    y, categories = data
    t = make("zscore-category").fit(y, categories)
    values = np.array([10.0, 20.0])
    with pytest.warns(UnseenCategoryWarning, match=r"1 category not seen in training.*'new'"):
        z = t.transform(values, np.array(["a", "new"]))
    np.testing.assert_allclose(z[1], (20.0 - y.mean()) / y.std(), rtol=1e-12)
    with pytest.warns(UnseenCategoryWarning):
        back = t.inverse_transform(z, np.array(["a", "new"]))
    np.testing.assert_allclose(back, values, rtol=1e-12)


def test_zscore_category_warning_names_a_few_unseen_categories(data):
    y, categories = data
    t = make("zscore-category").fit(y, categories)
    unseen = np.array([f"u{i}" for i in range(8)])
    with pytest.warns(UnseenCategoryWarning) as record:
        t.transform(np.arange(8.0), unseen)
    (message,) = [str(w.message) for w in record]
    assert "8 categories" in message and "and 3 more" in message and "'u5'" not in message
    assert "\n" not in message


def test_zscore_category_hidden_rows_use_global_stats_silently(data):
    """A ``None`` label (the row is predicted with its categories hidden) takes the global mean
    and std, beside rows of known categories, and warns nothing: hiding was the caller's choice."""
    import warnings

    y, categories = data
    t = make("zscore-category").fit(y, categories)
    values = np.array([10.0, 20.0, 30.0])
    labels = np.array(["b", None, "a"], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = t.transform(values, labels)
        back = t.inverse_transform(z, labels)
    b, a = y[categories == "b"], y[categories == "a"]
    np.testing.assert_allclose(z, [(10.0 - b.mean()) / b.std(), (20.0 - y.mean()) / y.std(), (30.0 - a.mean()) / a.std()], rtol=1e-12)
    np.testing.assert_allclose(back, values, rtol=1e-12)
    assert labels[1] is None  # the caller's labels are left as they were


def test_zscore_category_cannot_fit_on_hidden_categories(data):
    y, categories = data
    labels = categories.astype(object)
    labels[3] = None
    with pytest.raises(ValueError, match="every training row needs its category"):
        make("zscore-category").fit(y, labels)


def test_zscore_category_without_categories_names_the_flag(data):
    y, categories = data
    with pytest.raises(ConfigError, match="--normalize-by"):
        make("zscore-category").fit(y)
    t = make("zscore-category").fit(y, categories)
    with pytest.raises(ConfigError, match="--normalize-by"):
        t.transform(y)


@pytest.mark.parametrize("name", ["log-minmax", "log-zscore"])
def test_log_rejects_minus_one_and_below(name):
    t = make(name)
    with pytest.raises(DataError, match=r"2 value\(s\) are <= -1 \(smallest -3\)"):
        t.fit(np.array([1.0, -1.0, 2.0, -3.0]))
    t.fit(np.array([0.0, 1.0, 5.0]))
    with pytest.raises(DataError, match="<= -1"):
        t.transform(np.array([2.0, -1.0]))


@pytest.mark.parametrize("name", ["log-minmax", "log-zscore"])
def test_log_accepts_zero(name):
    y = np.array([0.0, 0.0, 3.0, 10.0, 250.0])
    t = make(name).fit(y)
    z = t.transform(y)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(t.inverse_transform(z), y, atol=1e-12, rtol=1e-12)
    if name == "log-minmax":
        assert z[0] == 0.0 and z[-1] == 1.0


def test_load_state_from_another_transform_is_a_checkpoint_error(data):
    y, _ = data
    state = make("minmax").fit(y).state_dict()
    with pytest.raises(aam_core.CheckpointError, match="'zscore'"):
        make("zscore").load_state_dict(state)
