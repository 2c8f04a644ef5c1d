"""The ``open()`` of the hydrology datasets: each unit's files read when it is selected, as ``load()`` reads them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dmg.core.build import open_unit_source
from dmg.core.config import load_config
from dmg.core.data.lazy import NpzUnitSource
from dmg.core.errors import InputError
from dmg.core.testing.datasets import assert_same_dataset
from dmg.hydro.datasets import camels
from dmg.hydro.datasets.camels import CamelsUnitSource, CamelsUS

SAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camels_us_sample"
HEADER = "Year Mnth Day Hr\tdayl(s)\tprcp(mm/day)\tsrad(W/m2)\tswe(mm)\ttmax(C)\ttmin(C)\tvp(Pa)"
HAS_NETCDF = importlib.util.find_spec("xarray") is not None and importlib.util.find_spec("netCDF4") is not None


def selections(ids: tuple[str, ...]) -> list:
    return [list(ids), list(ids[::-1]), [ids[-1]], [len(ids) - 1, 0], np.arange(len(ids)) == 0, []]


# --------------------------------------------------------------------------- CAMELS-US


@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip(f"CAMELS-US sample not found at {SAMPLE}")
    return SAMPLE


def write_gauge(root: Path, gauge: str, huc: str, days: int) -> None:
    """One made-up gauge: ``days`` of forcings from 2010-01-01 that tell the gauge and the day, and streamflow."""
    dates = np.arange(np.datetime64("2010-01-01"), np.datetime64("2010-01-01") + days)
    number = int(gauge[-1])
    forcing = root / "basin_mean_forcing" / "daymet" / huc / f"{gauge}_lump_cida_forcing_leap.txt"
    forcing.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"  {40 + number}.00", f" {100 * number}.00", f" {1e8 * number:.0f}", HEADER]
    flows = []
    for i, d in enumerate(dates):
        y, m, dd = str(d).split("-")
        prcp = "-999.00" if i == number else f"{i + number / 10:.2f}"
        tmax, tmin = 5 + (i + number) % 3, -2 - i % 2
        lines.append(f"{y} {m} {dd} 12\t36000.00\t{prcp}\t200.00\t0.00\t{tmax:.2f}\t{tmin:.2f}\t600.00")
        if i % 7 != 3:  # some dates without a row
            flag = "M" if i % 11 == 5 else "A"
            flows.append(f"{gauge} {y} {m} {dd} {10 * number + i % 4:>8.2f} {flag}")
    forcing.write_text("\n".join(lines) + "\n")
    flow = root / "usgs_streamflow" / huc / f"{gauge}_streamflow_qc.txt"
    flow.parent.mkdir(parents=True, exist_ok=True)
    flow.write_text("\n".join(flows) + "\n")


@pytest.fixture
def tree(tmp_path) -> Path:
    """Four made-up gauges in three HUC folders, with records of different lengths."""
    root = tmp_path / "camels"
    for gauge, huc, days in (
        ("01000001", "01", 60),
        ("01000002", "01", 50),
        ("02000003", "02", 70),
        ("03000004", "03", 55),
    ):
        write_gauge(root, gauge, huc, days)
    return root


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"pet": "priestley_taylor", "attributes": ["area_gages2", "elev_mean", "pet_mean"]},
        {"start": "2001-06-01", "end": "2001-09-30", "pet": "none", "forcing": "daymet"},
    ],
    ids=["defaults", "attributes", "period"],
)
def test_camels_sample_lazy_equals_loaded(sample, options):
    component = CamelsUS.from_config({"root": str(sample), "gauges": "all", "cache": False, **options})
    loaded, source = component.load(), component.open()
    assert isinstance(source, CamelsUnitSource) and source.unit_ids == loaded.unit_ids
    for selection in selections(loaded.unit_ids):
        assert_same_dataset(source.select_units(selection), loaded.select_units(selection))


def test_camels_reads_only_the_selected_gauges(tree, monkeypatch):
    component = CamelsUS.from_config({"root": str(tree), "gauges": "all", "cache": False, "pet": "none"})
    loaded = component.load()
    source = component.open()
    read: list[str] = []
    real = camels.read_streamflow
    monkeypatch.setattr(camels, "read_streamflow", lambda path, gauge: read.append(gauge) or real(path, gauge))
    for selection in (["03000004", "01000001"], ["01000002"], [2, 1, 0, 3]):
        read.clear()
        chunk = source.select_units(selection)
        assert read == list(chunk.unit_ids)
        assert_same_dataset(chunk, loaded.select_units(selection))


def test_camels_errors_are_those_of_load(tree):
    component = CamelsUS.from_config({"root": str(tree), "gauges": "all", "cache": False, "pet": "none"})
    source, loaded = component.open(), component.load()
    for bad in (["01000001", "99999999"], [7], ["01000001", "01000001"]):
        with pytest.raises(InputError) as lazy:
            source.select_units(bad)
        with pytest.raises(InputError) as eager:
            loaded.select_units(bad)
        assert str(lazy.value) == str(eager.value)
    late = CamelsUS.from_config({"root": str(tree), "gauges": "all", "cache": False, "start": "2010-02-25"})
    with pytest.raises(InputError) as eager:
        late.load()
    with pytest.raises(InputError) as lazy:
        late.open()
    assert str(lazy.value) == str(eager.value) and "outside the daymet forcing record" in str(lazy.value)


def test_camels_cache_file_is_read_lazily(tree, tmp_path):
    options = {"root": str(tree), "gauges": "all", "cache_dir": str(tmp_path / "cache"), "pet": "none"}
    component = CamelsUS.from_config(options)
    assert isinstance(component.open(), CamelsUnitSource)  # no cache file yet, and open() writes none
    assert not component.cache_path().exists()
    loaded = component.load()  # builds and writes the cache file
    source = CamelsUS.from_config(options).open()
    assert isinstance(source, NpzUnitSource) and source.path == component.cache_path()
    assert_same_dataset(source.select_units(["02000003", "01000001"]), loaded.select_units(["02000003", "01000001"]))


def test_open_unit_source_opens_camels_lazily(tree):
    config = load_config(
        {
            "data": {
                "dataset": {"name": "camels_us", "root": str(tree), "gauges": ["02000003", "01000002"], "cache": False},
                "roles": {"forcings": {"P": "prcp"}, "nn_inputs": ["prcp", "tmean"], "targets": {"Q": "streamflow"}},
            },
            "model": {"physics": {"name": "hbv"}, "nn": {"name": "dense"}},
        }
    )
    source = open_unit_source(config)
    assert isinstance(source, CamelsUnitSource) and source.unit_ids == ("02000003", "01000002")


# --------------------------------------------------------------------------- per-unit NetCDF


@pytest.mark.skipif(not HAS_NETCDF, reason="needs xarray and netCDF4 (pip install 'dmg-hydro-adapter[netcdf]')")
@pytest.mark.parametrize(
    "options",
    [
        {"attributes": ["aridity", "area"]},
        {"rename": {"prcp": "P"}, "units": ["lamah_0042", "camels_01022500"]},
        {"start": "2000-01-06", "end": "2000-01-20", "variables": ["streamflow"]},
    ],
    ids=["attributes", "rename and units", "period"],
)
def test_netcdf_lazy_equals_loaded(tmp_path, monkeypatch, options):
    from dmg.hydro.datasets.netcdf import NetCDFUnitSource, PerUnitNetCDF

    root = tmp_path / "Caravan"
    write_caravan(root)
    component = PerUnitNetCDF.from_config({"root": str(root), "cache": False, **options})
    loaded, source = component.load(), component.open()
    assert isinstance(source, NetCDFUnitSource) and source.unit_ids == loaded.unit_ids
    for selection in selections(loaded.unit_ids):
        assert_same_dataset(source.select_units(selection), loaded.select_units(selection))
    read: list[str] = []
    real = PerUnitNetCDF._read
    monkeypatch.setattr(
        PerUnitNetCDF, "_read", lambda self, xr, path, *a: read.append(path.stem) or real(self, xr, path, *a)
    )
    source.select_units([loaded.unit_ids[-1]])
    assert read == [loaded.unit_ids[-1]]


def write_caravan(root: Path) -> None:
    """Three units of two sources over different periods, with a ``units`` attribute and attribute files."""
    import xarray as xr

    units = {
        "camels_01022500": ("2000-01-01", 40),
        "camels_01547700": ("2000-01-05", 40),
        "lamah_0042": ("1999-12-20", 60),
    }
    for k, (unit, (first, n)) in enumerate(units.items()):
        dates = np.datetime64(first) + np.arange(n)
        day = (dates - np.datetime64("2000-01-01")).astype(float)
        streamflow = 1000.0 * (k + 1) + 100.0 + day
        if k == 1:
            streamflow[3] = np.nan
        ds = xr.Dataset(
            {"prcp": ("date", 1000.0 * (k + 1) + day, {"units": "mm/d"}), "streamflow": ("date", streamflow)},
            coords={"date": dates.astype("datetime64[ns]")},
        )
        path = root / "timeseries" / "netcdf" / unit.split("_")[0] / f"{unit}.nc"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(path)
    for source in ("camels", "lamah"):
        folder = root / "attributes" / source
        folder.mkdir(parents=True, exist_ok=True)
        ids = [u for u in units if u.startswith(source)]
        rows = ["gauge_id,aridity,area"] + [f"{u},{0.5 + i / 10},{100 * (i + 1)}" for i, u in enumerate(ids)]
        (folder / f"attributes_{source}.csv").write_text("\n".join(rows) + "\n")
