"""Engine backends: what runs a :class:`~dmg.core.physics.StepModel`'s ``step`` over time.

A backend is a registered component (entry-point group ``dmg.backends``) with a ``Config`` and one
job, :meth:`Backend.run`: take a :class:`Loop` (the model, its initial state, the per-step inputs,
the slot fillers, which fluxes to keep) and return the final state and the kept fluxes stacked over
time. Warm-up, input checks, the memory policy and the average over components are the engine's
(:mod:`dmg.core.engine`), so a backend is only the loop, and a faster one speeds up every model.

A backend that cannot run a given loop (a missing compiler, an unsupported operation) says why in
:meth:`Backend.unavailable`; the engine then runs the reference :class:`EagerBackend` and warns once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from dmg.core.components import Component, ComponentConfig
from dmg.core.errors import SpecError
from dmg.core.signature import Processes, TensorDict

if TYPE_CHECKING:
    from dmg.core.physics import StepModel


class BackendConfig(ComponentConfig):
    """Options of a backend (the reference backend has none)."""


@dataclass(frozen=True)
class Loop:
    """One pass of a model's ``step`` over a series: everything a backend needs.

    Attributes
    ----------
    model
        The step model.
    state
        State at the first step, name -> ``[unit, nmul]``.
    forcings
        name -> ``[time, unit, 1]``; ``forcing_t[name]`` is ``forcings[name][t]``.
    static
        Values constant in time (static parameters, attributes), ``[unit, nmul]`` or ``[unit, 1]``.
    dynamic
        Time-varying parameters, ``[time, unit, nmul]`` or ``[time, unit, 1]``.
    processes
        Fillers of the model's process slots.
    save
        Fluxes to stack over time (``None``: every flux ``step`` returns).
    n_time
        Number of steps.
    """

    model: StepModel
    state: TensorDict
    forcings: TensorDict
    static: TensorDict
    dynamic: TensorDict
    processes: Processes
    save: frozenset[str] | None
    n_time: int

    def step(self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict) -> tuple[TensorDict, TensorDict]:
        """The model's step with this loop's process fillers."""
        return self.model.step(state, forcing_t, params_t, self.processes)

    def window(self, start: int, stop: int, state: TensorDict) -> Loop:
        """Steps ``[start, stop)`` of this loop, starting from ``state``."""
        return replace(
            self,
            state=state,
            forcings={k: v[start:stop] for k, v in self.forcings.items()},
            dynamic={k: v[start:stop] for k, v in self.dynamic.items()},
            n_time=stop - start,
        )

    def kept(self, fluxes: TensorDict) -> list[str]:
        """Names among one step's ``fluxes`` that are stacked."""
        if self.save is None:
            return list(fluxes)
        missing = sorted(self.save - set(fluxes))
        if missing:
            raise SpecError(
                f"{type(self.model).__name__}.step returned no flux {missing}; it returned {sorted(fluxes)}"
            )
        return sorted(self.save)


class Backend(Component):
    """Base class of engine backends (see the module docstring)."""

    Config: ClassVar[type[BackendConfig]] = BackendConfig

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        self.config = self.validate_config(config, options)

    @property
    def name(self) -> str:
        """A short name for messages."""
        return type(self).__name__

    def unavailable(self, loop: Loop) -> str | None:
        """Why this backend cannot run ``loop`` (``None`` when it can)."""
        return None

    def run(self, loop: Loop) -> tuple[TensorDict, TensorDict]:
        """Run every step of ``loop``; return the final state and the kept fluxes ``[time, unit, ...]``."""
        raise NotImplementedError(f"{self.name} must implement run()")

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{self.name}({options})"


class EagerBackend(Backend):
    """The reference backend: a Python loop over time steps, one call of ``step`` per step."""

    def run(self, loop: Loop) -> tuple[TensorDict, TensorDict]:
        return run_steps(loop)


def run_steps(loop: Loop, history: list[TensorDict] | None = None) -> tuple[TensorDict, TensorDict]:
    """The reference loop: ``step`` once per step, fluxes stacked over time.

    With ``history``, the state entering each step is appended to it (what a backward pass that
    recomputes steps needs).
    """
    forcing_steps = {k: v.unbind(0) for k, v in loop.forcings.items()}
    dynamic_steps = {k: v.unbind(0) for k, v in loop.dynamic.items()}
    state = dict(loop.state)
    kept: list[str] | None = None
    collected: dict[str, list[torch.Tensor]] = {}
    for t in range(loop.n_time):
        if history is not None:
            history.append(state)
        params_t = dict(loop.static)
        for name, steps in dynamic_steps.items():
            params_t[name] = steps[t]
        state, fluxes = loop.step(state, {k: v[t] for k, v in forcing_steps.items()}, params_t)
        if kept is None:
            kept = loop.kept(fluxes)
            collected = {name: [] for name in kept}
        for name in kept:
            collected[name].append(fluxes[name])
    return state, {name: torch.stack(values) for name, values in collected.items()}
