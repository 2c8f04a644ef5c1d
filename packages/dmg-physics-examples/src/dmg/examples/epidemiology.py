"""SIR: the classic susceptible-infected-recovered epidemic model, as a daily discrete step.

Compartments are fractions of the population (``S + I + R = 1``).  Each day::

    λ    = transmission(I, contact)          default: beta * contact * I   (1/day)
    new  = S * (1 - exp(-λ))                 newly infected this day
    rec  = I * (1 - exp(-gamma))             recovered this day
    S <- S - new,   I <- I + new - rec,   R <- R + rec

``1 - exp(-rate)`` is the probability that an event with a constant daily ``rate`` happens
within the day, so compartments stay in ``[0, 1]`` for any rate and the population is
conserved exactly (a closed system: no inflow, no outflow).  ``contact`` is a relative contact
rate (1 = normal mixing, < 1 during distancing measures); ``beta`` may also be declared
time-varying (``dynamic=["beta"]``).  A network may replace the force of infection ``λ``
through the process slot ``"transmission"``.
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


class SIRConfig(PhysicsConfig):
    """Options of :class:`SIR`."""

    initial_infected: float = Field(
        0.01, gt=0.0, lt=1.0, description="Infected fraction I at the start of a simulation (-); S starts at 1 - I."
    )


class SIR(StepModel):
    """Susceptible-infected-recovered compartments as population fractions, daily step.

    Forcings
        ``contact`` relative contact rate (-), 1 for normal mixing.
    Parameters
        ``beta`` transmission rate (1/day), ``gamma`` recovery rate (1/day); ``beta / gamma`` is
        the basic reproduction number R0.
    States
        ``S``, ``I``, ``R`` fractions of the population (-).
    Outputs
        ``new_infections`` fraction newly infected per day (1/day), ``I`` infected fraction at the
        end of each day (-).
    Process slot
        ``"transmission"``: the force of infection λ (1/day) from inputs ``(I, contact)``, non-negative.
    Mass balance
        Closed: ``S + I + R`` is conserved.

    Parameters
    ----------
    config
        A :class:`SIRConfig` (or a mapping of its options); alternatively give the options as keywords.
    **options
        Options of :class:`SIRConfig`: ``initial_infected``, the infected fraction at the start (-, in
        (0, 1), default 0.01; ``S`` starts at ``1 - initial_infected``, ``R`` at 0), and those of every
        physics model (``nmul``, ``dynamic``, ``warmup_mode``).

    Raises
    ------
    dmg.core.ConfigError
        For an unknown option or an ``initial_infected`` outside (0, 1).
    """

    Config = SIRConfig

    forcings = (Variable("contact", "", "relative contact rate (1 = normal mixing)", (0.3, 1.2)),)
    physical_parameters = (
        Parameter("beta", 0.05, 1.0, "1/day", "transmission rate at normal contact"),
        Parameter("gamma", 0.02, 0.5, "1/day", "recovery rate (1 / mean infectious period)"),
    )
    states = (
        State("S", "", "susceptible fraction", (0.0, 1.0), initial=0.99),
        State("I", "", "infected fraction", (0.0, 1.0), initial=0.01),
        State("R", "", "recovered fraction", (0.0, 1.0), initial=0.0),
    )
    outputs = (
        Variable("new_infections", "1/day", "fraction of the population newly infected per day", (0.0, 0.1)),
        Variable("I", "", "infected fraction at the end of the day", (0.0, 1.0)),
    )
    slots = (
        ProcessSlot(
            "transmission",
            ("I", "contact"),
            "1/day",
            low=0.0,
            description="force of infection: daily infection rate of a susceptible",
        ),
    )
    mass_balance = MassBalance(inputs=(), outputs=(), storages=("S", "I", "R"))

    def __init__(self, config: SIRConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        infected = config.initial_infected
        s, i, r = type(self).states
        super().__init__(config, states=(replace(s, initial=1.0 - infected), replace(i, initial=infected), r))

    def step(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict, processes: Processes
    ) -> tuple[TensorDict, TensorDict]:
        """One day of infections and recoveries.

        Parameters
        ----------
        state
            ``S``, ``I``, ``R`` population fractions (-), ``[unit, nmul]``.
        forcing_t
            ``contact`` of this day (-), ``[unit, 1]``.
        params_t
            ``beta`` and ``gamma`` (1/day), ``[unit, nmul]``.
        processes
            Fillers of the slot ``"transmission"`` (given ``I`` and ``contact``).

        Returns
        -------
        tuple of dict
            The new compartments (-) and this day's ``new_infections`` (1/day) and ``I`` (-).
        """
        s, i, r = state["S"], state["I"], state["R"]
        contact = forcing_t["contact"]
        force = processes.compute("transmission", lambda: params_t["beta"] * contact * i, I=i, contact=contact)
        new = -s * torch.expm1(-force)
        recovered = -i * torch.expm1(-params_t["gamma"])
        i = i + new - recovered
        return {"S": s - new, "I": i, "R": r + recovered}, {"new_infections": new, "I": i}
