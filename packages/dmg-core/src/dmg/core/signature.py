"""What a physics model *is*: its immutable per-instance :class:`Signature`, process slots and fillers.

A model's signature lists the named quantities it reads (forcings, attributes), learns (its
:class:`~dmg.core.parameters.ParameterSpec`), carries (states) and writes (outputs), the processes a
network may replace (:class:`ProcessSlot`), how it conserves mass and which warm-up modes it supports.
It is fixed when the model is built and never changes; how the model is *run* is the engine's
business (:mod:`dmg.core.engine`).

:class:`Processes` is what a step receives for its slots: the fillers a coupling supplies for this
run, passed explicitly, never stored on the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dmg.core.errors import SpecError
from dmg.core.parameters import ParameterSpec
from dmg.core.variables import MassBalance, State, Variable

TensorDict = dict[str, torch.Tensor]
WarmupMode = Literal["spinup", "inline"]
"""``spinup``: a gradient-free pass over the first ``warmup`` steps sets the initial state,
and outputs cover the remaining steps.  ``inline``: one pass over all steps, the first
``warmup`` outputs are dropped."""
WARMUP_MODES: tuple[WarmupMode, ...] = ("spinup", "inline")


@dataclass(frozen=True)
class ProcessSlot:
    """A process inside ``step`` that a network may replace (see ``ProcessReplacement``).

    Parameters
    ----------
    name
        Identifier used by the coupling and in configs.
    inputs
        Names of the quantities ``step`` passes to the process, in the order a network sees them.
    unit
        Unit of the process's value.
    low, high
        Bounds of the value: with both, a network's output ``y`` becomes
        ``low + sigmoid(y) * (high - low)``; with only ``low``, ``low + softplus(y)``;
        with neither, ``y`` unchanged.
    description
        One line for documentation.
    """

    name: str
    inputs: tuple[str, ...]
    unit: str = ""
    low: float | None = None
    high: float | None = None
    description: str = ""

    def bound(self, y: torch.Tensor) -> torch.Tensor:
        """Map an unbounded network output into the slot's bounds."""
        if self.low is not None and self.high is not None:
            return self.low + torch.sigmoid(y) * (self.high - self.low)
        if self.low is not None:
            return self.low + nn.functional.softplus(y)
        if self.high is not None:
            return self.high - nn.functional.softplus(-y)
        return y

    def renamed(self, name: str) -> ProcessSlot:
        """The same slot under another name (composites prefix their members' slots)."""
        return ProcessSlot(name, self.inputs, self.unit, self.low, self.high, self.description)


SlotFiller = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
"""``filler(inputs) -> value``: computes a process slot from the inputs the step passes."""


class Processes(Mapping[str, SlotFiller]):
    """The fillers of a model's process slots for one run: slot name -> :data:`SlotFiller`.

    A step asks for a slot's value with :meth:`compute`; slots nobody fills take the model's default.
    Immutable; an empty ``Processes()`` means every slot takes its default.
    """

    __slots__ = ("_fillers",)

    def __init__(self, fillers: Mapping[str, SlotFiller] | None = None) -> None:
        self._fillers: dict[str, SlotFiller] = dict(fillers or {})

    def __getitem__(self, name: str) -> SlotFiller:
        return self._fillers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fillers)

    def __len__(self) -> int:
        return len(self._fillers)

    def __repr__(self) -> str:
        return f"Processes({sorted(self._fillers)})"

    def compute(
        self, name: str, default: torch.Tensor | Callable[[], torch.Tensor], **inputs: torch.Tensor
    ) -> torch.Tensor:
        """The value of slot ``name``: its filler's, given the slot's declared ``inputs``, else ``default``.

        ``default`` may be a callable, evaluated only when no filler replaces the process.
        """
        filler = self._fillers.get(name)
        if filler is None:
            return default() if callable(default) else default
        return filler(inputs)

    def only(self, names: tuple[str, ...], prefix: str = "") -> Processes:
        """The fillers of ``prefix + name`` for each of ``names``, keyed by ``name`` (for a composite's member)."""
        return Processes({n: self._fillers[prefix + n] for n in names if prefix + n in self._fillers})


NO_PROCESSES = Processes()


@dataclass(frozen=True)
class Signature:
    """The immutable description of one physics model instance.

    Parameters
    ----------
    forcings
        Time series the model reads, ``[time, unit]`` each.
    attributes
        Static per-unit inputs, ``[unit]`` each.
    parameters
        The model's :class:`~dmg.core.parameters.ParameterSpec` (with ``nmul`` and the dynamic ones).
    states
        Quantities carried from step to step, ``[unit, nmul]`` each, with their initial values.
    outputs
        What the model returns, ``[time, unit]`` series or ``[unit]`` summaries.
    slots
        Processes a network may replace.
    mass_balance
        How the model conserves mass, or ``None``.
    warmup_modes
        Warm-up modes the model supports (see :data:`WarmupMode`).
    """

    forcings: tuple[Variable, ...] = ()
    attributes: tuple[Variable, ...] = ()
    parameters: ParameterSpec = field(default_factory=lambda: ParameterSpec(()))
    states: tuple[State, ...] = ()
    outputs: tuple[Variable, ...] = ()
    slots: tuple[ProcessSlot, ...] = ()
    mass_balance: MassBalance | None = None
    warmup_modes: tuple[WarmupMode, ...] = WARMUP_MODES

    def __post_init__(self) -> None:
        for group in ("forcings", "attributes", "states", "outputs", "slots", "warmup_modes"):
            object.__setattr__(self, group, tuple(getattr(self, group)))
        for group, names in (
            ("forcings", self.forcing_names),
            ("attributes", self.attribute_names),
            ("states", self.state_names),
            ("outputs", self.output_names),
            ("slots", self.slot_names),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise SpecError(f"{group} declared more than once: {repeated}")
        unknown_modes = [m for m in self.warmup_modes if m not in WARMUP_MODES]
        if unknown_modes or not self.warmup_modes:
            raise SpecError(f"warmup_modes must be a non-empty subset of {list(WARMUP_MODES)}, got {self.warmup_modes}")
        balance = self.mass_balance
        if balance is not None:
            fluxes = set(self.forcing_names) | set(self.output_names)
            bad = [n for n in (*balance.inputs, *balance.outputs) if n not in fluxes]
            bad += [n for n in balance.storages if n not in self.state_names]
            if bad:
                raise SpecError(
                    f"mass balance names {bad} that are not declared (inputs and outputs must be forcings or "
                    f"outputs, storages must be states)"
                )

    @property
    def forcing_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.forcings)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.attributes)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.outputs)

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)

    def slot(self, name: str) -> ProcessSlot:
        """The declared :class:`ProcessSlot` called ``name``."""
        for s in self.slots:
            if s.name == name:
                return s
        raise SpecError(f"no process slot {name!r}; slots: {list(self.slot_names) or 'none'}")
