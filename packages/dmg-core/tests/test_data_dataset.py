"""ArrayDataset: validation, lookups, subsets, files and finiteness checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dmg.core.data import ArrayDataset
from dmg.core.errors import InputError, ShapeError


def make_dataset(n_units: int = 4, n_time: int = 30, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    return ArrayDataset(
        data=rng.gamma(1.0, 2.0, (n_units, n_time, 3)).astype(np.float32),
        variables=("prcp", "tmean", "Q"),
        unit_ids=tuple(f"0102{i:04d}" for i in range(n_units)),
        dates=np.datetime64("2001-03-01") + np.arange(n_time),
        attributes=rng.uniform(10.0, 100.0, (n_units, 2)),
        attribute_names=("area", "slope"),
        units={"prcp": "mm/day", "area": "km2"},
    )


def test_lookups_return_the_right_slices():
    ds = make_dataset()
    assert (ds.n_units, ds.n_time) == (4, 30)
    np.testing.assert_array_equal(ds.variable("tmean"), ds.data[:, :, 1])
    np.testing.assert_array_equal(ds.attribute("slope"), ds.attributes[:, 1])
    assert ds.time_index("2001-03-05") == 4
    assert ds.time_index(np.datetime64("2001-03-01")) == 0
    assert ds.step == np.timedelta64(1, "D")
    assert ds.unit_index("01020002") == 2


def test_arrays_are_read_only_views():
    ds = make_dataset()
    with pytest.raises(ValueError):
        ds.data[0, 0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.variables = ("a",)


def test_unknown_names_suggest_the_closest():
    ds = make_dataset()
    with pytest.raises(InputError, match=r"no variable 'prcpp'.*Closest: 'prcp'"):
        ds.variable("prcpp")
    with pytest.raises(InputError, match=r"no attribute 'aera'.*Closest: 'area'"):
        ds.attribute("aera")
    with pytest.raises(InputError, match=r"2001-04-30 is not in the dataset \(dates: 2001-03-01 to 2001-03-30"):
        ds.time_index("2001-04-30")


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"variables": ("prcp", "tmean")}, ShapeError, "3 variables .* but 2 names"),
        ({"variables": ("prcp", "prcp", "Q")}, InputError, "repeated: 'prcp'"),
        ({"unit_ids": ("a", "b", "c")}, ShapeError, "4 units .* but 3 unit ids"),
        ({"attribute_names": ("area",)}, ShapeError, "2 columns but 1 names"),
        ({"units": {"flow": "mm/day"}}, InputError, "unknown variables/attributes: \\['flow'\\]"),
    ],
)
def test_inconsistent_construction_names_what_is_wrong(change, error, message):
    ds = make_dataset()
    with pytest.raises(error, match=message):
        dataclasses.replace(ds, **change)


def test_dates_must_increase_with_a_constant_step():
    ds = make_dataset()
    swapped = ds.dates.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    with pytest.raises(InputError, match="strictly increasing: 2001-03-05 is followed by 2001-03-04"):
        dataclasses.replace(ds, dates=swapped)
    gap = ds.dates.copy()
    gap[10:] += np.timedelta64(1, "D")
    with pytest.raises(InputError, match=r"constant step.*2001-03-10 to 2001-03-12 is 2 days"):
        dataclasses.replace(ds, dates=gap)


def test_string_dates_and_other_steps_are_kept_at_their_resolution():
    ds = make_dataset(n_time=3)
    assert dataclasses.replace(ds, dates=["2001-01-01", "2001-01-02", "2001-01-03"]).dates.dtype == "datetime64[D]"
    hourly = dataclasses.replace(ds, dates=np.datetime64("2001-01-01T00", "h") + np.arange(3))
    assert hourly.dates.dtype == "datetime64[h]"
    assert hourly.step == np.timedelta64(1, "h")


def test_select_units_by_id_index_and_mask():
    ds = make_dataset()
    by_id = ds.select_units(["01020003", "01020001"])
    assert by_id.unit_ids == ("01020003", "01020001")
    np.testing.assert_array_equal(by_id.data, ds.data[[3, 1]])
    np.testing.assert_array_equal(by_id.attributes, ds.attributes[[3, 1]])
    assert ds.select_units(np.array([3, 1])).unit_ids == by_id.unit_ids
    assert ds.select_units(np.array([True, False, True, False])).unit_ids == ("01020000", "01020002")
    with pytest.raises(InputError, match="unit index 7 is out of range"):
        ds.select_units([7])
    with pytest.raises(InputError, match="no unit id '0102'"):
        ds.select_units(["0102"])


def test_select_time_is_inclusive_at_both_ends():
    ds = make_dataset()
    sub = ds.select_time("2001-03-03", "2001-03-10")
    assert sub.n_time == 8
    assert str(sub.dates[0]) == "2001-03-03" and str(sub.dates[-1]) == "2001-03-10"
    np.testing.assert_array_equal(sub.data, ds.data[:, 2:10])
    assert ds.select_time(None, "2001-03-02").n_time == 2
    with pytest.raises(InputError, match="no dates between 2002-01-01 and 2002-02-01"):
        ds.select_time("2002-01-01", "2002-02-01")


def test_select_time_end_day_covers_every_hour_of_that_day():
    base = make_dataset(n_time=72)
    hourly = dataclasses.replace(base, dates=np.datetime64("2001-01-01T00", "h") + np.arange(72))
    day = hourly.select_time("2001-01-02", "2001-01-02")
    assert day.n_time == 24
    assert str(day.dates[-1]) == "2001-01-02T23"


def test_save_load_round_trip(tmp_path):
    ds = make_dataset()
    path = tmp_path / "sub" / "data.npz"
    ds.save(path)
    back = ArrayDataset.load(path)
    np.testing.assert_array_equal(back.data, ds.data)
    np.testing.assert_array_equal(back.dates, ds.dates)
    np.testing.assert_array_equal(back.attributes, ds.attributes)
    assert back.data.dtype == ds.data.dtype
    assert (back.variables, back.unit_ids, back.attribute_names) == (ds.variables, ds.unit_ids, ds.attribute_names)
    assert back.units == ds.units
    assert [p.name for p in path.parent.iterdir()] == ["data.npz"]  # no temporary file left behind


def test_save_load_without_attributes(tmp_path):
    ds = dataclasses.replace(make_dataset(), attributes=None, attribute_names=(), units={})
    ds.save(tmp_path / "d.npz")
    back = ArrayDataset.load(tmp_path / "d.npz")
    assert back.attributes.shape == (4, 0) and back.attribute_names == ()


def test_from_dicts_builds_the_same_layout():
    ds = make_dataset()
    built = ArrayDataset.from_dicts(
        {v: ds.variable(v) for v in ds.variables},
        ds.unit_ids,
        ds.dates,
        {a: ds.attribute(a) for a in ds.attribute_names},
        dtype=np.float64,
    )
    np.testing.assert_allclose(built.data, ds.data)
    np.testing.assert_allclose(built.attributes, ds.attributes)


def test_check_finite_names_variable_unit_and_date():
    ds = make_dataset()
    data = ds.data.copy()
    data[2, 3, 0] = np.nan  # first bad value: unit 01020002 on 2001-03-04
    data[2, 7:10, 0] = np.nan
    data[3, 0, 0] = np.inf
    bad = dataclasses.replace(ds, data=data)
    with pytest.raises(InputError, match=r"forcing 'prcp' is NaN for unit '01020002' on 2001-03-04 \(and 4 more\)"):
        bad.check_finite(["prcp", "tmean"], (), label="forcing")
    bad.check_finite(["tmean", "Q"], ["area"])  # the others are fine

    attrs = ds.attributes.copy()
    attrs[1, 0] = -np.inf
    with pytest.raises(InputError, match=r"attribute 'area' is -inf for unit '01020001'"):
        dataclasses.replace(ds, attributes=attrs).check_finite((), None)


def test_check_finite_reports_every_bad_variable():
    ds = make_dataset()
    data = ds.data.copy()
    data[0, 5, 0] = np.nan
    data[1, 6, 2] = np.inf
    with pytest.raises(
        InputError, match=r"'prcp' is NaN .*; also variable 'Q' is \+inf for unit '01020001' on 2001-03-07"
    ):
        dataclasses.replace(ds, data=data).check_finite()
