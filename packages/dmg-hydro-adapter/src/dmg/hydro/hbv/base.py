"""The daily HBV step shared by every variant.

One step is operator-split and explicit: each process sees the stores as updated by the
processes before it (snow, soil, evapotranspiration, [capillary rise], upper zone,
lower zone, [lateral exchange]).  Inside :meth:`HBVBase.step` stores and per-component
parameters are ``[unit, nmul]``; forcings and attributes are ``[unit, 1]``.  The
equations are written out in ``docs/hydrology/hbv.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import Field

from dmg.core import MassBalance, Processes, StepModel, Variable
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

    forcings = FORCINGS
    states = STATES
    outputs: ClassVar[tuple[Variable, ...]] = FLOW_OUTPUTS + DIAGNOSTIC_OUTPUTS
    mass_balance = MassBalance(inputs=("P",), outputs=("AET", "Q"), storages=("SP", "MW", "SM", "SUZ", "SLZ"))

    capillary_rise: ClassVar[bool] = False
    """Whether the lower zone feeds the soil by capillary rise (parameter ``C``)."""
    lateral_exchange: ClassVar[bool] = False
    """Whether the lower zone exchanges water laterally (parameters ``RT``, ``AC``)."""

    def __init__(self, config: HBVConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self._et_exponent = "BETAET" in self.parameter_spec

    def threshold_temperature(self, params_t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Temperature threshold of snowfall and melt (°C), ``[unit, nmul]``: the parameter ``TT``."""
        return params_t["TT"]

    def step(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict, processes: Processes
    ) -> tuple[TensorDict, TensorDict]:
        """Advance every store by one day; see the module docstring for the order of processes.

        Parameters
        ----------
        state
            Stores ``SP``, ``MW``, ``SM``, ``SUZ``, ``SLZ`` (mm), ``[unit, nmul]``.
        forcing_t
            ``P`` (mm/day), ``T`` (°C) and ``PET`` (mm/day) of the day, ``[unit, 1]``.
        params_t
            Parameters of the day (``[unit, nmul]``) and attributes (``[unit, 1]``).
        processes
            Fillers of process slots; the HBV step declares none.

        Returns
        -------
        tuple[dict, dict]
            The stores after the day (mm) and the day's fluxes (mm/day; ``SWE`` in mm).
        """
        p = params_t
        nz = self.config.near_zero
        P, T, PET = forcing_t["P"], forcing_t["T"], forcing_t["PET"]
        SP, MW, SM, SUZ, SLZ = state["SP"], state["MW"], state["SM"], state["SUZ"], state["SLZ"]
        FC = p["FC"]

        # Snow: partition, melt, refreezing, release of meltwater beyond the holding capacity.
        TT = self.threshold_temperature(p)
        snow = torch.where(T < TT, P, 0.0)
        rain = P - snow
        SP = SP + snow
        degree_days = p["CFMAX"] * (T - TT)
        melt = torch.minimum(degree_days.clamp_min(0.0), SP)
        MW = MW + melt
        SP = SP - melt
        refreeze = torch.minimum((-p["CFR"] * degree_days).clamp_min(0.0), MW)
        SP = SP + refreeze
        MW = MW - refreeze
        tosoil = (MW - p["CWH"] * SP).clamp_min(0.0)
        MW = MW - tosoil

        # Soil: recharge to the upper zone, excess above field capacity, evapotranspiration.
        infiltration = rain + tosoil
        recharge = infiltration * (SM / FC).clamp(_TINY_RATIO, 1.0) ** p["BETA"]
        SM = SM + infiltration - recharge
        excess = (SM - FC).clamp_min(0.0)
        SM = SM - excess
        evapfactor = (SM / (p["LP"] * FC)).clamp(_TINY_RATIO, 1.0)
        if self._et_exponent:
            evapfactor = evapfactor ** p["BETAET"]
        aet = torch.minimum(SM, PET * evapfactor)
        SM = (SM - aet).clamp_min(nz)

        fluxes: TensorDict = {}
        if self.capillary_rise:
            capillary = torch.minimum(SLZ, p["C"] * SLZ * (1.0 - (SM / FC).clamp_max(1.0)))
            SM = SM + capillary
            SLZ = (SLZ - capillary).clamp_min(nz)
            fluxes["capillary"] = capillary

        # Upper zone: percolation, quick flow above UZL, interflow.
        SUZ = SUZ + recharge + excess
        percolation = torch.minimum(SUZ, p["PERC"])
        SUZ = SUZ - percolation
        Q0 = p["K0"] * (SUZ - p["UZL"]).clamp_min(0.0)
        SUZ = SUZ - Q0
        Q1 = p["K1"] * SUZ
        SUZ = SUZ - Q1

        # Lower zone: percolation in, [lateral exchange], baseflow out.
        SLZ = SLZ + percolation
        if self.lateral_exchange:
            before = SLZ
            SLZ = (SLZ + self.lateral_inflow(p)).clamp_min(nz)
            fluxes["lateral"] = SLZ - before
        Q2 = p["K2"] * SLZ
        SLZ = SLZ - Q2

        fluxes.update(
            Q=Q0 + Q1 + Q2,
            Q0=Q0,
            Q1=Q1,
            Q2=Q2,
            AET=aet,
            PET=PET,
            SWE=SP,
            recharge=recharge,
            excess=excess,
            evapfactor=evapfactor,
            tosoil=tosoil,
            percolation=percolation,
        )
        return {"SP": SP, "MW": MW, "SM": SM, "SUZ": SUZ, "SLZ": SLZ}, fluxes

    def lateral_inflow(self, params_t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Lateral exchange of the lower zone before the floor (mm/day); only with ``lateral_exchange``."""
        raise NotImplementedError(f"{type(self).__name__} has no lateral exchange")
