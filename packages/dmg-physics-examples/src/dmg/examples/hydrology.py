"""A linear reservoir: the smallest rainfall-runoff model with a replaceable evaporation process.

One store ``S`` (mm) is filled by precipitation, emptied by evapotranspiration and drains
linearly to streamflow.  Each daily step::

    ET  = evaporation(S, PET)                 default: S * (1 - exp(-c * PET / S))
    S'  = S - ET + P
    Q   = k * S'
    S  <- S' - Q

The default evaporation is *supply-limited*: it equals the demand ``c * PET`` when the store
is large and approaches the stored water ``S`` when the store runs dry, so the store never
goes negative.  A network may replace it through the process slot ``"evaporation"``
(see :class:`dmg.core.ProcessReplacement`, or ``processes={"evaporation": filler}`` when calling
the model); whatever fills the slot is capped at ``S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from pydantic import Field

from dmg.core import MassBalance, Parameter, Processes, ProcessSlot, State, StepModel, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.signature import TensorDict

_SMALL_STORE = 1e-6
"""Stores below this (mm) are treated as this in the denominator of the evaporation law."""


class LinearReservoirConfig(PhysicsConfig):
    """Options of :class:`LinearReservoir`."""

    initial_storage: float = Field(10.0, ge=0.0, description="Store S at the start of a simulation (mm).")


class LinearReservoir(StepModel):
    """One linear store with supply-limited evapotranspiration, daily step.

    Forcings
        ``P`` precipitation (mm/day), ``PET`` potential evapotranspiration (mm/day).
    Parameters
        ``k`` outflow coefficient (1/day), ``c`` evapotranspiration coefficient (-, default 1).
    State
        ``S`` water stored (mm).
    Outputs
        ``Q`` streamflow (mm/day), ``ET`` actual evapotranspiration (mm/day).
    Process slot
        ``"evaporation"`` with inputs ``(S, PET)``, non-negative (mm/day).
    Mass balance
        ``sum(P) - sum(Q) - sum(ET) = S_end - S_start``.

    Parameters
    ----------
    config
        A :class:`LinearReservoirConfig` (or a mapping of its options); alternatively give the options
        as keywords.
    **options
        Options of :class:`LinearReservoirConfig`: ``initial_storage``, the store at the start of a
        simulation (mm, >= 0, default 10), and those of every physics model (``nmul``, ``dynamic``,
        ``warmup_mode``).

    Raises
    ------
    dmg.core.ConfigError
        For an unknown option or a negative ``initial_storage``.
    """

    Config = LinearReservoirConfig

    forcings = (
        Variable("P", "mm/day", "precipitation", (0.0, 30.0)),
        Variable("PET", "mm/day", "potential evapotranspiration", (0.0, 6.0)),
    )
    physical_parameters = (
        Parameter("k", 0.005, 0.5, "1/day", "outflow coefficient: fraction of the store drained per day"),
        Parameter("c", 0.2, 1.5, "", "evapotranspiration coefficient: demand is c * PET", default=1.0),
    )
    states = (State("S", "mm", "water stored", (0.0, 300.0), initial=10.0),)
    outputs = (
        Variable("Q", "mm/day", "streamflow", (0.0, 30.0)),
        Variable("ET", "mm/day", "actual evapotranspiration", (0.0, 6.0)),
    )
    slots = (
        ProcessSlot(
            "evaporation",
            ("S", "PET"),
            "mm/day",
            low=0.0,
            description="actual evapotranspiration from the store S given the demand PET",
        ),
    )
    mass_balance = MassBalance(inputs=("P",), outputs=("Q", "ET"), storages=("S",))

    def __init__(self, config: LinearReservoirConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        (store,) = type(self).states
        super().__init__(config, states=(replace(store, initial=config.initial_storage),))

    @staticmethod
    def supply_limited_evaporation(storage: torch.Tensor, demand: torch.Tensor) -> torch.Tensor:
        """``S * (1 - exp(-demand / S))`` (mm/day): ``demand`` when ``S`` is large, at most ``S``.

        Parameters
        ----------
        storage
            Water stored, ``S`` (mm).
        demand
            Evaporative demand ``c * PET`` (mm/day).
        """
        return -storage * torch.expm1(-demand / storage.clamp_min(_SMALL_STORE))

    def step(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict, processes: Processes
    ) -> tuple[TensorDict, TensorDict]:
        """One day: evapotranspiration from the store, then rain, then linear outflow.

        Parameters
        ----------
        state
            ``S`` (mm), ``[unit, nmul]``.
        forcing_t
            ``P`` and ``PET`` of this day (mm/day), ``[unit, 1]``.
        params_t
            ``k`` (1/day) and ``c`` (-), ``[unit, nmul]``.
        processes
            Fillers of the slot ``"evaporation"`` (given ``S`` and ``PET``).

        Returns
        -------
        tuple of dict
            The new ``S`` (mm) and this day's ``Q`` and ``ET`` (mm/day).
        """
        s = state["S"]
        pet = forcing_t["PET"]
        et = processes.compute(
            "evaporation",
            lambda: self.supply_limited_evaporation(s, params_t["c"] * pet),
            S=s,
            PET=pet,
        )
        et = torch.minimum(et, s)  # a replaced process cannot evaporate more than is stored
        s = s - et + forcing_t["P"]
        q = params_t["k"] * s
        return {"S": s - q}, {"Q": q, "ET": et}
