"""CamelsUS on the real CAMELS-US sample (read in place) and on small synthetic trees."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from dmg.core.config import resolve_component
from dmg.core.errors import ConfigError, InputError
from dmg.hydro.datasets.camels import CamelsUS, cfs_to_mm_per_day

SAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camels_us_sample"
MAINE, PENNSYLVANIA = "01022500", "01547700"
SAMPLE_GAUGES = [MAINE, PENNSYLVANIA]


@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip(f"CAMELS-US sample not found at {SAMPLE}")
    return SAMPLE


def load(root: Path, **options) -> object:
    return CamelsUS.from_config({"root": str(root), "cache": False, **options}).load()


def raw_rows(path: Path, skip: int) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()[skip:] if line.strip()]


def attribute_row(root: Path, file: str, gauge: str) -> dict[str, str]:
    lines = (root / "camels_attributes_v2.0" / file).read_text().splitlines()
    header = lines[0].split(";")
    row = next(line.split(";") for line in lines[1:] if line.startswith(gauge + ";"))
    return dict(zip(header, row))


@pytest.fixture(scope="module")
def daymet(sample: Path):
    return load(sample, gauges=SAMPLE_GAUGES, attributes=["area_gages2", "huc_02", "pet_mean", "elev_mean"])


# --------------------------------------------------------------------------- real sample


def test_variables_units_and_dates(daymet):
    assert daymet.unit_ids == (MAINE, PENNSYLVANIA)
    assert daymet.variables == ("prcp", "tmax", "tmin", "tmean", "srad", "vp", "dayl", "swe", "pet", "streamflow")
    assert daymet.dates.dtype == np.dtype("datetime64[D]")
    # Default period: where both forcing records overlap (PA ends 2002-12-31, Maine 2003-12-31).
    assert str(daymet.dates[0]) == "2000-01-01"
    assert str(daymet.dates[-1]) == "2002-12-31"
    assert daymet.n_time == 1096
    assert daymet.units["streamflow"] == "mm/day"
    assert daymet.units["srad"] == "W/m2"
    assert daymet.units["header_area"] == "m2"
    np.testing.assert_allclose(
        daymet.variable("tmean"), (daymet.variable("tmax") + daymet.variable("tmin")) / 2, atol=1e-5
    )


def test_forcing_values_match_the_raw_file(sample, daymet):
    path = next((sample / "basin_mean_forcing" / "daymet").glob(f"*/{PENNSYLVANIA}_*"))
    rows = raw_rows(path, 4)
    # Columns: Year Mnth Day Hr dayl prcp srad swe tmax tmin vp; check the 100th day.
    row = [float(x) for x in rows[99]]
    u, t = daymet.unit_index(PENNSYLVANIA), daymet.time_index(f"{int(row[0])}-{int(row[1]):02d}-{int(row[2]):02d}")
    got = {name: float(daymet.variable(name)[u, t]) for name in ("dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp")}
    want = dict(zip(("dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp"), row[4:]))
    assert got == pytest.approx(want, rel=1e-6)
    header = [float(x) for x in path.read_text().splitlines()[:3]]
    assert daymet.attribute("header_lat")[u] == pytest.approx(header[0])
    assert daymet.attribute("header_elev")[u] == pytest.approx(header[1])
    assert daymet.attribute("header_area")[u] == header[2]  # attributes kept in float64: exact


def test_streamflow_conversion_by_hand(sample, daymet):
    path = next((sample / "usgs_streamflow").glob(f"*/{MAINE}_streamflow_qc.txt"))
    first = raw_rows(path, 0)[0]
    assert first[:4] == [MAINE, "2000", "01", "01"]
    cfs = float(first[4])  # 255 ft³/s
    area = daymet.attribute("header_area")[daymet.unit_index(MAINE)]  # 587675987 m²
    # By hand: 255 ft³/s × 0.0283168466 m³/ft³ = 7.22080 m³/s; × 86400 s = 623877 m³/day;
    # / 587675987 m² = 1.061600e-3 m/day = 1.061600 mm/day.
    by_hand = cfs * 0.0283168466 * 86400 * 1000 / area
    assert by_hand == pytest.approx(1.061600, abs=2e-6)
    got = daymet.variable("streamflow")[daymet.unit_index(MAINE), 0]
    assert got == pytest.approx(by_hand, rel=1e-6)
    assert cfs_to_mm_per_day(np.array([cfs]), area)[0] == pytest.approx(by_hand, rel=1e-9)
    # Whole series: the converted record has the raw file's shape (no gaps in the sample).
    raw = np.array([float(r[4]) for r in raw_rows(path, 0)])
    np.testing.assert_allclose(daymet.variable("streamflow")[0], raw * 2446575.5462 / area, rtol=1e-6)


def test_attributes_joined_by_text_gauge_id(sample, daymet):
    for gauge in SAMPLE_GAUGES:
        u = daymet.unit_index(gauge)
        topo = attribute_row(sample, "camels_topo.txt", gauge)
        clim = attribute_row(sample, "camels_clim.txt", gauge)
        assert daymet.attribute("area_gages2")[u] == float(topo["area_gages2"])
        assert daymet.attribute("elev_mean")[u] == float(topo["elev_mean"])
        assert daymet.attribute("pet_mean")[u] == float(clim["pet_mean"])
    # huc_02 is text '01'/'02' in the file: numeric, and the ids kept their leading zeros.
    np.testing.assert_array_equal(daymet.attribute("huc_02"), [1.0, 2.0])
    assert all(g.startswith("0") and len(g) == 8 for g in daymet.unit_ids)


def test_pet_is_plausible_for_maine_and_pennsylvania(sample, daymet):
    priestley = load(sample, gauges=SAMPLE_GAUGES, pet="priestley_taylor")
    for ds, tolerance in ((daymet, 0.25), (priestley, 0.10)):
        pet = ds.variable("pet")
        assert np.isfinite(pet).all() and (pet >= 0).all()
        annual = pet.mean(axis=1)  # three whole years
        assert ((annual > 1.5) & (annual < 3.5)).all(), annual
        # CAMELS pet_mean (Priestley–Taylor, 1989-2009) as an independent reference.
        np.testing.assert_allclose(annual, daymet.attribute("pet_mean"), rtol=tolerance)
        months = ds.dates.astype("datetime64[M]").astype(int) % 12
        assert (pet[:, months == 6].mean(axis=1) > 4 * pet[:, months == 0].mean(axis=1)).all()
    assert load(sample, gauges=[MAINE], pet="none").variables[-1] == "streamflow"


def test_other_forcing_products(sample):
    for product in ("maurer", "nldas"):
        ds = load(sample, gauges=SAMPLE_GAUGES, forcing=product, pet="priestley_taylor")
        assert ds.n_time == 1096 and np.isfinite(ds.variable("pet")).all()
        # These CAMELS products repeat one temperature as tmax and tmin: Hargreaves would give 0.
        with pytest.raises(InputError, match=r"tmax equals tmin.*priestley_taylor"):
            load(sample, gauges=SAMPLE_GAUGES, forcing=product, pet="hargreaves")


def test_explicit_period_and_gauge_list_file(sample, tmp_path):
    listing = tmp_path / "basins.txt"
    listing.write_text(f"# two sample basins\n{PENNSYLVANIA}\n\n{MAINE}  # Narraguagus\n")
    ds = load(sample, gauges=str(listing), start="2001-03-01", end="2001-03-31")
    assert ds.unit_ids == (PENNSYLVANIA, MAINE)
    assert ds.n_time == 31 and str(ds.dates[0]) == "2001-03-01"
    # Maine alone has forcings for 2003; its streamflow ends in 2002, so 2003 flows are NaN.
    maine = load(sample, gauges=[MAINE], start="2002-12-01", end="2003-01-31")
    flow = maine.variable("streamflow")[0]
    assert np.isfinite(flow[:31]).all() and np.isnan(flow[31:]).all()
    assert np.isfinite(maine.variable("prcp")).all()


def test_resolved_through_the_registry(sample):
    cls, cfg = resolve_component(
        "dmg.datasets",
        {"name": "camels_us", "root": str(SAMPLE), "gauges": [MAINE], "end": "2000-01-10", "cache": False},
        "data.dataset",
    )
    assert cls is CamelsUS
    assert cls.from_config(cfg).load().n_time == 10


def test_pandas_is_not_needed(sample, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # any `import pandas` now fails
    ds = load(sample, gauges=[MAINE], attributes=["aridity"], end="2000-02-01")
    assert ds.n_time == 32


# --------------------------------------------------------------------------- errors


def test_unknown_gauge_names_closest_id(sample):
    with pytest.raises(InputError, match=r"no daymet forcing file for gauge '01022501'.*Closest gauge id: '01022500'"):
        load(sample, gauges=["01022501"])
    with pytest.raises(InputError, match=r"8 digits: was a leading zero lost"):
        load(sample, gauges=["1022500"])


def test_numeric_gauge_ids_are_refused(sample):
    with pytest.raises(ValidationError, match="quote them"):
        CamelsUS.Config(root=str(sample), gauges=[1022500])
    with pytest.raises(ConfigError, match="quote them"):
        resolve_component("dmg.datasets", {"name": "camels_us", "root": str(sample), "gauges": [1022500]}, "d")


def test_unknown_and_text_attributes(sample):
    with pytest.raises(InputError, match=r"no attribute 'area_gauges2' \(closest: 'area_gages2'\)"):
        load(sample, gauges=[MAINE], attributes=["area_gauges2"])
    with pytest.raises(InputError, match=r"'geol_1st_class' \(e\.g\. 'Siliciclastic.*hold text"):
        load(sample, gauges=[MAINE], attributes=["aridity", "geol_1st_class"])


def test_period_outside_the_record_names_the_available_dates(sample):
    with pytest.raises(InputError) as info:
        load(sample, gauges=SAMPLE_GAUGES, start="1999-06-01", end="2001-12-31")
    message = str(info.value)
    assert "01022500: 2000-01-01 to 2003-12-31" in message
    assert "available for all requested gauges: 2000-01-01 to 2002-12-31" in message


def test_missing_folders_and_files(sample, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load(tmp_path / "nowhere", gauges=[MAINE])
    with pytest.raises(InputError, match=r"no folder basin_mean_forcing/daymet"):
        load(tmp_path, gauges=[MAINE])
    with pytest.raises(InputError, match=r"gauge list file .*nope.txt does not exist"):
        load(sample, gauges="nope.txt")


# --------------------------------------------------------------------------- synthetic trees

HEADER = "Year Mnth Day Hr\tdayl(s)\tprcp(mm/day)\tsrad(W/m2)\tswe(mm)\ttmax(C)\ttmin(C)\tvp(Pa)"


def write_tree(root: Path, gauge: str, huc: str, days: int, flows: list[tuple[str, str]], area: float = 1e8) -> None:
    """A one-gauge CAMELS tree: ``days`` of forcings from 2010-01-01 and the given (Q, flag) rows."""
    dates = np.arange(np.datetime64("2010-01-01"), np.datetime64("2010-01-01") + days)
    forcing = root / "basin_mean_forcing" / "daymet" / huc / f"{gauge}_lump_cida_forcing_leap.txt"
    forcing.parent.mkdir(parents=True, exist_ok=True)
    lines = ["  45.00", " 100.00", f" {area:.0f}", HEADER]
    for i, d in enumerate(dates):
        y, m, dd = str(d).split("-")
        prcp = "-999.00" if i == 2 else f"{i:.2f}"
        lines.append(f"{y} {m} {dd} 12\t36000.00\t{prcp}\t200.00\t0.00\t{5 + i % 3:.2f}\t{-2 - i % 2:.2f}\t600.00")
    forcing.write_text("\n".join(lines) + "\n")
    flow = root / "usgs_streamflow" / huc / f"{gauge}_streamflow_qc.txt"
    flow.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for d, (q, flag) in zip(dates, flows):
        if q is None:
            continue  # a date without a row
        y, m, dd = str(d).split("-")
        rows.append(f"{gauge} {y} {m} {dd} {q:>8} {flag}")
    flow.write_text("\n".join(rows) + "\n")


def test_missing_values_become_nan(tmp_path):
    flows = [("100.00", "A"), ("-999.00", "M"), ("50.00", "A:e"), ("70.00", "M"), (None, ""), ("10.00", "A")]
    write_tree(tmp_path, "12345678", "17", days=6, flows=flows)
    ds = load(tmp_path, gauges=["12345678"])
    assert ds.n_time == 6
    q = ds.variable("streamflow")[0]
    factor = 0.0283168466 * 86400 * 1000 / 1e8
    np.testing.assert_allclose(q, [100 * factor, np.nan, 50 * factor, np.nan, np.nan, 10 * factor], rtol=1e-6)
    prcp = ds.variable("prcp")[0]
    assert np.isnan(prcp[2]) and np.isfinite(np.delete(prcp, 2)).all()


def test_two_files_for_one_gauge_are_refused(tmp_path):
    flows = [("1.00", "A")] * 3
    write_tree(tmp_path, "12345678", "17", days=3, flows=flows)
    write_tree(tmp_path, "12345678", "18", days=3, flows=flows)
    with pytest.raises(InputError, match=r"two daymet forcing files for gauge '12345678'"):
        load(tmp_path, gauges=["12345678"])


def test_malformed_forcing_file_names_the_line(tmp_path):
    write_tree(tmp_path, "12345678", "17", days=3, flows=[("1.00", "A")] * 3)
    path = next(tmp_path.rglob("*_forcing_leap.txt"))
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit("\t", 1)[0]  # drop the last value of the second day
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 6: 10 values but 11 columns"):
        load(tmp_path, gauges=["12345678"])


def test_binary_attribute_and_gauge_list_files_are_named(tmp_path):
    write_tree(tmp_path, "12345678", "17", days=3, flows=[("1.00", "A")] * 3)
    table = tmp_path / "camels_attributes_v2.0" / "camels_topo.txt"
    table.parent.mkdir()
    table.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(InputError, match=rf"attribute file {re.escape(str(table))} is not UTF-8 text"):
        load(tmp_path, gauges=["12345678"], attributes=["elev_mean"])
    listed = tmp_path / "gauges.txt"
    listed.write_bytes(b"\xff\xfe1\x002\x00")
    with pytest.raises(InputError, match=rf"gauges: gauge list file {re.escape(str(listed))} is not UTF-8 text"):
        load(tmp_path, gauges=str(listed))


def test_reference_attributes_cover_every_basin_of_the_attribute_files(sample, daymet):
    reference = daymet.reference_attributes
    assert reference is not None and reference.shape == (671, len(daymet.attribute_names))
    for name in ("pet_mean", "elev_mean"):
        column = reference[:, daymet.attribute_index(name)]
        assert np.isfinite(column).sum() >= 670
        for value in daymet.attribute(name):  # the loaded basins are part of the population
            assert np.any(np.isclose(column, value))
    lat = reference[:, daymet.attribute_index("header_lat")]
    assert np.isfinite(lat).sum() == daymet.n_units  # only the loaded basins' forcing headers are read
