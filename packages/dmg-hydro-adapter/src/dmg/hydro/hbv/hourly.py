"""Hourly δHBV: :class:`HBV2Hourly` (δHBV 2.0 hourly) and :class:`HBV21Hourly` (δHBV 2.1 hourly).

Both run the δHBV 2.0 step of :class:`~dmg.hydro.hbv.HBV2` with a step of one hour
(``time_step = 1/24`` day): forcings come in mm per hour and are turned into rates per day,
parameters keep their daily units, every rate is applied as ``rate * dt`` and fluxes are
reported in mm per hour.  What the hourly variants change:

* guardrails at the start of every step: ``SP, MW >= 0`` and ``SM, SUZ, SLZ`` (and the cascade
  stores) ``>= near_zero``;
* the water these floors add (and the floors of soil moisture after evapotranspiration and of the
  lower zone after capillary rise) is reported as ``floors``, so that the mass balance closes;
* the snow threshold of high units (4 °C from 2000 m) is on by default;
* rain and meltwater ``W`` (mm/day) enter the soil through an infiltration-excess block, and the
  excess ``IE`` runs off: straight to the runoff (2.0 hourly) or through two linear stores
  (2.1 hourly).

2.0 hourly (parameters ``F0``, ``FMIN``, ``ALPHA``)::

    s = clip(SM / FC, 0, 0.99);   capacity = FMIN F0 + (F0 - FMIN F0) (1 - s)^ALPHA
    INF = min(W, capacity);       IE = max(W - capacity, 0)
    recharge = INF clip((SM / FC)^BETA, 0, 1);   SM += (INF - recharge) dt;   Q = Q0 + Q1 + Q2 + IE

2.1 hourly (parameters ``F0``, ``ALPHA``, ``KS``; ``K0`` up to 12 /day)::

    s = clip(SM / FC, 0, 1 - 1e-4);   fsat = s^BETA;   recharge = W fsat
    d = clip((W / F0)^(1 / ALPHA), 0, 1)
    IE = max((1 - fsat) (W d - F0 d^(ALPHA + 1) / (ALPHA + 1)), 0);   SM += max(W (1 - fsat) - IE, 0) dt
    SIE1 += IE dt;   q12 = 2 KS SIE1;   SIE1 -= q12 dt
    SIE2 += q12 dt;  QIE = 2 KS SIE2;   SIE2 -= QIE dt;          Q = Q0 + Q1 + Q2 + QIE

Neither routes its runoff: chain :class:`dmg.hydro.routing.HourlyGammaRouting` for the unit
hydrograph and :class:`dmg.hydro.gauges.GaugeRouting` for streamflow at gauges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

import torch

from dmg.core import MassBalance, Parameter, State, Variable
from dmg.core.signature import TensorDict
from dmg.hydro.hbv.base import _TINY_RATIO, _per_day, _per_step, _soil_wetness
from dmg.hydro.hbv.models import HBV2, HBV2Config
from dmg.hydro.hbv.parameters import (
    AC,
    ALPHA_DECLINE,
    ALPHA_SPREAD,
    BETAET,
    CAPILLARY_OUTPUT,
    CASCADE_OUTPUT,
    CASCADE_STATES,
    CORE_PARAMETERS,
    DIAGNOSTIC_OUTPUTS,
    F0,
    FLOORS_OUTPUT,
    FLOW_OUTPUTS,
    FMIN,
    HOURLY_FORCINGS,
    INFILTRATION_EXCESS_OUTPUT,
    K0_HOURLY,
    KS,
    LATERAL_OUTPUT,
    RT,
    STATES,
    C,
)

HOUR = 1 / 24
"""One hour in days, the step of the hourly variants (used in float32 arithmetic as published)."""

DRY_LIMIT_2_0 = 0.99
"""Largest soil wetness ``SM / FC`` at which 2.0 hourly evaluates its infiltration capacity."""
WET_LIMIT_2_1 = 1.0 - 1e-4
"""Largest soil wetness ``SM / FC`` of 2.1 hourly: some water always enters the soil."""


def _total_runoff(variables: tuple[Variable, ...], terms: str) -> tuple[Variable, ...]:
    """The declarations with ``Q`` described as the sum ``terms``."""
    return tuple(
        replace(v, description=f"total runoff {terms}, before routing") if v.name == "Q" else v for v in variables
    )


def _hourly(variables: tuple[Variable, ...]) -> tuple[Variable, ...]:
    """Daily flux declarations with their unit per hour (mm/day -> mm/h, typical range / 24)."""
    return tuple(
        replace(v, unit="mm/h", typical_range=(v.typical_range[0] / 24, v.typical_range[1] / 24))
        if v.unit == "mm/day"
        else v
        for v in variables
    )


class HBVHourlyConfig(HBV2Config):
    """Options of the hourly variants (those of :class:`~dmg.hydro.hbv.HBV2Config`).

    The snow threshold of high units (``elevation_threshold``) is on, as published; warm-up is
    inline only.
    """


class _HBVHourly(HBV2):
    """δHBV 2.0 run hourly, with start-of-step guardrails and an infiltration-excess block."""

    Config = HBVHourlyConfig
    time_step = HOUR
    forcings = HOURLY_FORCINGS
    outputs: ClassVar[tuple[Variable, ...]] = _hourly(
        FLOW_OUTPUTS
        + DIAGNOSTIC_OUTPUTS
        + (CAPILLARY_OUTPUT, LATERAL_OUTPUT, INFILTRATION_EXCESS_OUTPUT, FLOORS_OUTPUT)
    )
    mass_balance = MassBalance(
        inputs=("P", "lateral", "floors"), outputs=("AET", "Q"), storages=("SP", "MW", "SM", "SUZ", "SLZ")
    )
    reports_floors = True

    def start_of_step(self, state: TensorDict) -> TensorDict:
        """Stores cut to their floors before the step: snow stores at 0, the others at ``near_zero`` (mm)."""
        nz = self.config.near_zero
        return {
            name: value.clamp_min(0.0) if name in ("SP", "MW") else value.clamp_min(nz) for name, value in state.items()
        }


class HBV2Hourly(_HBVHourly):
    """δHBV 2.0 hourly (Yang et al. 2026): δHBV 2.0 in hourly steps with Hortonian infiltration excess.

    Rain and meltwater beyond the infiltration capacity, which falls from ``F0`` (dry soil)
    towards ``FMIN * F0`` as the soil wets (shape ``ALPHA``), run off at once as ``IE`` and
    join the runoff ``Q``.  Forcings ``P`` and ``PET`` are in mm per hour, fluxes are reported in
    mm per hour, parameters keep their daily units (``K0``: 1/day, ``F0``: mm/day).  The
    published setting in the multi-timescale model is ``dynamic=["BETA", "K0", "BETAET"]``, ``nmul=1``.

    Parameters
    ----------
    config
        An :class:`HBVHourlyConfig`, or a mapping of its options.
    **options
        Options of :class:`HBVHourlyConfig` as keywords: ``nmul``, ``dynamic``, ``near_zero`` (mm),
        ``elevation_threshold``, ``threshold_elevation`` (m), ``high_elevation_tt`` (°C).
    """

    physical_parameters: ClassVar[tuple[Parameter, ...]] = (
        *CORE_PARAMETERS,
        BETAET,
        C,
        RT,
        AC,
        F0,
        FMIN,
        ALPHA_DECLINE,
    )
    outputs: ClassVar[tuple[Variable, ...]] = _total_runoff(_HBVHourly.outputs, "Q0 + Q1 + Q2 + IE")

    def soil_entry(
        self, SM: torch.Tensor, water: torch.Tensor, params_t: Mapping[str, torch.Tensor], dt: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Infiltration up to the capacity; the rest is the infiltration excess (rates in mm/day)."""
        p = params_t
        wetness = (SM / p["FC"]).clamp(0.0, DRY_LIMIT_2_0)
        wet_capacity = p["FMIN"] * p["F0"]
        capacity = wet_capacity + (p["F0"] - wet_capacity) * (1.0 - wetness) ** p["ALPHA"]
        infiltration = torch.minimum(water, capacity)
        excess = (water - capacity).clamp_min(0.0)
        recharge = infiltration * _soil_wetness(SM, p["FC"]) ** p["BETA"]
        return SM + _per_step(infiltration - recharge, dt), recharge, excess


