"""Potential evapotranspiration from temperature and radiation (FAO-56), for torch or numpy.

Equation numbers refer to Allen, Pereira, Raes and Smith (1998), *Crop evapotranspiration*,
FAO Irrigation and Drainage Paper 56.  Every function takes torch tensors or numpy arrays
(or Python numbers) that broadcast against each other and returns the same kind: pass
``day_of_year[:, None]`` against ``[time, unit]`` temperatures and ``[unit]`` latitudes.
Torch inputs keep their dtype and device and are differentiable.

Priestley–Taylor from CAMELS (Daymet) forcings
    Daymet's ``srad`` (W/m²) is the shortwave flux *averaged over the daylight period*, not
    over 24 hours, and ``dayl`` (s) is the day length.  :func:`priestley_taylor` therefore
    takes the daily total ``Rs = srad * dayl`` (MJ/m²/day after dividing by 1e6); without
    ``day_length`` it uses the astronomical daylight hours ``N`` of eq. 34.  Daymet's ``vp``
    (Pa) gives the actual vapour pressure; without it, ``e°(tmin)`` (eq. 48).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray | float | int

SOLAR_CONSTANT = 0.0820
"""G_sc, MJ/m²/min."""
LATENT_HEAT = 2.45
"""λ, MJ/kg: 1 mm/day of evaporation takes 2.45 MJ/m²/day (1/λ = 0.408)."""
STEFAN_BOLTZMANN = 4.903e-9
"""σ, MJ/K⁴/m²/day."""
ALBEDO = 0.23
"""Albedo of the grass reference surface."""
PRIESTLEY_TAYLOR_ALPHA = 1.26
"""Priestley–Taylor coefficient for wet surfaces."""
HARGREAVES_COEFFICIENT = 0.0023
HARGREAVES_OFFSET = 17.8
"""°C added to the mean temperature in the Hargreaves equation."""
RELATIVE_RADIATION_BOUNDS = (0.3, 1.0)
"""Bounds of the relative shortwave radiation Rs/Rso in eq. 39 (ASCE-EWRI 2005)."""


class _Namespace:
    """The few array functions used here, for torch or numpy."""

    def __init__(self, torch_like: torch.Tensor | None) -> None:
        self.torch = torch_like is not None
        self.like = torch_like

    def asarray(self, x: ArrayLike) -> Any:
        if self.torch:
            dtype = self.like.dtype if self.like.is_floating_point() else torch.get_default_dtype()
            return torch.as_tensor(x, dtype=dtype, device=self.like.device)
        return np.asarray(x, dtype=np.float64)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch if self.torch else np, name)

    def clip(self, x: Any, low: float | None, high: float | None) -> Any:
        return torch.clamp(x, low, high) if self.torch else np.clip(x, low, high)


def _namespace(*values: ArrayLike) -> _Namespace:
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    floating = [t for t in tensors if t.is_floating_point()]
    return _Namespace((floating or tensors)[0] if tensors else None)


def _sun(latitude: ArrayLike, day_of_year: ArrayLike) -> tuple[_Namespace, Any, Any, Any, Any]:
    """Latitude φ (rad), inverse relative distance dr (eq. 23), declination δ (eq. 24), sunset angle ωs (eq. 25)."""
    xp = _namespace(latitude, day_of_year)
    phi = xp.asarray(latitude) * (math.pi / 180.0)
    angle = (2.0 * math.pi / 365.0) * xp.asarray(day_of_year)
    dr = 1.0 + 0.033 * xp.cos(angle)
    delta = 0.409 * xp.sin(angle - 1.39)
    # Clipping covers polar day (ωs = π) and night (ωs = 0).
    omega = xp.arccos(xp.clip(-xp.tan(phi) * xp.tan(delta), -1.0, 1.0))
    return xp, phi, dr, delta, omega


def extraterrestrial_radiation(latitude: ArrayLike, day_of_year: ArrayLike) -> ArrayLike:
    """Daily extraterrestrial radiation Ra (MJ/m²/day), FAO-56 eq. 21.

    Parameters
    ----------
    latitude
        Degrees, positive north.
    day_of_year
        Julian day, 1 (1 January) to 365 or 366.
    """
    xp, phi, dr, delta, omega = _sun(latitude, day_of_year)
    return (
        (24.0 * 60.0 / math.pi)
        * SOLAR_CONSTANT
        * dr
        * (omega * xp.sin(phi) * xp.sin(delta) + xp.cos(phi) * xp.cos(delta) * xp.sin(omega))
    )


def daylight_hours(latitude: ArrayLike, day_of_year: ArrayLike) -> ArrayLike:
    """Astronomical day length N (hours), FAO-56 eq. 34; latitude in degrees."""
    _, _, _, _, omega = _sun(latitude, day_of_year)
    return (24.0 / math.pi) * omega


def saturation_vapor_pressure(temperature: ArrayLike) -> ArrayLike:
    """Saturation vapour pressure e°(T) (kPa) at air temperature ``temperature`` (°C), FAO-56 eq. 11."""
    xp = _namespace(temperature)
    t = xp.asarray(temperature)
    return 0.6108 * xp.exp(17.27 * t / (t + 237.3))


def vapor_pressure_slope(temperature: ArrayLike) -> ArrayLike:
    """Slope Δ of the saturation vapour pressure curve (kPa/°C) at ``temperature`` (°C), FAO-56 eq. 13."""
    xp = _namespace(temperature)
    t = xp.asarray(temperature)
    return 4098.0 * saturation_vapor_pressure(t) / (t + 237.3) ** 2


def psychrometric_constant(elevation: ArrayLike) -> ArrayLike:
    """Psychrometric constant γ (kPa/°C) at ``elevation`` (m above sea level), FAO-56 eqs. 7-8."""
    xp = _namespace(elevation)
    pressure = 101.3 * ((293.0 - 0.0065 * xp.asarray(elevation)) / 293.0) ** 5.26
    return 0.665e-3 * pressure


def net_radiation(
    tmin: ArrayLike,
    tmax: ArrayLike,
    shortwave: ArrayLike,
    extraterrestrial: ArrayLike,
    elevation: ArrayLike,
    actual_vapor_pressure: ArrayLike,
    *,
    albedo: float = ALBEDO,
) -> ArrayLike:
    """Net radiation Rn = Rns - Rnl (MJ/m²/day), FAO-56 eqs. 37-40.

    Parameters
    ----------
    tmin, tmax
        Daily minimum and maximum air temperature (°C).
    shortwave
        Incoming shortwave radiation Rs (MJ/m²/day).
    extraterrestrial
        Extraterrestrial radiation Ra (MJ/m²/day), e.g. :func:`extraterrestrial_radiation`.
    elevation
        Elevation (m) for the clear-sky radiation Rso = (0.75 + 2e-5 z) Ra (eq. 37).
    actual_vapor_pressure
        Actual vapour pressure ea (kPa).
    albedo
        Surface albedo (0.23 for the grass reference).
    """
    xp = _namespace(tmin, tmax, shortwave, extraterrestrial, elevation, actual_vapor_pressure)
    tmin, tmax = xp.asarray(tmin), xp.asarray(tmax)
    rs, ra = xp.asarray(shortwave), xp.asarray(extraterrestrial)
    clear_sky = (0.75 + 2e-5 * xp.asarray(elevation)) * ra
    relative = xp.clip(rs / xp.clip(clear_sky, 1e-6, None), *RELATIVE_RADIATION_BOUNDS)
    emission = STEFAN_BOLTZMANN * ((tmax + 273.16) ** 4 + (tmin + 273.16) ** 4) / 2.0
    humidity = 0.34 - 0.14 * xp.sqrt(xp.clip(xp.asarray(actual_vapor_pressure), 0.0, None))
    longwave = emission * humidity * (1.35 * relative - 0.35)
    return (1.0 - albedo) * rs - longwave


def hargreaves(tmin: ArrayLike, tmax: ArrayLike, latitude: ArrayLike, day_of_year: ArrayLike) -> ArrayLike:
    """Reference evapotranspiration by Hargreaves (mm/day), FAO-56 eq. 52.

    ``ET0 = 0.0023 (Tmean + 17.8) sqrt(Tmax - Tmin) Ra / λ`` with ``Tmean = (Tmax + Tmin) / 2``
    and Ra from :func:`extraterrestrial_radiation`; negative values (very cold days) are set
    to zero and ``Tmax < Tmin`` counts as no temperature range.

    Parameters
    ----------
    tmin, tmax
        Daily minimum and maximum air temperature (°C).
    latitude
        Degrees, positive north.
    day_of_year
        Julian day, 1 to 366.

    Returns
    -------
    Potential evapotranspiration in mm/day, torch if any input is a tensor, else numpy.
    """
    xp = _namespace(tmin, tmax, latitude, day_of_year)
    tmin, tmax = xp.asarray(tmin), xp.asarray(tmax)
    ra = extraterrestrial_radiation(xp.asarray(latitude), xp.asarray(day_of_year))
    spread = xp.sqrt(xp.clip(tmax - tmin, 0.0, None))
    et0 = HARGREAVES_COEFFICIENT * ((tmax + tmin) / 2.0 + HARGREAVES_OFFSET) * spread * ra / LATENT_HEAT
    return xp.clip(et0, 0.0, None)


def priestley_taylor(
    tmin: ArrayLike,
    tmax: ArrayLike,
    srad: ArrayLike,
    latitude: ArrayLike,
    elevation: ArrayLike,
    day_of_year: ArrayLike,
    *,
    day_length: ArrayLike | None = None,
    vapor_pressure: ArrayLike | None = None,
    albedo: float = ALBEDO,
    alpha: float = PRIESTLEY_TAYLOR_ALPHA,
) -> ArrayLike:
    """Potential evapotranspiration by Priestley and Taylor (1972) from CAMELS/Daymet forcings (mm/day).

    ``PET = alpha * Δ / (Δ + γ) * Rn / λ`` with Δ at the mean temperature (eq. 13), γ from the
    elevation (eqs. 7-8), Rn from :func:`net_radiation` and no soil heat flux (daily step);
    negative values are set to zero.

    Parameters
    ----------
    tmin, tmax
        Daily minimum and maximum air temperature (°C).
    srad
        Shortwave radiation (W/m²) averaged over the *daylight* period, as Daymet's ``srad``.
    latitude
        Degrees, positive north.
    elevation
        Metres above sea level.
    day_of_year
        Julian day, 1 to 366.
    day_length
        Daylight duration (s), as Daymet's ``dayl``; default: astronomical daylight hours (eq. 34).
    vapor_pressure
        Actual vapour pressure (Pa), as Daymet's ``vp``; default: e°(tmin) (eq. 48).
    albedo
        Surface albedo (0.23 for the grass reference).
    alpha
        Priestley–Taylor coefficient.
    """
    xp = _namespace(tmin, tmax, srad, latitude, elevation, day_of_year, day_length, vapor_pressure)
    tmin, tmax, srad = xp.asarray(tmin), xp.asarray(tmax), xp.asarray(srad)
    latitude, day_of_year = xp.asarray(latitude), xp.asarray(day_of_year)
    seconds = daylight_hours(latitude, day_of_year) * 3600.0 if day_length is None else xp.asarray(day_length)
    shortwave = srad * seconds * 1e-6
    ea = saturation_vapor_pressure(tmin) if vapor_pressure is None else xp.asarray(vapor_pressure) * 1e-3
    rn = net_radiation(
        tmin, tmax, shortwave, extraterrestrial_radiation(latitude, day_of_year), elevation, ea, albedo=albedo
    )
    slope = vapor_pressure_slope((tmax + tmin) / 2.0)
    gamma = psychrometric_constant(xp.asarray(elevation))
    return xp.clip(alpha * slope / (slope + gamma) * rn / LATENT_HEAT, 0.0, None)
