"""PerUnitNetCDF on small Caravan-like trees written by the tests."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from dmg.core.config import resolve_component
from dmg.core.errors import InputError
from dmg.hydro.datasets import netcdf
from dmg.hydro.datasets.netcdf import MissingDependencyError, PerUnitNetCDF, pattern_regex

xr = pytest.importorskip("xarray", reason="xarray is not installed (pip install 'dmg-hydro-adapter[netcdf]')")
pytest.importorskip("netCDF4", reason="netCDF4 is not installed (pip install 'dmg-hydro-adapter[netcdf]')")

UNITS = {"camels_01022500": ("2000-01-01", 40), "camels_01547700": ("2000-01-05", 40), "lamah_0042": ("1999-12-20", 60)}
"""Unit id -> first date and number of days; every unit covers 2000-01-05 to 2000-02-09."""


def series(unit: str, name: str, dates: np.ndarray) -> np.ndarray:
    """Values that identify the unit, the variable and the date."""
    day = (dates - np.datetime64("2000-01-01")).astype(float)
    return 1000.0 * (list(UNITS).index(unit) + 1) + 100.0 * ("prcp", "streamflow").index(name) + day


def write_caravan(root: Path, freq: str = "D") -> None:
    for unit, (first, n) in UNITS.items():
        source = unit.split("_")[0]
        step = np.timedelta64(1, "D") if freq == "D" else np.timedelta64(1, "h")
        dates = np.datetime64(first).astype(f"datetime64[{freq}]") + step * np.arange(n)
        ds = xr.Dataset(
            {
                "prcp": ("date", series(unit, "prcp", dates), {"units": "mm/d"}),
                "streamflow": ("date", series(unit, "streamflow", dates), {"units": "mm/d"}),
            },
            coords={"date": dates.astype("datetime64[ns]")},
        )
        if unit == "camels_01547700":
            ds["streamflow"][3] = np.nan
        path = root / "timeseries" / "netcdf" / source / f"{unit}.nc"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(path)
    for source in ("camels", "lamah"):
        folder = root / "attributes" / source
        folder.mkdir(parents=True, exist_ok=True)
        ids = [u for u in UNITS if u.startswith(source)]
        rows = ["gauge_id,aridity,area,country"] + [f"{u},{0.5 + i / 10},{100 * (i + 1)},US" for i, u in enumerate(ids)]
        if source == "lamah":
            rows[1] = rows[1].replace(",100,", ",NA,")
        (folder / f"attributes_other_{source}.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def caravan(tmp_path) -> Path:
    root = tmp_path / "Caravan"
    write_caravan(root)
    return root


def load(root: Path, **options):
    return PerUnitNetCDF.from_config({"root": str(root), "cache": False, **options}).load()


def test_units_aligned_on_the_common_period(caravan):
    ds = load(caravan, attributes=["aridity", "area"])
    assert ds.unit_ids == tuple(sorted(UNITS))
    assert ds.variables == ("prcp", "streamflow")
    assert ds.dates.dtype == np.dtype("datetime64[D]")
    assert (str(ds.dates[0]), str(ds.dates[-1])) == ("2000-01-05", "2000-02-09")
    for unit in UNITS:
        u = ds.unit_index(unit)
        for name in ds.variables:
            want = series(unit, name, ds.dates)
            got = ds.variable(name)[u]
            if unit == "camels_01547700" and name == "streamflow":
                assert np.isnan(got[3])
                got, want = np.delete(got, 3), np.delete(want, 3)
            np.testing.assert_allclose(got, want)
    assert ds.units == {"prcp": "mm/d", "streamflow": "mm/d"}
    np.testing.assert_allclose(ds.attribute("aridity"), [0.5, 0.6, 0.5])
    np.testing.assert_allclose(ds.attribute("area"), [100, 200, np.nan])


def test_options_select_units_variables_and_period(caravan, tmp_path):
    listing = tmp_path / "units.txt"
    listing.write_text("lamah_0042\ncamels_01022500\n")
    ds = load(
        caravan,
        units=str(listing),
        variables=["streamflow"],
        rename={"streamflow": "q_obs"},
        start="2000-01-01",
        end="2000-01-10",
    )
    assert ds.unit_ids == ("lamah_0042", "camels_01022500")
    assert ds.variables == ("q_obs",) and ds.n_time == 10
    np.testing.assert_allclose(ds.variable("q_obs")[1], series("camels_01022500", "streamflow", ds.dates))
    only = load(caravan, pattern="timeseries/netcdf/camels/{unit}.nc")
    assert only.unit_ids == ("camels_01022500", "camels_01547700")


def test_hourly_files_keep_the_hours(tmp_path):
    write_caravan(tmp_path, freq="h")
    ds = load(tmp_path, start="2000-01-05", end="2000-01-05", units=["camels_01547700"])
    assert ds.dates.dtype == np.dtype("datetime64[h]")
    assert ds.n_time == 24 and str(ds.dates[-1]) == "2000-01-05T23"


def test_errors_name_what_is_wrong(caravan):
    with pytest.raises(InputError, match=r"no file for unit 'camels_01022501'.*Closest: 'camels_01022500'"):
        load(caravan, units=["camels_01022501"])
    with pytest.raises(InputError, match=r"has no variable 'streamflw'\. Closest: 'streamflow'"):
        load(caravan, variables=["streamflw"])
    with pytest.raises(InputError, match=r"camels_01022500: 2000-01-01 to 2000-02-09.*available for all units"):
        load(caravan, start="1999-12-25")
    with pytest.raises(InputError, match=r"'country' \(e\.g\. 'US'.*hold text"):
        load(caravan, attributes=["country"])
    with pytest.raises(InputError, match=r"no attribute 'aridty' \(closest: 'aridity'\)"):
        load(caravan, attributes=["aridty"])
    with pytest.raises(InputError, match=r"no file matches"):
        load(caravan, pattern="timeseries/csv/*/{unit}.csv")
    with pytest.raises(InputError, match=r"'\{unit\}' exactly once"):
        pattern_regex("timeseries/*.nc")


def test_missing_xarray_or_backend_says_how_to_install(caravan, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "xarray", None)
        with pytest.raises(MissingDependencyError, match=r"dmg-hydro-adapter\[netcdf\]"):
            load(caravan)
    for backend in ("netCDF4", "h5netcdf"):
        monkeypatch.setitem(sys.modules, backend, None)
    with pytest.raises(MissingDependencyError, match=r"no NetCDF backend.*dmg-hydro-adapter\[netcdf\]"):
        load(caravan)


def test_served_from_the_cache(caravan, tmp_path, monkeypatch):
    options = {"root": str(caravan), "cache_dir": str(tmp_path / "cache"), "attributes": ["aridity"]}
    cls, cfg = resolve_component("dmg.datasets", {"name": "netcdf_units", **options}, "data.dataset")
    assert cls is PerUnitNetCDF
    built = cls.from_config(cfg).load()

    def refuse(*args, **kwargs):
        raise AssertionError("the NetCDF files were read again")

    monkeypatch.setattr(netcdf.PerUnitNetCDF, "_read", refuse)
    cached = cls.from_config(cfg).load()
    np.testing.assert_array_equal(cached.data, built.data)
    assert cached.units == built.units
    with pytest.raises(AssertionError, match="read again"):
        PerUnitNetCDF.from_config({**options, "variables": ["prcp"]}).load()


def test_a_damaged_netcdf_file_is_named_not_taken_for_a_missing_backend(caravan):
    damaged = caravan / "timeseries" / "netcdf" / "camels" / "camels_01022500.nc"
    damaged.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(InputError, match=rf"{re.escape(str(damaged))} is not a readable NetCDF file \(NetCDF: "):
        load(caravan)
    damaged.write_bytes(b"")
    with pytest.raises(InputError, match=r"camels_01022500\.nc is not a readable NetCDF file"):
        load(caravan)


def test_binary_attribute_and_unit_list_files_are_named(caravan):
    table = caravan / "attributes" / "camels" / "attributes_other_camels.csv"
    table.write_bytes(b"gauge_id,aridity\n" + bytes(range(128, 256)))
    with pytest.raises(InputError, match=rf"attribute file {re.escape(str(table))} is not UTF-8 text"):
        load(caravan, attributes=["aridity"])
    listed = caravan / "units.txt"
    listed.write_bytes("camels_01022500 # débit\n".encode("latin-1"))
    with pytest.raises(InputError, match=rf"units: unit list file {re.escape(str(listed))} is not UTF-8 text"):
        load(caravan, units=str(listed))