class HBV21Hourly(_HBVHourly):
    """δHBV 2.1 hourly (Yang et al. 2026): infiltration excess over a distributed capacity, delayed
    by two linear stores.

    The saturated fraction ``(SM/FC)^BETA`` of the unit turns rain and meltwater into recharge;
    on the rest, the infiltration capacity is spread as ``F0 * x^ALPHA`` over the area, and water
    beyond it is the infiltration excess ``IE``.  ``IE`` passes through two linear stores
    ``SIE1`` and ``SIE2`` (each draining at ``2 * KS`` per day, mean delay ``1/KS`` days) before
    joining the runoff as ``QIE``.  ``K0`` reaches 12 /day (half of the water above ``UZL`` per
    hour).  Units as in :class:`HBV2Hourly`.

    Parameters
    ----------
    config
        An :class:`HBVHourlyConfig`, or a mapping of its options.
    **options
        Options of :class:`HBVHourlyConfig` as keywords (see :class:`HBV2Hourly`).
    """

    physical_parameters: ClassVar[tuple[Parameter, ...]] = (
        *(K0_HOURLY if p.name == "K0" else p for p in CORE_PARAMETERS),
        BETAET,
        C,
        RT,
        AC,
        F0,
        ALPHA_SPREAD,
        KS,
    )
    states: ClassVar[tuple[State, ...]] = STATES + CASCADE_STATES
    outputs: ClassVar[tuple[Variable, ...]] = _total_runoff(
        _HBVHourly.outputs + _hourly((CASCADE_OUTPUT,)), "Q0 + Q1 + Q2 + QIE"
    )
    mass_balance = MassBalance(
        inputs=("P", "lateral", "floors"),
        outputs=("AET", "Q"),
        storages=("SP", "MW", "SM", "SUZ", "SLZ", "SIE1", "SIE2"),
    )

    def soil_entry(
        self, SM: torch.Tensor, water: torch.Tensor, params_t: Mapping[str, torch.Tensor], dt: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Recharge from the saturated fraction, infiltration and its excess on the rest (rates in mm/day)."""
        p = params_t
        alpha, f0 = p["ALPHA"], p["F0"]
        saturated = (SM / p["FC"]).clamp(_TINY_RATIO, WET_LIMIT_2_1) ** p["BETA"]
        unsaturated = 1.0 - saturated
        recharge = water * saturated
        # Share of the unsaturated area whose capacity lies below the supply (1 where all of it does).
        below = (water / f0).clamp(_TINY_RATIO, 1.0) ** (1.0 / alpha)
        excess = (unsaturated * (water * below - f0 * below ** (alpha + 1.0) / (alpha + 1.0))).clamp_min(0.0)
        return SM + _per_step((water * unsaturated - excess).clamp_min(0.0), dt), recharge, excess

    def surface_runoff(
        self, state: TensorDict, excess: torch.Tensor, params_t: Mapping[str, torch.Tensor], dt: float
    ) -> tuple[torch.Tensor, TensorDict, TensorDict]:
        """The infiltration excess through the two linear stores ``SIE1`` -> ``SIE2`` -> runoff."""
        k = 2.0 * params_t["KS"]
        first = state["SIE1"] + _per_step(excess, dt)
        between = _per_day(torch.minimum(_per_step(k * first, dt), first), dt)
        first = first - _per_step(between, dt)
        second = state["SIE2"] + _per_step(between, dt)
        outflow = _per_day(torch.minimum(_per_step(k * second, dt), second), dt)
        second = second - _per_step(outflow, dt)
        return outflow, {"SIE1": first, "SIE2": second}, {"QIE": outflow}
