"""A deterministic synthetic twin of a set of basins, for learning δHBV with known answers.

The generator chains four steps, all seeded:

1. **Basin attributes** — latitude, elevation, drainage area, aridity, forest cover, soil depth and
   slope, drawn independently per basin.
2. **Weather** — a seasonal temperature cycle shifted by latitude and elevation with AR(1)
   anomalies; precipitation as a two-state Markov chain of wet days with gamma-distributed amounts
   (wetter basins for lower aridity); Hargreaves PET from the daily extremes.
3. **True parameters** — every HBV parameter (and the two routing parameters) as a smooth function of
   the standardised attributes, ``u = sigmoid(W z + b)`` mapped into the parameter's bounds, with fixed
   seeded weights ``W``.
4. **Streamflow** — δHBV 1.0 (one component) followed by gamma unit-hydrograph routing, with
   multiplicative log-normal observation noise.

The true physical parameters are stored as attributes named ``true_<PARAM>`` (e.g. ``true_FC``), so
``dmg evaluate`` reports how well a trained model recovers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from dmg.core import Chain
from dmg.core.components import Component, ComponentConfig
from dmg.core.data import ArrayDataset
from dmg.hydro.hbv import HBV
from dmg.hydro.metrics import HYDROLOGY_METRICS
from dmg.hydro.pet import hargreaves
from dmg.hydro.routing import GammaRouting

ATTRIBUTES = ("lat", "elevation", "area", "aridity", "forest", "soil_depth", "slope")
"""Synthetic basin attributes (degrees N, m, km², -, fraction, m, m/km)."""


class HBVTwinConfig(ComponentConfig):
    """Options of the synthetic twin."""

    n_units: int = Field(48, ge=2, description="Number of synthetic basins.")
    start: str = Field("2000-01-01", description="First date (YYYY-MM-DD).")
    years: int = Field(4, ge=1, description="Length of the series in years of 365 days.")
    noise: float = Field(0.05, ge=0.0, description="Standard deviation of the log-normal streamflow noise.")
    seed: int = Field(0, ge=0, description="Seed of every draw: the same seed gives bit-identical data.")


class HBVTwin(Component):
    """Synthetic basins whose streamflow comes from δHBV 1.0 with known parameter fields.

    Parameters
    ----------
    config
        An :class:`HBVTwinConfig`, or a mapping of its options.
    **options
        Options of :class:`HBVTwinConfig` as keywords: ``n_units``, ``start`` (YYYY-MM-DD),
        ``years``, ``noise`` (standard deviation of the log-normal streamflow noise) and ``seed``.
    """

    Config: ClassVar[type[HBVTwinConfig]] = HBVTwinConfig
    default_metrics: ClassVar[tuple[str, ...]] = HYDROLOGY_METRICS
    """Metrics ``dmg evaluate`` reports when the run config lists none."""

    def __init__(self, config: HBVTwinConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        self.config = self.validate_config(config, options)

    def load(self) -> ArrayDataset:
        """Generate the dataset (about a second for the defaults)."""
        c = self.config
        rng = np.random.default_rng(c.seed)
        n_units, n_time = c.n_units, 365 * c.years
        dates = np.datetime64(c.start, "D") + np.arange(n_time)
        attrs = _attributes(rng, n_units)
        weather = _weather(rng, attrs, dates)
        runoff = HBV(nmul=1)
        model = Chain(runoff=runoff, routing=GammaRouting())
        true = _parameter_fields(rng, attrs, model)
        forcings = {
            "P": torch.from_numpy(weather["prcp"].T.copy()),
            "T": torch.from_numpy(weather["tmean"].T.copy()),
            "PET": torch.from_numpy(weather["pet"].T.copy()),
        }
        params = {
            name: torch.from_numpy(v.astype(np.float32))[:, None]
            if model.parameter_spec[name].per_component
            else torch.from_numpy(v.astype(np.float32))
            for name, v in true.items()
        }
        with torch.no_grad():
            flow = model(forcings, params)["Q"].numpy().T.astype(np.float64)
        noisy = flow * np.exp(c.noise * rng.standard_normal(flow.shape))
        variables = {**weather, "streamflow": noisy}
        attributes = {**attrs, **{f"true_{k}": v for k, v in true.items()}}
        units = {
            "prcp": "mm/day",
            "tmean": "°C",
            "tmin": "°C",
            "tmax": "°C",
            "pet": "mm/day",
            "streamflow": "mm/day",
            "lat": "degrees",
            "elevation": "m",
            "soil_depth": "m",
            "slope": "m/km",
        }
        units.update({f"true_{p.name}": p.unit for p in model.parameter_spec if p.unit})
        return ArrayDataset.from_dicts(
            variables, [f"twin{i:04d}" for i in range(n_units)], dates, attributes=attributes, units=units
        )


def _attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "lat": rng.uniform(30.0, 50.0, n),
        "elevation": rng.uniform(50.0, 2500.0, n),
        "area": np.exp(rng.uniform(np.log(20.0), np.log(5000.0), n)),
        "aridity": rng.uniform(0.4, 2.5, n),
        "forest": rng.uniform(0.0, 1.0, n),
        "soil_depth": rng.uniform(0.3, 2.5, n),
        "slope": rng.uniform(1.0, 150.0, n),
    }


def _daily_temperature(
    rng: np.random.Generator, attrs: dict[str, np.ndarray], doy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Daily mean temperature and daily temperature range (°C), each ``[unit, day]``.

    Parameters
    ----------
    rng
        Draws the daily anomalies (an AR(1) process), then the ranges.
    attrs
        Basin attributes: ``lat`` (degrees N) and ``elevation`` (m) set each basin's mean and
        seasonal amplitude.
    doy
        Day of the year of each day (1-366).

    Returns
    -------
    tuple
        ``tmean`` and ``spread`` (``tmax - tmin``).
    """
    n_units, n_days = attrs["lat"].size, doy.size
    season = np.cos(2.0 * np.pi * (doy - 200) / 365.0)[None, :]
    mean_t = 24.0 - 0.55 * (attrs["lat"] - 30.0) - 0.0065 * attrs["elevation"]
    amplitude = 6.0 + 0.35 * (attrs["lat"] - 30.0)
    anomaly = np.zeros((n_units, n_days))
    shocks = rng.standard_normal((n_units, n_days)) * 2.5
    for d in range(1, n_days):
        anomaly[:, d] = 0.7 * anomaly[:, d - 1] + shocks[:, d]
    tmean = mean_t[:, None] + amplitude[:, None] * season + anomaly
    spread = 8.0 + 4.0 * rng.random((n_units, n_days))
    return tmean, spread


