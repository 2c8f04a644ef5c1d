"""The published δHBV variants: :class:`HBV` (1.0), :class:`HBV11p` (1.1p) and :class:`HBV2` (2.0).

=========  ==========================================  =====================================
variant    adds to the common step                     warm-up
=========  ==========================================  =====================================
1.0        evapotranspiration exponent BETAET only     ``spinup`` (default) or ``inline``
           when it is time-varying
1.1p       BETAET always; capillary rise (``C``)       ``spinup`` (default) or ``inline``
2.0        as 1.1p, plus lateral exchange of the       ``inline`` only
           lower zone (``RT``, ``AC``) driven by the
           upstream area, and a higher snow threshold
           for high units
=========  ==========================================  =====================================

None of them routes its runoff: compose with :class:`dmg.hydro.routing.GammaRouting` through
:class:`dmg.core.Chain` for routed streamflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

from dmg.core import MassBalance, Parameter, Variable
from dmg.core.signature import WarmupMode
from dmg.hydro.hbv.base import HBVBase, HBVConfig
from dmg.hydro.hbv.parameters import (
    AC,
    BETAET,
    CAPILLARY_OUTPUT,
    CORE_PARAMETERS,
    DIAGNOSTIC_OUTPUTS,
    ELEVATION,
    FLOW_OUTPUTS,
    LATERAL_OUTPUT,
    RT,
    UPSTREAM_AREA,
    C,
)

# Lateral exchange of δHBV 2.0 (areas in km²).
LARGE_BASIN_AREA = 2500.0
"""Upstream area from which a unit gains water laterally at a rate decaying with area."""
LATERAL_AREA_SCALE = 1000.0
"""Area over which the exchange of smaller units goes from full loss to full gain."""
LATERAL_DECAY_AREA = 50.0
"""E-folding area of the gain of large units above :data:`LARGE_BASIN_AREA`."""


class HBV(HBVBase):
    """δHBV 1.0 (Feng et al. 2022, Water Resources Research 58, e2022WR032404).

    Twelve parameters; the evapotranspiration exponent ``BETAET`` is a parameter only when
    it is time-varying (``dynamic`` contains ``"BETAET"``; the published setting is
    ``dynamic=["BETA", "BETAET"]``).  For the published spin-up, couple with
    ``ParameterLearning(spinup_static="warmup_end", spinup_hold_dynamic=True)``.

    Parameters
    ----------
    config
        An :class:`~dmg.hydro.hbv.HBVConfig`, or a mapping of its options.
    **options
        Options of :class:`~dmg.hydro.hbv.HBVConfig` as keywords: ``near_zero`` (mm), ``nmul``,
        ``dynamic``, ``warmup_mode`` (``spinup`` by default, or ``inline``).
    """

    Config = HBVConfig
    physical_parameters: ClassVar[tuple[Parameter, ...]] = CORE_PARAMETERS

    def __init__(self, config: HBVConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        evapotranspiration = (BETAET,) if "BETAET" in config.dynamic else ()
        super().__init__(config, parameters=CORE_PARAMETERS + evapotranspiration)


class HBV11p(HBVBase):
    """δHBV 1.1p (Song et al. 2024): 1.0 with ``BETAET`` always and capillary rise ``C``.

    Capillary rise moves ``C * SLZ * (1 - min(SM/FC, 1))`` mm/day from the lower zone back to
    the soil after evapotranspiration.  The published setting is
    ``dynamic=["BETA", "K0", "BETAET"]``; couple with
    ``ParameterLearning(spinup_static="warmup_end")`` for the published spin-up.

    Parameters
    ----------
    config
        An :class:`~dmg.hydro.hbv.HBVConfig`, or a mapping of its options.
    **options
        Options of :class:`~dmg.hydro.hbv.HBVConfig` as keywords: ``near_zero`` (mm), ``nmul``,
        ``dynamic``, ``warmup_mode`` (``spinup`` by default, or ``inline``).
    """

    Config = HBVConfig
    physical_parameters: ClassVar[tuple[Parameter, ...]] = (*CORE_PARAMETERS, BETAET, C)
    outputs: ClassVar[tuple[Variable, ...]] = FLOW_OUTPUTS + DIAGNOSTIC_OUTPUTS + (CAPILLARY_OUTPUT,)
    capillary_rise = True


class HBV2Config(HBVConfig):
    """Options of :class:`HBV2`."""

    warmup_mode: Literal["inline"] = Field(
        "inline", description="δHBV 2.0 runs warm-up steps inline only (one pass, warm-up outputs dropped)."
    )
    elevation_threshold: bool = Field(
        True, description="Use a fixed snow threshold for high units instead of the parameter TT."
    )
    threshold_elevation: float = Field(2000.0, description="Elevation (m) from which a unit counts as high.")
    high_elevation_tt: float = Field(4.0, description="Snow threshold (°C) of high units.")

    @field_validator("warmup_mode", mode="before")
    @classmethod
    def _inline_only(cls, value: WarmupMode | None) -> str:
        if value is None:
            return "inline"
        if value != "inline":
            raise ValueError(
                f"δHBV 2.0 (HBV2) runs its warm-up inline only, got {value!r}; "
                "use 'inline' or a 1.x variant for a separate spin-up pass"
            )
        return value


class HBV2(HBVBase):
    """δHBV 2.0 (Song et al. 2025, Water Resources Research).

    1.1p plus a lateral exchange of the lower zone that depends on the unit's upstream area
    ``Ac`` (attribute ``upstream_area``, km²)::

        LF = RT * clip((Ac - AC) / 1000, -1, 1)            where Ac <  2500 km²
        LF = RT * exp(clip(-(Ac - 2500) / 50, -10, 0))     where Ac >= 2500 km²
        SLZ = max(SLZ + LF, near_zero)

    reported as the output ``lateral`` (the change of SLZ it causes, so that the mass
    balance closes).  With ``elevation_threshold`` the snow threshold is
    ``high_elevation_tt`` (4 °C) where the attribute ``elevation`` is at least
    ``threshold_elevation`` (2000 m), else the parameter ``TT``.

    The published networks give dynamic parameters already in ``[0, 1]`` and static ones
    (plus the routing channels) separately: couple with
    ``ParameterLearning(transform="identity")`` and a network returning ``(dynamic, static)``.
    Warm-up always runs inline (``warmup_modes = ("inline",)``): the engine refuses ``spinup``.

    Parameters
    ----------
    config
        An :class:`HBV2Config`, or a mapping of its options.
    **options
        Options of :class:`HBV2Config` as keywords: ``elevation_threshold`` (use
        ``high_elevation_tt`` as snow threshold for units at or above ``threshold_elevation``),
        ``threshold_elevation`` (m), ``high_elevation_tt`` (°C), ``near_zero`` (mm), ``nmul``,
        ``dynamic``.
    """

    Config = HBV2Config
    warmup_modes = ("inline",)
    attributes = (UPSTREAM_AREA, ELEVATION)
    physical_parameters: ClassVar[tuple[Parameter, ...]] = (*CORE_PARAMETERS, BETAET, C, RT, AC)
    outputs: ClassVar[tuple[Variable, ...]] = FLOW_OUTPUTS + DIAGNOSTIC_OUTPUTS + (CAPILLARY_OUTPUT, LATERAL_OUTPUT)
    mass_balance = MassBalance(inputs=("P", "lateral"), outputs=("AET", "Q"), storages=("SP", "MW", "SM", "SUZ", "SLZ"))
    capillary_rise = True
    lateral_exchange = True

    def threshold_temperature(self, params_t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``TT``, or ``high_elevation_tt`` for units at or above ``threshold_elevation``."""
        config = self.config
        if not config.elevation_threshold:
            return params_t["TT"]
        high = params_t["elevation"] >= config.threshold_elevation
        return torch.where(high, config.high_elevation_tt, params_t["TT"])

    def lateral_inflow(self, params_t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Lateral exchange ``LF`` of the lower zone before the floor (mm/day, positive: gain)."""
        area = params_t["upstream_area"]
        small = ((area - params_t["AC"]) / LATERAL_AREA_SCALE).clamp(-1.0, 1.0)
        large = torch.exp((-(area - LARGE_BASIN_AREA) / LATERAL_DECAY_AREA).clamp(-10.0, 0.0))
        return params_t["RT"] * torch.where(area < LARGE_BASIN_AREA, small, large)
