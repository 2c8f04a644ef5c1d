"""Potential evapotranspiration against the worked examples of FAO-56 (Allen et al. 1998)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmg.hydro.pet import (
    daylight_hours,
    extraterrestrial_radiation,
    hargreaves,
    net_radiation,
    priestley_taylor,
    psychrometric_constant,
    saturation_vapor_pressure,
    vapor_pressure_slope,
)

CAMELS = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "camels_us_sample").resolve()
LYON = 45 + 43 / 60  # FAO-56 Examples 10 and 20: Lyon, 45°43'N, 200 m, July (15 July = day 196)
RIO = -(22 + 54 / 60)  # FAO-56 Examples 11 and 12: Rio de Janeiro, 22°54'S, sea level, May (15 May = day 135)


def test_example_8_extraterrestrial_radiation():
    """20°S on 3 September (day 246): Ra = 32.2 MJ/m²/day."""
    assert round(float(extraterrestrial_radiation(-20.0, 246)), 1) == 32.2


def test_example_9_daylight_hours():
    """20°S on 3 September: N = 11.7 hours."""
    assert round(float(daylight_hours(-20.0, 246)), 1) == 11.7


def test_table_values_of_ra_used_by_later_examples():
    assert round(float(extraterrestrial_radiation(LYON, 196)), 1) == 40.6  # Example 10
    assert round(float(extraterrestrial_radiation(RIO, 135)), 1) == 25.1  # Examples 11-12


def test_hargreaves_on_the_data_of_example_10():
    """Eq. 52 with Lyon's July Tmax 26.6 °C, Tmin 14.8 °C and Ra 40.6 MJ/m²/day.

    0.0023 * 38.5 * sqrt(11.8) * 40.6 * 0.408 = 5.0 mm/day.
    """
    expected = 0.0023 * (20.7 + 17.8) * np.sqrt(11.8) * 40.6 * 0.408
    value = float(hargreaves(14.8, 26.6, LYON, 196))
    assert round(value, 1) == round(expected, 1) == 5.0
    assert abs(value - expected) < 0.01


def test_example_11_and_12_net_radiation():
    """Rio in May: Tmax 25.1, Tmin 19.1 °C, ea 2.1 kPa, Rs 14.5 MJ/m²/day -> Rnl = 3.5, Rn = 7.6 MJ/m²/day."""
    ra = extraterrestrial_radiation(RIO, 135)
    rn = float(net_radiation(19.1, 25.1, 14.5, ra, 0.0, 2.1))
    rns = 0.77 * 14.5
    assert round(rns - rn, 1) == 3.5
    assert round(rn, 1) == 7.6


def test_atmospheric_helpers_against_fao_examples():
    assert round(float(psychrometric_constant(1800.0)), 3) == 0.054  # Example 2
    assert round(float(saturation_vapor_pressure(24.5)), 3) == 3.075  # Example 3
    assert round(float(saturation_vapor_pressure(15.0)), 3) == 1.705
    assert round(float(vapor_pressure_slope(20.0)), 3) == 0.145  # Annex 2, Table 2.4


def test_priestley_taylor_combines_the_fao_terms():
    """PT with Example 12's radiation: 1.26 * Δ/(Δ+γ) * Rn / 2.45, from Daymet-style daylight-mean srad."""
    day_length = daylight_hours(RIO, 135) * 3600.0
    srad = 14.5e6 / day_length  # W/m² averaged over daylight giving Rs = 14.5 MJ/m²/day
    value = float(priestley_taylor(19.1, 25.1, srad, RIO, 0.0, 135, vapor_pressure=2100.0))
    slope, gamma = vapor_pressure_slope(22.1), psychrometric_constant(0.0)
    rn = net_radiation(19.1, 25.1, 14.5, extraterrestrial_radiation(RIO, 135), 0.0, 2.1)
    assert value == pytest.approx(1.26 * slope / (slope + gamma) * rn / 2.45, rel=1e-9)
    assert 2.5 < value < 3.0
    # a given day length replaces the astronomical one
    shorter = float(
        priestley_taylor(19.1, 25.1, srad, RIO, 0.0, 135, vapor_pressure=2100.0, day_length=0.5 * day_length)
    )
    assert shorter < value