def _weather(rng: np.random.Generator, attrs: dict[str, np.ndarray], dates: np.ndarray) -> dict[str, np.ndarray]:
    n_units, n_time = attrs["lat"].size, dates.size
    doy = (dates - dates.astype("datetime64[Y]")).astype(int) + 1
    tmean, spread = _daily_temperature(rng, attrs, doy)
    tmin, tmax = tmean - spread / 2.0, tmean + spread / 2.0
    # wet-day Markov chain: drier basins (higher aridity) have fewer and smaller events
    p_wet_after_dry = np.clip(0.35 - 0.08 * attrs["aridity"], 0.08, 0.5)[:, None]
    p_wet_after_wet = np.clip(0.65 - 0.08 * attrs["aridity"], 0.3, 0.8)[:, None]
    u = rng.random((n_units, n_time))
    wet = np.zeros((n_units, n_time), dtype=bool)
    for t in range(1, n_time):
        p = np.where(wet[:, t - 1], p_wet_after_wet[:, 0], p_wet_after_dry[:, 0])
        wet[:, t] = u[:, t] < p
    mean_amount = (9.0 / attrs["aridity"] ** 0.5)[:, None]
    prcp = wet * rng.gamma(0.8, mean_amount / 0.8, (n_units, n_time))
    pet = hargreaves(tmin, tmax, attrs["lat"][:, None], doy[None, :])
    return {"prcp": prcp, "tmean": tmean, "tmin": tmin, "tmax": tmax, "pet": pet}


def _parameter_fields(rng: np.random.Generator, attrs: dict[str, np.ndarray], model: Chain) -> dict[str, np.ndarray]:
    """Each parameter as ``low + sigmoid(W z + b) (high - low)`` of the standardised attributes ``z``."""
    z = np.stack([(v - v.mean()) / v.std() for v in attrs.values()], axis=1)  # [unit, attribute]
    fields = {}
    for p in model.parameter_spec:
        weights = rng.normal(0.0, 0.6, z.shape[1])
        bias = rng.normal(0.0, 0.5)
        u = 1.0 / (1.0 + np.exp(-(z @ weights + bias)))
        fields[p.name] = p.low + u * (p.high - p.low)
    return fields
