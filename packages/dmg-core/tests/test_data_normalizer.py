"""Normalizer: NaN-aware statistics, transforms, inverse, constant variables, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dmg.core.data import ArrayDataset, Normalizer
from dmg.core.errors import ConfigError, InputError


@pytest.fixture
def dataset() -> ArrayDataset:
    rng = np.random.default_rng(3)
    prcp = rng.gamma(0.6, 5.0, (5, 200))
    prcp[1, 10:30] = np.nan
    tmean = rng.normal(12.0, 6.0, (5, 200))
    flow = rng.lognormal(0.0, 1.0, (5, 200))
    return ArrayDataset.from_dicts(
        {"prcp": prcp, "tmean": tmean, "Q": flow, "const": np.full((5, 200), 3.0)},
        [f"u{i}" for i in range(5)],
        np.datetime64("2000-01-01") + np.arange(200),
        {"area": rng.uniform(10, 1000, 5), "flat": np.zeros(5)},
        dtype=np.float64,
    )


def test_statistics_ignore_nan_and_follow_the_transform(dataset):
    norm = Normalizer({"prcp": "sqrt", "Q": "log", "area": "log1p"}, log_eps=0.1)
    norm.fit(dataset, ["prcp", "tmean", "Q"], ["area"])
    prcp = dataset.variable("prcp")
    np.testing.assert_allclose(norm.variable_stats["prcp"].mean, np.nanmean(np.sqrt(prcp)))
    np.testing.assert_allclose(norm.variable_stats["prcp"].std, np.nanstd(np.sqrt(prcp)))
    np.testing.assert_allclose(norm.variable_stats["tmean"].mean, dataset.variable("tmean").mean())
    np.testing.assert_allclose(norm.variable_stats["Q"].mean, np.log(dataset.variable("Q") + 0.1).mean())
    np.testing.assert_allclose(norm.attribute_stats["area"].std, np.log1p(dataset.attribute("area")).std())


def test_transformed_variables_have_zero_mean_unit_std(dataset):
    names = ["prcp", "tmean", "Q"]
    norm = Normalizer({"prcp": "sqrt", "Q": "log"}).fit(dataset, names)
    z = norm.transform_variables(dataset.data[:, :, :3], names)
    np.testing.assert_allclose(np.nanmean(z, axis=(0, 1)), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(z, axis=(0, 1)), 1.0, atol=1e-12)
    assert np.isnan(z[1, 10:30, 0]).all() and np.isfinite(z[1, 30:, 0]).all()


@pytest.mark.parametrize("transform", ["none", "log", "log1p", "sqrt"])
def test_inverse_round_trip_numpy_and_torch(dataset, transform):
    norm = Normalizer({"Q": transform}).fit(dataset, ["Q", "tmean"])
    x = dataset.data[:, :, [2, 1]]
    z = norm.transform_variables(x, ["Q", "tmean"])
    np.testing.assert_allclose(norm.inverse(z, ["Q", "tmean"]), x, rtol=1e-10, atol=1e-10)
    xt = torch.as_tensor(x, dtype=torch.float64)
    zt = norm.transform_variables(xt, ["Q", "tmean"])
    assert isinstance(zt, torch.Tensor)
    np.testing.assert_allclose(zt.numpy(), z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.inverse(zt, ["Q", "tmean"]), xt)


def test_inverse_keeps_gradients(dataset):
    norm = Normalizer({"Q": "log"}).fit(dataset, ["Q"])
    z = torch.zeros(3, 2, 1, dtype=torch.float64, requires_grad=True)
    norm.inverse(z, ["Q"]).sum().backward()
    stats = norm.variable_stats["Q"]
    np.testing.assert_allclose(z.grad.numpy(), stats.std * np.exp(stats.mean), rtol=1e-12)


def test_constant_variable_is_centred_not_divided_by_zero(dataset):
    norm = Normalizer().fit(dataset, ["const"], ["flat"])
    assert norm.variable_stats["const"].std == 1.0
    z = norm.transform_variables(dataset.data[:, :, [3]], ["const"])
    np.testing.assert_array_equal(z, 0.0)
    np.testing.assert_array_equal(norm.transform_attributes(np.array([[0.0], [2.0]]), ["flat"]), [[0.0], [2.0]])


def test_skew_transforms_treat_negative_values_as_zero(dataset):
    norm = Normalizer({"prcp": "sqrt"}).fit(dataset, ["prcp"])
    z = norm.transform_variables(np.array([[-1.0], [0.0]]), ["prcp"])
    assert np.isfinite(z).all() and z[0, 0] == z[1, 0]


def test_errors_name_the_variable(dataset):
    with pytest.raises(ConfigError, match="unknown normalizer transform"):
        Normalizer({"prcp": "log10"})
    norm = Normalizer().fit(dataset, ["prcp"])
    with pytest.raises(InputError, match=r"no statistics .*no variable 'prcpp'.*Closest: 'prcp'"):
        norm.transform_variables(np.zeros((1, 1, 1)), ["prcpp"])
    empty = dataset.select_units(["u1"]).select_time("2000-01-11", "2000-01-30")
    with pytest.raises(InputError, match="variable 'prcp' has no finite value"):
        Normalizer().fit(empty, ["prcp"])


def test_save_load_round_trip(dataset, tmp_path):
    norm = Normalizer({"prcp": "sqrt", "area": "log"}, log_eps=0.5).fit(dataset, ["prcp", "tmean"], ["area"])
    path = tmp_path / "normalizer.json"
    norm.save(path)
    assert json.loads(path.read_text())["variables"]["prcp"]["transform"] == "sqrt"
    back = Normalizer.load(path)
    assert back.state_dict() == norm.state_dict()
    x = dataset.data[:, :, :2]
    np.testing.assert_array_equal(
        back.transform_variables(x, ["prcp", "tmean"]), norm.transform_variables(x, ["prcp", "tmean"])
    )


def test_log_sqrt_is_the_published_precipitation_transform():
    p = np.array([0.0, 0.5, 4.0, 25.0])
    data = ArrayDataset(p[None, :, None], ("P",), ("u",), np.arange(4).astype("datetime64[D]"))
    norm = Normalizer({"P": "log_sqrt"}).fit(data, ["P"])
    stats = norm.variable_stats["P"]
    expected = np.log10(np.sqrt(p) + 0.1)
    assert np.allclose(norm.transform_variables(p[None, :, None], ["P"])[0, :, 0], (expected - stats.mean) / stats.std)
    assert np.allclose(norm.inverse(norm.transform_variables(p[None, :, None], ["P"]), ["P"])[0, :, 0], p)


def _with_reference(reference):
    dates = np.arange(3).astype("datetime64[D]")
    return ArrayDataset(
        np.ones((2, 3, 1)),
        ("x",),
        ("a", "b"),
        dates,
        attributes=np.array([[1.0], [1.0]]),
        attribute_names=("area",),
        reference_attributes=reference,
    )


def test_attribute_statistics_from_a_reference_population(tmp_path):
    population = np.array([[1.0], [3.0], [5.0], [np.nan]])
    data = _with_reference(population)
    training = Normalizer().fit(data, [], ["area"])
    assert training.attribute_stats["area"].mean == 1.0 and training.attribute_stats["area"].std == 1.0  # degenerate
    reference = Normalizer().fit(data, [], ["area"], attribute_population="reference")
    assert reference.attribute_stats["area"].mean == 3.0
    assert np.isclose(reference.attribute_stats["area"].std, np.std([1.0, 3.0, 5.0]))
    data.save(tmp_path / "d.npz")
    loaded = ArrayDataset.load(tmp_path / "d.npz")
    assert np.array_equal(loaded.reference_attributes, population, equal_nan=True)
    assert np.array_equal(loaded.select_units(["b"]).reference_attributes, population, equal_nan=True)


def test_a_reference_population_is_required_when_asked_for():
    with pytest.raises(ConfigError, match="attribute_statistics: 'reference' needs a dataset with a reference"):
        Normalizer().fit(_with_reference(None), [], ["area"], attribute_population="reference")
    with pytest.raises(Exception, match="reference_attributes must be"):
        _with_reference(np.ones((4, 2)))
