"""DataRoles checks and make_batch: shapes, raw values, normalisation, windows."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch

from dmg.core.data import ArrayDataset, DataRoles, make_batch
from dmg.core.errors import ConfigError, InputError


@pytest.fixture
def dataset() -> ArrayDataset:
    rng = np.random.default_rng(7)
    n_units, n_time = 6, 120
    prcp = rng.gamma(0.7, 4.0, (n_units, n_time))
    q = rng.lognormal(0.0, 0.8, (n_units, n_time))
    q[2, 50:60] = np.nan
    return ArrayDataset.from_dicts(
        {
            "prcp": prcp,
            "tmean": rng.normal(10, 5, (n_units, n_time)),
            "pet": rng.uniform(0, 5, (n_units, n_time)),
            "Q": q,
        },
        [f"b{i:02d}" for i in range(n_units)],
        np.datetime64("1990-01-01") + np.arange(n_time),
        {
            "area": rng.uniform(10, 500, n_units),
            "slope": rng.uniform(0, 1, n_units),
            "elev": rng.uniform(0, 3000, n_units),
        },
    )


@pytest.fixture
def roles() -> DataRoles:
    return DataRoles(
        forcings={"P": "prcp", "PET": "pet"},
        nn_inputs=["prcp", "tmean"],
        nn_static=["area", "slope"],
        attributes={"A": "area"},
        targets={"Q": "Q"},
        transforms={"prcp": "sqrt", "area": "log"},
    )


def test_roles_check_lists_every_problem_with_closest_match(dataset):
    roles = DataRoles(forcings={"P": "prcpp"}, nn_inputs=["tmean", "tmeen"], nn_static=["aera"], targets={"Q": "flow"})
    with pytest.raises(ConfigError) as info:
        roles.check(dataset)
    msg = str(info.value)
    assert "forcings['P'] names variable 'prcpp', which the dataset does not have (closest: 'prcp')" in msg
    assert "nn_inputs[1] names variable 'tmeen'" in msg and "(closest: 'tmean')" in msg
    assert "nn_static[0] names attribute 'aera'" in msg and "(closest: 'area')" in msg
    assert "targets['Q'] names variable 'flow'" in msg
    assert "Dataset variables: ['prcp', 'tmean', 'pet', 'Q']" in msg


def test_roles_validate_their_own_fields(roles, dataset):
    roles.check(dataset)
    assert roles.n_sequence_features == 4 and roles.n_static_features == 2
    with pytest.raises(pydantic.ValidationError, match="extra"):
        DataRoles(forcing={"P": "prcp"})
    with pytest.raises(pydantic.ValidationError, match="unknown transform"):
        DataRoles(transforms={"prcp": "cube"})
    with pytest.raises(pydantic.ValidationError, match="repeated"):
        DataRoles(nn_inputs=["prcp", "prcp"])


def test_batch_shapes_and_raw_values(dataset, roles):
    norm = roles.fit_normalizer(dataset)
    units = np.array([4, 0, 2])
    starts = np.array([10, 0, 45])
    warmup, length = 5, 20
    batch = make_batch(dataset, roles, norm, units, starts, length, warmup)
    T = warmup + length
    assert batch.n_time == T and batch.n_units == 3 and batch.warmup == warmup
    assert batch.nn_inputs.shape == (T, 3, 4) and batch.nn_inputs.dtype == torch.float32
    assert batch.static_inputs.shape == (3, 2)
    assert batch.targets["Q"].shape == (length, 3)
    assert batch.unit_ids == ("b04", "b00", "b02")
    assert batch.times is None
    for j, (u, s) in enumerate(zip(units, starts)):
        np.testing.assert_array_equal(
            batch.forcings["P"][:, j].numpy(), dataset.variable("prcp")[u, s : s + T].astype(np.float32)
        )
        np.testing.assert_array_equal(
            batch.forcings["PET"][:, j].numpy(), dataset.variable("pet")[u, s : s + T].astype(np.float32)
        )
        np.testing.assert_array_equal(
            batch.targets["Q"][:, j].numpy(), dataset.variable("Q")[u, s + warmup : s + T].astype(np.float32)
        )
        assert batch.attributes["A"][j] == np.float32(dataset.attribute("area")[u])
    # unit b02's target has the missing values of 1990-02-20..03-01 (steps 50..59): NaN kept
    assert torch.isnan(batch.targets["Q"][:, 2]).sum() == 10
    assert torch.isfinite(batch.targets["Q"]).sum() == 3 * length - 10


def test_normalised_inputs_round_trip_and_static_repeated(dataset, roles):
    norm = roles.fit_normalizer(dataset)
    units = np.array([1, 3])
    batch = make_batch(dataset, roles, norm, units, np.array([7, 30]), 15, 3, dtype=torch.float64)
    physical = norm.inverse(batch.nn_inputs[:, :, :2], ["prcp", "tmean"])
    np.testing.assert_allclose(physical[:, 0, 0].numpy(), dataset.variable("prcp")[1, 7:25], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(physical[:, 1, 1].numpy(), dataset.variable("tmean")[3, 30:48], rtol=1e-5)
    static = batch.static_inputs
    np.testing.assert_allclose(
        norm.inverse_attributes(static, ["area", "slope"])[:, 0].numpy(), dataset.attribute("area")[units], rtol=1e-5
    )
    torch.testing.assert_close(batch.nn_inputs[:, :, 2:], static.expand(18, -1, -1))


def test_shared_start_gives_times_and_same_values(dataset, roles):
    norm = roles.fit_normalizer(dataset)
    units = np.array([0, 1, 5])
    shared = make_batch(dataset, roles, norm, units, 40, 10, 4)
    each = make_batch(dataset, roles, norm, units, np.full(3, 40), 10, 4)
    assert [str(t) for t in shared.times[[0, -1]]] == ["1990-02-10", "1990-02-23"]
    torch.testing.assert_close(shared.nn_inputs, each.nn_inputs)
    torch.testing.assert_close(shared.forcings["P"], each.forcings["P"])


def test_static_only_outside_the_sequence(dataset):
    roles = DataRoles(forcings={"P": "prcp"}, nn_static=["elev"], nn_static_in_sequence=False, targets={"Q": "Q"})
    batch = make_batch(dataset, roles, roles.fit_normalizer(dataset), np.array([0, 1]), 0, 10, 0)
    assert batch.nn_inputs is None and batch.static_inputs.shape == (2, 1)
    no_nn = DataRoles(forcings={"P": "prcp"}, targets={"Q": "Q"})
    batch = make_batch(dataset, no_nn, None, np.array([0]), 0, 10, 0)
    assert batch.nn_inputs is None and batch.static_inputs is None


def test_nan_fill_replaces_only_network_inputs(dataset):
    roles = DataRoles(forcings={"Q": "Q"}, nn_inputs=["Q"], targets={"Q": "Q"})
    norm = roles.fit_normalizer(dataset)
    batch = make_batch(dataset, roles, norm, np.array([2]), 45, 20, 0, nan_fill=0.0)
    assert torch.isfinite(batch.nn_inputs).all()
    assert (batch.nn_inputs[5:15] == 0).all()
    assert torch.isnan(batch.forcings["Q"][5:15]).all() and torch.isnan(batch.targets["Q"][5:15]).all()


def test_windows_outside_the_data_are_errors(dataset, roles):
    norm = roles.fit_normalizer(dataset)
    with pytest.raises(InputError, match=r"window of 30 steps starting at index 100 \(unit 'b01'\) leaves the data"):
        make_batch(dataset, roles, norm, np.array([0, 1]), np.array([0, 100]), 20, 10)
    with pytest.raises(InputError, match="unit index 6 is out of range"):
        make_batch(dataset, roles, norm, np.array([6]), 0, 20, 10)
    with pytest.raises(ConfigError, match="no normalizer"):
        make_batch(dataset, roles, None, np.array([0]), 0, 20, 10)
