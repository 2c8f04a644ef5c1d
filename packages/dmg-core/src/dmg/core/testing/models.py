"""Reference models the test kit is validated on; also a compact illustration of the StepModel contract."""

from __future__ import annotations

import torch

from dmg.core.parameters import Parameter
from dmg.core.physics import StepModel
from dmg.core.signature import ProcessSlot
from dmg.core.variables import MassBalance, State, Variable


class ToyReservoir(StepModel):
    """A linear reservoir: ``S += P``; ``ET = min(S, c * PET)`` (a replaceable process slot); ``Q = k * S``."""

    forcings = (
        Variable("P", "mm/day", "precipitation", (0.0, 20.0)),
        Variable("PET", "mm/day", "potential evapotranspiration", (0.0, 5.0)),
    )
    physical_parameters = (
        Parameter("k", 0.01, 0.5, "1/day", "outflow coefficient"),
        Parameter("c", 0.1, 1.5, "", "evaporation coefficient", default=1.0),
    )
    states = (State("S", "mm", "storage", (0.0, 200.0), initial=5.0),)
    outputs = (Variable("Q", "mm/day"), Variable("ET", "mm/day"))
    slots = (ProcessSlot("evaporation", ("S", "PET"), "mm/day", low=0.0),)
    mass_balance = MassBalance(inputs=("P",), outputs=("Q", "ET"), storages=("S",))

    def step(self, state, forcing_t, params_t, processes):
        s = state["S"] + forcing_t["P"]
        pet = forcing_t["PET"].expand_as(s)
        et = processes.compute("evaporation", lambda: params_t["c"] * pet, S=s, PET=pet)
        et = torch.minimum(et, s)
        s = s - et
        q = params_t["k"] * s
        return {"S": s - q}, {"Q": q, "ET": et}


class ToyScaling(StepModel):
    """A stateless second stage, ``Qout = a * Q`` with one shared parameter (routing-like)."""

    forcings = (Variable("Q", "mm/day"),)
    physical_parameters = (Parameter("a", 0.0, 2.0, per_component=False),)
    outputs = (Variable("Qout", "mm/day"),)

    def step(self, state, forcing_t, params_t, processes):
        return state, {"Qout": params_t["a"] * forcing_t["Q"]}
