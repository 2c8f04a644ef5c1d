"""The HBV step shared by every variant, daily and hourly.

One step is operator-split and explicit: each process sees the stores as updated by the
processes before it (snow, soil, evapotranspiration, [capillary rise], upper zone,
lower zone, [lateral exchange]).  Inside :meth:`HBVBase.step` stores and per-component
parameters are ``[unit, nmul]``; forcings and attributes are ``[unit, 1]``.

Fluxes are rates per day and parameters keep their daily units; a step of
:attr:`HBVBase.time_step` days applies each rate as ``rate * time_step`` (snowfall, melt and
refreezing as amounts per step) and reports fluxes as amounts per step.  Variants change
three hooks: :meth:`HBVBase.start_of_step` (guardrails on the stores),
:meth:`HBVBase.soil_entry` (how rain and meltwater enter the soil) and
:meth:`HBVBase.surface_runoff` (what happens to infiltration excess).  The equations are
written out in ``docs/hydrology/hbv.md`` (daily) and ``docs/hydrology/hourly.md`` (hourly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import Field

from dmg.core import MassBalance, Processes, State, StepModel, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.physics import TensorDict
from dmg.hydro.hbv.parameters import DIAGNOSTIC_OUTPUTS, FLOW_OUTPUTS, FORCINGS, STATES

NEAR_ZERO = 1e-5
"""Floor (mm) of soil moisture and lower-zone storage after withdrawals, as published."""

_TINY_RATIO = 1e-20
"""Smallest storage ratio raised to a power: keeps the gradient of ``ratio**exponent`` finite
for exponents below one when a store is exactly empty (never reached from the floors above)."""


class HBVConfig(PhysicsConfig):
    """Options shared by every HBV variant."""

    near_zero: float = Field(
        NEAR_ZERO, gt=0.0, description="Floor of soil moisture and lower-zone storage after withdrawals (mm)."
    )


class HBVBase(StepModel):
    """Common declarations and the daily step of the HBV family.

    Subclasses choose the parameters and switch on capillary rise (δHBV 1.1p, 2.0) and the
    lateral exchange of the lower zone (δHBV 2.0). The engine runs the step over time and
    owns warm-up (:mod:`dmg.core.engine`).

    Parameters
    ----------
    config
        The model's ``Config`` (:class:`HBVConfig` or a subclass), or a mapping of its options.
    **options
        Options of the ``Config`` as keywords: ``near_zero`` (mm) and those of every physics
        model (``nmul``, ``dynamic``, ``warmup_mode``); for subclasses also the declarations
        of :class:`~dmg.core.PhysicsModel` (e.g. ``parameters=``).
    """

    Config: ClassVar[type[PhysicsConfig]] = HBVConfig

    forcings: ClassVar[tuple[Variable, ...]] = FORCINGS
    states: ClassVar[tuple[State, ...]] = STATES
    outputs: ClassVar[tuple[Variable, ...]] = FLOW_OUTPUTS + DIAGNOSTIC_OUTPUTS
    mass_balance = MassBalance(inputs=("P",), outputs=("AET", "Q"), storages=("SP", "MW", "SM", "SUZ", "SLZ"))
    standard_names: ClassVar[Mapping[str, str]] = {
        "P": "atmosphere_water__precipitation_leq-volume_flux",
        "T": "land_surface_air__temperature",
        "PET": "land_surface_water__potential_evapotranspiration_volume_flux",
        "SWE": "snowpack__liquid-equivalent_depth",
    }
    """CSDMS standard names of the forcings and of the snow water equivalent (the Basic Model Interface,
    :mod:`dmg.core.bmi`, calls the variables by them)."""

    capillary_rise: ClassVar[bool] = False
    """Whether the lower zone feeds the soil by capillary rise (parameter ``C``)."""
    lateral_exchange: ClassVar[bool] = False
    """Whether the lower zone exchanges water laterally (parameters ``RT``, ``AC``)."""
    reports_floors: ClassVar[bool] = False
    """Whether the output ``floors`` reports the water the floors of the stores add (the start-of-step
    guardrails of :meth:`start_of_step`, soil moisture after evapotranspiration, the lower zone after
    capillary rise); the daily variants, as published, leave it out of their outputs."""
    time_step: ClassVar[float] = 1.0
    """Length of one step (days). Fluxes are computed as rates per day and applied as rate * time_step;
    with one day the step is the daily HBV step exactly (multiplying or dividing by 1.0 is exact)."""

    def __init__(self, config: HBVConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self._et_exponent = "BETAET" in self.parameter_spec

    def threshold_temperature(self, params_t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Temperature threshold of snowfall and melt (°C), ``[unit, nmul]``: the parameter ``TT``."""
        return params_t["TT"]

    def start_of_step(self, state: TensorDict) -> TensorDict:
        """Stores at the start of a step, before any process (mm); the daily variants use them as they are."""
        return state

    def soil_entry(
        self, SM: torch.Tensor, water: torch.Tensor, params_t: Mapping[str, torch.Tensor], dt: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Water reaching the surface enters the soil or recharges the upper zone.

        Parameters
        ----------
        SM
            Soil moisture at the start of the step (mm), ``[unit, nmul]``.
        water
            Rain plus meltwater released by the snowpack (mm/day).
        params_t
            Parameters of the step.
        dt
            Length of the step (days).

        Returns
        -------
        tuple
            Soil moisture after the entry (mm), recharge to the upper zone (mm/day), and the
            infiltration excess that runs off over the surface (mm/day; ``None`` for the daily
            variants, where all water enters the soil).
        """
        recharge = water * _soil_wetness(SM, params_t["FC"]) ** params_t["BETA"]
        return SM + _per_step(water, dt) - _per_step(recharge, dt), recharge, None

    def surface_runoff(
        self, state: TensorDict, excess: torch.Tensor, params_t: Mapping[str, torch.Tensor], dt: float
    ) -> tuple[torch.Tensor, TensorDict, TensorDict]:
        """Runoff of the infiltration excess of :meth:`soil_entry` (only called when there is one).

        Returns the runoff that reaches the unit's outlet in this step (mm/day), the updated
        stores the excess passes through (mm) and fluxes to report (mm/day).
        """
        return excess, {}, {}

    def step(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict, processes: Processes
    ) -> tuple[TensorDict, TensorDict]:
        """Advance every store by one step of :attr:`time_step` days; see the module docstring.

        Parameters
        ----------
        state
            Stores ``SP``, ``MW``, ``SM``, ``SUZ``, ``SLZ`` (and the variant's own) (mm), ``[unit, nmul]``.
        forcing_t
            ``P`` and ``PET`` (mm per step) and ``T`` (°C) of the step, ``[unit, 1]``.
        params_t
            Parameters of the step (``[unit, nmul]``) and attributes (``[unit, 1]``).
        processes
            Fillers of process slots; the HBV step declares none.

        Returns
        -------
        tuple[dict, dict]
            The stores after the step (mm) and the step's fluxes (mm per step; ``SWE`` in mm,
            ``evapfactor`` dimensionless).
        """
        p = params_t
        nz = self.config.near_zero
        dt = self.time_step
        guarded = self.start_of_step(state)
        # Water the floors of the stores add (reported as ``floors`` by variants that declare it).
        added: list[torch.Tensor] = [] if guarded is state else [sum(guarded[k] - state[k] for k in guarded)]
        state = guarded

        def floored(store: torch.Tensor) -> torch.Tensor:
            kept = store.clamp_min(nz)
            if self.reports_floors:
                added.append(kept - store)
            return kept

        # Rates per day: every flux below is a rate, applied to the stores as rate * dt.
        P, T, PET = _per_day(forcing_t["P"], dt), forcing_t["T"], _per_day(forcing_t["PET"], dt)
        SP, MW, SM, SUZ, SLZ = state["SP"], state["MW"], state["SM"], state["SUZ"], state["SLZ"]
        FC = p["FC"]

        # Snow: partition, melt, refreezing, release of meltwater beyond the holding capacity.
        # Melt and refreezing are amounts per step; the release is a rate.
        TT = self.threshold_temperature(p)
        snow = torch.where(T < TT, P, 0.0)
        rain = P - snow
        SP = SP + _per_step(snow, dt)
        degree_days = p["CFMAX"] * (T - TT)
        melt = torch.minimum(_per_step(degree_days.clamp_min(0.0), dt), SP)
        MW = MW + melt
        SP = SP - melt
        refreeze = torch.minimum(_per_step((-p["CFR"] * degree_days).clamp_min(0.0), dt), MW)
        SP = SP + refreeze
        MW = MW - refreeze
        tosoil = _per_day(MW - p["CWH"] * SP, dt).clamp_min(0.0)
        MW = MW - _per_step(tosoil, dt)

        # Soil: entry of rain and meltwater, excess above field capacity, evapotranspiration.
        SM, recharge, infiltration_excess = self.soil_entry(SM, rain + tosoil, p, dt)
        excess = _per_day(SM - FC, dt).clamp_min(0.0)
        SM = SM - _per_step(excess, dt)
        evapfactor = (SM / (p["LP"] * FC)).clamp(_TINY_RATIO, 1.0)
        if self._et_exponent:
            evapfactor = evapfactor ** p["BETAET"]
        aet = _per_day(torch.minimum(SM, _per_step(PET * evapfactor, dt)), dt)
        SM = floored(SM - _per_step(aet, dt))

        rates: TensorDict = {}
        if self.capillary_rise:
            rise = p["C"] * SLZ * (1.0 - (SM / FC).clamp_max(1.0))
            capillary = _per_day(torch.minimum(SLZ, _per_step(rise, dt)), dt)
            SM = SM + _per_step(capillary, dt)
            SLZ = floored(SLZ - _per_step(capillary, dt))
            rates["capillary"] = capillary

        # Upper zone: percolation, quick flow above UZL, interflow.
        SUZ = SUZ + _per_step(recharge, dt) + _per_step(excess, dt)
        percolation = _per_day(torch.minimum(SUZ, _per_step(p["PERC"], dt)), dt)
        SUZ = SUZ - _per_step(percolation, dt)
        Q0 = p["K0"] * (SUZ - p["UZL"]).clamp_min(0.0)
        SUZ = SUZ - _per_step(Q0, dt)
        Q1 = p["K1"] * SUZ
        SUZ = SUZ - _per_step(Q1, dt)

        # Lower zone: percolation in, [lateral exchange], baseflow out.
        SLZ = SLZ + _per_step(percolation, dt)
        amounts: TensorDict = {}
        if self.lateral_exchange:
            before = SLZ
            SLZ = (SLZ + _per_step(self.lateral_inflow(p), dt)).clamp_min(nz)
            amounts["lateral"] = SLZ - before
        Q2 = p["K2"] * SLZ
        SLZ = SLZ - _per_step(Q2, dt)

        Q = Q0 + Q1 + Q2
        stores: TensorDict = {"SP": SP, "MW": MW, "SM": SM, "SUZ": SUZ, "SLZ": SLZ}
        if infiltration_excess is not None:
            overland, routed, overland_rates = self.surface_runoff(state, infiltration_excess, p, dt)
            Q = Q + overland
            stores.update(routed)
            rates.update(overland_rates, IE=infiltration_excess)

        rates.update(
            Q=Q,
            Q0=Q0,
            Q1=Q1,
            Q2=Q2,
            AET=aet,
            PET=PET,
            recharge=recharge,
            excess=excess,
            tosoil=tosoil,
            percolation=percolation,
        )
        fluxes = {name: _per_step(rate, dt) for name, rate in rates.items()}
        fluxes.update(amounts, SWE=SP, evapfactor=evapfactor)
        if self.reports_floors:
            fluxes["floors"] = sum(added[1:], added[0])
        return stores, fluxes

    def lateral_inflow(self, params_t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Lateral exchange of the lower zone before the floor (mm/day); only with ``lateral_exchange``."""
        raise NotImplementedError(f"{type(self).__name__} has no lateral exchange")


def _per_step(rate: torch.Tensor, dt: float) -> torch.Tensor:
    """A rate per day as an amount per step of ``dt`` days (unchanged for daily steps)."""
    return rate if dt == 1.0 else rate * dt


def _per_day(amount: torch.Tensor, dt: float) -> torch.Tensor:
    """An amount per step of ``dt`` days as a rate per day (unchanged for daily steps)."""
    return amount if dt == 1.0 else amount / dt


def _soil_wetness(SM: torch.Tensor, FC: torch.Tensor) -> torch.Tensor:
    """``SM / FC`` clipped to ``(0, 1]``, the base of the recharge curve (finite gradients at ``SM = 0``)."""
    return (SM / FC).clamp(_TINY_RATIO, 1.0)