def test_torch_and_numpy_agree_and_broadcast():
    g = np.random.default_rng(0)
    doy = np.arange(1, 366)[:, None]
    tmin = g.uniform(-10, 15, (365, 3))
    tmax = tmin + g.uniform(2, 15, (365, 3))
    lat = np.array([30.0, 45.0, 60.0])
    numpy_value = hargreaves(tmin, tmax, lat, doy)
    torch_value = hargreaves(torch.tensor(tmin), torch.tensor(tmax), torch.tensor(lat), torch.tensor(doy))
    assert isinstance(numpy_value, np.ndarray) and isinstance(torch_value, torch.Tensor)
    assert torch_value.dtype == torch.float64 and numpy_value.shape == (365, 3)
    np.testing.assert_allclose(torch_value.numpy(), numpy_value, rtol=1e-12)
    srad = g.uniform(50, 400, (365, 3))
    pt_np = priestley_taylor(tmin, tmax, srad, lat, 500.0, doy)
    pt_t = priestley_taylor(torch.tensor(tmin), torch.tensor(tmax), torch.tensor(srad), lat, 500.0, doy)
    np.testing.assert_allclose(pt_t.numpy(), pt_np, rtol=1e-12)
    assert (numpy_value >= 0).all() and (pt_np >= 0).all()


def test_pet_is_differentiable_in_torch():
    tmax = torch.tensor([20.0, 25.0, 30.0], dtype=torch.float64, requires_grad=True)
    tmin = torch.tensor([5.0, 12.0, 18.0], dtype=torch.float64)
    srad = torch.tensor([200.0, 250.0, 300.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: hargreaves(tmin, t, 40.0, 180), (tmax,))
    assert torch.autograd.gradcheck(lambda t, s: priestley_taylor(tmin, t, s, 40.0, 300.0, 180), (tmax, srad))


def test_polar_night_and_day_are_finite():
    assert float(extraterrestrial_radiation(80.0, 355)) == pytest.approx(0.0, abs=1e-9)
    assert float(daylight_hours(80.0, 172)) == pytest.approx(24.0)
    assert np.isfinite(priestley_taylor(-20.0, -10.0, 0.0, 80.0, 0.0, 355))


def read_daymet(path: Path) -> tuple[float, float, np.ndarray]:
    """Latitude, elevation and the table of a CAMELS Daymet forcing file."""
    lines = path.read_text().splitlines()
    latitude, elevation = float(lines[0]), float(lines[1])
    table = np.array([line.split() for line in lines[4:]], dtype=float)
    return latitude, elevation, table


def test_camels_daymet_sample_gives_plausible_annual_pet():
    files = sorted(CAMELS.glob("basin_mean_forcing/daymet/*/*_forcing_leap.txt"))
    if not files:
        pytest.skip(f"CAMELS sample not found: {CAMELS}")
    for path in files:
        latitude, elevation, t = read_daymet(path)
        year, month, day = t[:, 0].astype(int), t[:, 1].astype(int), t[:, 2].astype(int)
        dates = np.array([f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in zip(year, month, day)], dtype="datetime64[D]")
        doy = (dates - dates.astype("datetime64[Y]")).astype(int) + 1
        dayl, srad, tmax, tmin, vp = t[:, 4], t[:, 6], t[:, 8], t[:, 9], t[:, 10]
        first_year = year == year[0]
        pt = priestley_taylor(tmin, tmax, srad, latitude, elevation, doy, day_length=dayl, vapor_pressure=vp)
        hg = hargreaves(tmin, tmax, latitude, doy)
        # humid northeastern US basins: roughly 500-1100 mm/yr, peaking in summer
        for series in (pt, hg):
            annual = float(series[first_year].sum())
            assert 400.0 < annual < 1200.0, f"{path.name}: annual PET {annual:.0f} mm"
            july = series[first_year & (month == 7)].mean()
            january = series[first_year & (month == 1)].mean()
            assert july > 3.0 * january + 1.0
        assert np.corrcoef(pt, hg)[0, 1] > 0.8
