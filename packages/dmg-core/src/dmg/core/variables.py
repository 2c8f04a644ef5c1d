"""Declarations of the named quantities a physics model reads, carries and writes."""

from __future__ import annotations

from dataclasses import dataclass

from dmg.core.errors import SpecError, is_dotted_name


@dataclass(frozen=True)
class Variable:
    """A named forcing, attribute or output of a physics model.

    Parameters
    ----------
    name
        Identifier used in configs and mappings.
    unit
        Physical unit, e.g. ``"mm/day"``.
    description
        One line for documentation tables.
    typical_range
        ``(low, high)`` of realistic values; used to draw synthetic inputs in
        :mod:`dmg.core.testing` and to document the model.
    """

    name: str
    unit: str = ""
    description: str = ""
    typical_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if not is_dotted_name(self.name):
            raise SpecError(f"variable name {self.name!r} is not a valid identifier")
        low, high = self.typical_range
        if high < low:
            raise SpecError(f"variable {self.name!r}: typical_range {self.typical_range} has high < low")


@dataclass(frozen=True)
class State(Variable):
    """A state variable carried from one time step to the next, with its initial value.

    Parameters
    ----------
    initial
        Value every unit and component starts from when no state is given.
    """

    initial: float = 0.0


@dataclass(frozen=True)
class MassBalance:
    """How a model conserves mass: ``sum(inputs) - sum(outputs) = final storages - initial storages``.

    Names refer to forcings or outputs of the model, all in the same unit per time step
    (e.g. mm/day for a daily step), and to its storage states.  The test kit checks the
    balance over a simulation, per unit.

    Parameters
    ----------
    inputs
        Forcing or output names of fluxes entering the system.
    outputs
        Output names of fluxes leaving the system.
    storages
        State names whose sum is the stored amount.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    storages: tuple[str, ...]
