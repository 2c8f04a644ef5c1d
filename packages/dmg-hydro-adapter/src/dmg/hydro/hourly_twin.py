"""A deterministic hourly synthetic twin for the multi-timescale δHBV, with known parameters.

The generator, all seeded:

1. **Basin attributes**: as the daily twin (:mod:`dmg.hydro.twin`): latitude, elevation, drainage
   area, aridity, forest cover, soil depth and slope.
2. **Hourly weather**: a seasonal daily temperature with AR(1) anomalies and a diurnal cycle; rain
   in convective storms of one to six hours whose peak intensities (tens of mm/h) exceed the
   infiltration capacity of the drier soils; Hargreaves PET per day spread over the daylight hours.
3. **True parameters**: the parameters of the multi-timescale model (daily δHBV 2.0 spinning up
   hourly δHBV 2.0). A few vary with the standardised attributes ``z`` as
   ``low + sigmoid(W z + b) (high - low)`` (:data:`VARYING`); the others are one value shared by
   every basin, seeded or, for the lateral exchange, held low (:data:`FIXED`).
4. **Streamflow**: the model itself, :func:`dmg.hydro.multiscale.hbv_multi_timescale`, over the whole
   record: the daily model over the first ``spinup_days``, the hourly model from their end, with
   multiplicative log-normal noise. Streamflow over the spin-up days is missing (NaN).

True values are attributes ``true_<parameter>`` (e.g. ``true_coarse.FC``, ``true_fine.F0``), so
``dmg evaluate`` reports how well a trained multi-timescale model recovers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from dmg.core.components import Component, ComponentConfig
from dmg.core.data import ArrayDataset
from dmg.core.multiscale import MultiTimescale
from dmg.hydro.hbv import HBV2, HBV2Hourly
from dmg.hydro.metrics import HYDROLOGY_METRICS
from dmg.hydro.multiscale import hbv_multi_timescale
from dmg.hydro.pet import hargreaves
from dmg.hydro.twin import _attributes, _daily_temperature

VARYING = ("coarse.FC", "coarse.BETA", "coarse.K1", "coarse.PERC", "fine.F0")
"""Parameters that vary from basin to basin with the attributes; the others are one value for all."""

FIXED = {"coarse.RT": 0.05, "coarse.AC": 0.1}
"""Unit-interval values of parameters held low in every basin: little lateral exchange, so that no
basin loses all its water sideways."""

STORM_HOURS = (1, 6)
"""Shortest and longest storm (hours)."""
PEAK_MEAN = 30.0
"""Mean peak intensity of a storm in a basin of aridity 1 (mm/h): often above the infiltration capacity."""
PEAK_SHAPE = 1.5
"""Gamma shape of the peak intensities."""


class HBVHourlyTwinConfig(ComponentConfig):
    """Options of the hourly synthetic twin."""

    n_units: int = Field(16, ge=2, description="Number of synthetic basins.")
    start: str = Field("2000-01-01", description="First day (YYYY-MM-DD), from 00:00.")
    days: int = Field(500, ge=2, description="Length of the hourly record in days.")
    spinup_days: int = Field(
        365, ge=1, description="Days the daily model spins up before the hourly run that makes the streamflow."
    )
    storms_per_day: float = Field(0.06, gt=0, description="Mean number of storms per day in a basin of aridity 1.")
    noise: float = Field(0.02, ge=0.0, description="Standard deviation of the log-normal streamflow noise.")
    seed: int = Field(0, ge=0, description="Seed of every draw: the same seed gives bit-identical data.")


class HBVHourlyTwin(Component):
    """Synthetic basins whose hourly streamflow comes from the multi-timescale δHBV with known parameters.

    Parameters
    ----------
    config
        An :class:`HBVHourlyTwinConfig`, or a mapping of its options.
    **options
        Options of :class:`HBVHourlyTwinConfig` as keywords: ``n_units``, ``start``, ``days``,
        ``spinup_days``, ``storms_per_day``, ``noise`` and ``seed``.
    """

    Config: ClassVar[type[HBVHourlyTwinConfig]] = HBVHourlyTwinConfig
    default_metrics: ClassVar[tuple[str, ...]] = HYDROLOGY_METRICS
    """Metrics ``dmg evaluate`` reports when the run config lists none."""

    def __init__(self, config: HBVHourlyTwinConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        self.config = self.validate_config(config, options)

    def model(self) -> MultiTimescale:
        """The model that makes the streamflow (daily δHBV 2.0, then hourly δHBV 2.0)."""
        return hbv_multi_timescale(HBV2(), HBV2Hourly(), days=self.config.spinup_days)

    def load(self) -> ArrayDataset:
        """Generate the dataset (a few seconds for the defaults)."""
        c = self.config
        if c.spinup_days >= c.days:
            from dmg.core.errors import ConfigError

            raise ConfigError(f"data.dataset.spinup_days ({c.spinup_days}) must be shorter than days ({c.days})")
        rng = np.random.default_rng(c.seed)
        n_time = 24 * c.days
        dates = np.datetime64(c.start, "h") + np.arange(n_time) * np.timedelta64(1, "h")
        attrs = _attributes(rng, c.n_units)
        weather = _hourly_weather(rng, attrs, dates, c.storms_per_day)
        model = self.model()
        true = _true_parameters(rng, attrs, model)
        forcings = {
            name: torch.from_numpy(weather[var].T.astype(np.float32))
            for name, var in (("P", "prcp"), ("T", "tmean"), ("PET", "pet"))
        }
        params = {name: torch.from_numpy(v.astype(np.float32))[:, None] for name, v in true.items()}
        physics_attributes = {
            "upstream_area": torch.from_numpy(attrs["area"].astype(np.float32)),
            "elevation": torch.from_numpy(attrs["elevation"].astype(np.float32)),
        }
        with torch.no_grad():
            flow = model(forcings, params, attributes=physics_attributes)["Q"].numpy().T.astype(np.float64)
        noisy = flow * np.exp(c.noise * rng.standard_normal(flow.shape))  # NaN over the spin-up stays NaN
        attributes = {**attrs, **{f"true_{k}": v for k, v in true.items()}}
        units = {
            "prcp": "mm/h",
            "tmean": "°C",
            "pet": "mm/h",
            "streamflow": "mm/h",
            "lat": "degrees",
            "elevation": "m",
            "area": "km²",
            "soil_depth": "m",
            "slope": "m/km",
        }
        units.update({f"true_{p.name}": p.unit for p in model.parameter_spec if p.unit})
        return ArrayDataset.from_dicts(
            {**weather, "streamflow": noisy},
            [f"hourly{i:03d}" for i in range(c.n_units)],
            dates,
            attributes=attributes,
            units=units,
        )


def _hourly_weather(
    rng: np.random.Generator, attrs: dict[str, np.ndarray], dates: np.ndarray, storms_per_day: float
) -> dict[str, np.ndarray]:
    """Hourly temperature (°C), storm rainfall (mm/h) and PET (mm/h), each ``[unit, hour]``."""
    n_units, n_time = attrs["lat"].size, dates.size
    days = dates[::24].astype("datetime64[D]")
    doy = (days - days.astype("datetime64[Y]")).astype(int) + 1
    daily_t, spread = _daily_temperature(rng, attrs, doy)
    hour = np.arange(24)
    diurnal = np.sin(2.0 * np.pi * (hour - 9) / 24.0)  # warmest mid-afternoon
    tmean = (daily_t[:, :, None] + 0.5 * spread[:, :, None] * diurnal[None, None, :]).reshape(n_units, n_time)
    daily_pet = hargreaves(daily_t - spread / 2.0, daily_t + spread / 2.0, attrs["lat"][:, None], doy[None, :])
    daylight = np.clip(np.sin(np.pi * (hour - 6) / 12.0), 0.0, None)
    pet = (daily_pet[:, :, None] * (daylight / daylight.sum())[None, None, :]).reshape(n_units, n_time)
    # storms: arrivals per hour, a duration of STORM_HOURS and a peak intensity with a heavy tail
    rate = storms_per_day / 24.0 / np.sqrt(attrs["aridity"])
    starts = rng.random((n_units, n_time)) < rate[:, None]
    durations = rng.integers(STORM_HOURS[0], STORM_HOURS[1] + 1, (n_units, n_time))
    peaks = rng.gamma(PEAK_SHAPE, PEAK_MEAN / np.sqrt(attrs["aridity"])[:, None] / PEAK_SHAPE, (n_units, n_time))
    prcp = np.zeros((n_units, n_time))
    for unit, t in zip(*np.nonzero(starts)):
        length = int(durations[unit, t])
        shape = np.sin(np.pi * (np.arange(length) + 0.5) / length)  # rises and falls within the storm
        stop = min(t + length, n_time)
        prcp[unit, t:stop] += peaks[unit, t] * shape[: stop - t]
    return {"prcp": prcp, "tmean": tmean, "pet": pet}


def _true_parameters(
    rng: np.random.Generator, attrs: dict[str, np.ndarray], model: MultiTimescale
) -> dict[str, np.ndarray]:
    """Each parameter per unit: :data:`VARYING` ones smooth functions of the attributes, the others constant."""
    z = np.stack([(v - v.mean()) / v.std() for v in attrs.values()], axis=1)  # [unit, attribute]
    n_units = z.shape[0]
    fields = {}
    for p in model.parameter_spec:
        weights = rng.normal(0.0, 0.8, z.shape[1])
        bias = rng.normal(0.0, 0.4)
        constant = rng.uniform(0.2, 0.8)
        if p.name in VARYING:
            u = 1.0 / (1.0 + np.exp(-(z @ weights + bias)))
        else:
            u = np.full(n_units, FIXED.get(p.name, constant))
        fields[p.name] = p.low + u * (p.high - p.low)
    return fields
