"""Realistic inputs for checking HBV-type models with :mod:`dmg.core.testing`.

The shared test kit draws forcings uniformly from their typical ranges; snow, melt and
dry spells then hardly occur.  :func:`realistic_case` gives a seasonal climate instead::

    from dmg.core.testing import check_physics_model
    from dmg.hydro.hbv.testing import realistic_case

    model = HBV(nmul=2)
    check_physics_model(model, realistic_case(model))

:func:`realistic_hourly_case` does the same for the hourly variants, with storms intense enough
to exceed the infiltration capacity.
"""

from __future__ import annotations

import math

import torch

from dmg.core import PhysicsModel
from dmg.core.testing import Case, make_case
from dmg.hydro.pet import hargreaves

EXAMPLE_ATTRIBUTES = {
    "upstream_area": torch.tensor([50.0, 800.0, 2400.0, 3000.0, 12000.0]),
    "elevation": torch.tensor([300.0, 1200.0, 2100.0, 500.0, 1800.0]),
}
"""Five units spanning both lateral-exchange regimes of δHBV 2.0 (below and above 2500 km²)
and both sides of its 2000 m snow-threshold elevation."""


def seasonal_weather(
    n_time: int,
    n_units: int,
    *,
    seed: int = 0,
    start_day: int = 1,
    latitude: float = 45.0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Daily forcings of a mid-latitude climate with snowy winters, ``[time, unit]`` each.

    ``T`` (°C) follows a seasonal cycle (about -6 °C in January to 22 °C in July) shifted by up
    to ±2 °C between units, plus 3 °C daily noise; ``P`` (mm/day) falls on 35 % of days with
    exponential depths of mean 8 mm; ``PET`` (mm/day) is Hargreaves with a 10 °C daily range.

    Parameters
    ----------
    n_time, n_units
        Days and units.
    seed
        Seed of the weather generator.
    start_day
        Day of the year of the first step (1 = 1 January).
    latitude
        Degrees north, for the PET.
    dtype
        Floating type of the tensors.
    """
    g = torch.Generator().manual_seed(seed)
    day = torch.arange(start_day, start_day + n_time, dtype=torch.float64)[:, None]
    doy = (day - 1) % 365 + 1
    offset = torch.linspace(-2.0, 2.0, n_units, dtype=torch.float64)
    tmean = 8.0 + 14.0 * torch.sin(2 * math.pi * (doy - 110.0) / 365.0) + offset
    tmean = tmean + 3.0 * torch.randn(n_time, n_units, generator=g, dtype=torch.float64)
    wet = torch.rand(n_time, n_units, generator=g, dtype=torch.float64) < 0.35
    depth = -8.0 * torch.log(torch.rand(n_time, n_units, generator=g, dtype=torch.float64))
    pet = hargreaves(tmean - 5.0, tmean + 5.0, latitude, doy)
    return {"P": (wet * depth).to(dtype), "T": tmean.to(dtype), "PET": pet.to(dtype)}


def realistic_case(
    model: PhysicsModel,
    n_time: int = 120,
    n_units: int = 5,
    *,
    seed: int = 0,
    u_range: tuple[float, float] = (0.1, 0.9),
    dtype: torch.dtype = torch.float32,
) -> Case:
    """A :class:`~dmg.core.testing.Case` with :func:`seasonal_weather` forcings.

    Parameters are drawn inside their bounds (``u`` uniform in ``u_range``); attributes come
    from :data:`EXAMPLE_ATTRIBUTES` (at most five units when the model reads them).
    """
    case = make_case(model, n_time=n_time, n_units=n_units, seed=seed, u_range=u_range, dtype=dtype)
    case.forcings = seasonal_weather(n_time, n_units, seed=seed, dtype=dtype)
    if model.attribute_names:
        if n_units > len(EXAMPLE_ATTRIBUTES["upstream_area"]):
            raise ValueError(f"realistic_case has attributes for at most 5 units, asked for {n_units}")
        case.attributes = {k: v[:n_units].to(dtype) for k, v in EXAMPLE_ATTRIBUTES.items()}
    return case


def hourly_weather(
    n_time: int,
    n_units: int,
    *,
    seed: int = 0,
    start_day: int = 90,
    latitude: float = 45.0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Hourly forcings of a mid-latitude spring with convective storms, ``[time, unit]`` each.

    ``T`` (°C) follows the season from ``start_day`` with a daily cycle of ±5 °C (warmest at
    15:00), shifted by up to ±6 °C between units so that the coldest unit sees snow; ``P`` (mm/h)
    falls in storms that start in 1.5 % of hours and last 1 to 6 hours, with exponential
    intensities of mean 2 mm/h; one wet hour in twenty is a burst of mean 20 mm/h (beyond the
    smallest infiltration capacity, 5 mm/h), capped at 80 mm/h; ``PET`` (mm/h) is the daily Hargreaves value spread over
    07:00 to 17:00 as ``sin(π (h - 6) / 12)``.

    Parameters
    ----------
    n_time, n_units
        Hours and units; hour 0 is 00:00 of ``start_day``.
    seed
        Seed of the weather generator.
    start_day
        Day of the year of the first hour (1 = 1 January).
    latitude
        Degrees north, for the PET.
    dtype
        Floating type of the tensors.
    """
    g = torch.Generator().manual_seed(seed)
    hour = torch.arange(n_time, dtype=torch.float64)[:, None]
    clock = hour % 24
    doy = (start_day - 1 + torch.div(hour, 24, rounding_mode="floor")) % 365 + 1
    offset = torch.linspace(-6.0, 6.0, n_units, dtype=torch.float64)
    daily_mean = 8.0 + 14.0 * torch.sin(2 * math.pi * (doy - 110.0) / 365.0) + offset
    tmean = daily_mean + 5.0 * torch.cos(2 * math.pi * (clock - 15.0) / 24.0)
    starts = torch.rand(n_time, n_units, generator=g, dtype=torch.float64) < 0.015
    length = torch.randint(1, 7, (n_time, n_units), generator=g)
    raining = torch.zeros(n_time, n_units, dtype=torch.bool)
    for t, u in starts.nonzero().tolist():
        raining[t : t + int(length[t, u]), u] = True
    burst = torch.rand(n_time, n_units, generator=g, dtype=torch.float64) < 0.05
    mean = torch.where(burst, 20.0, 2.0)
    depth = (-mean * torch.log(torch.rand(n_time, n_units, generator=g, dtype=torch.float64))).clamp(max=80.0)
    pet_day = hargreaves(daily_mean - 5.0, daily_mean + 5.0, latitude, doy)
    pet = pet_day * _daylight_share(clock)
    return {"P": (raining * depth).to(dtype), "T": tmean.to(dtype), "PET": pet.to(dtype)}


def realistic_hourly_case(
    model: PhysicsModel,
    n_time: int = 96,
    n_units: int = 5,
    *,
    seed: int = 0,
    u_range: tuple[float, float] = (0.1, 0.9),
    dtype: torch.dtype = torch.float32,
) -> Case:
    """A :class:`~dmg.core.testing.Case` with :func:`hourly_weather` forcings (hourly variants).

    Parameters are drawn inside their bounds (``u`` uniform in ``u_range``); attributes come from
    :data:`EXAMPLE_ATTRIBUTES` (at most five units).
    """
    case = make_case(model, n_time=n_time, n_units=n_units, seed=seed, u_range=u_range, dtype=dtype)
    case.forcings = hourly_weather(n_time, n_units, seed=seed, dtype=dtype)
    if model.attribute_names:
        if n_units > len(EXAMPLE_ATTRIBUTES["upstream_area"]):
            raise ValueError(f"realistic_hourly_case has attributes for at most 5 units, asked for {n_units}")
        case.attributes = {k: v[:n_units].to(dtype) for k, v in EXAMPLE_ATTRIBUTES.items()}
    return case


def _daylight_share(clock: torch.Tensor) -> torch.Tensor:
    """Share of a day's PET in each hour of the clock (0 to 23): ``sin(π (h - 6) / 12)`` from 07:00
    to 17:00, zero at night, summing to one over a day."""

    def weight(hour: torch.Tensor) -> torch.Tensor:
        return torch.sin(math.pi * (hour - 6.0) / 12.0) * ((hour >= 7) & (hour <= 17))

    return weight(clock) / weight(torch.arange(24, dtype=clock.dtype)).sum()
