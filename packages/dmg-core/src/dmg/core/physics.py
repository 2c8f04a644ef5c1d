"""The :class:`PhysicsModel` base class: declarations, the time loop, warm-up and state carry-over.

A process model declares what it reads (``forcings``, ``attributes``), what it learns
(``physical_parameters``), what it carries (``states``), what it writes (``outputs``),
optionally which processes a network may replace (``slots``) and how it conserves mass
(``mass_balance``), and implements one time step as pure tensor code::

    class Bucket(PhysicsModel):
        forcings = (Variable("P", "mm/day"), Variable("PET", "mm/day"))
        physical_parameters = (Parameter("k", 0.01, 0.5, "1/day"),)
        states = (State("S", "mm", initial=10.0),)
        outputs = (Variable("Q", "mm/day"), Variable("ET", "mm/day"))

        def step(self, state, forcing_t, params_t):
            s = state["S"] + forcing_t["P"]
            et = torch.minimum(s, forcing_t["PET"])
            q = params_t["k"] * (s - et)
            return {"S": s - et - q}, {"Q": q, "ET": et}

Inside ``step`` every state and per-component parameter is ``[unit, nmul]``; forcings,
attributes and shared parameters are ``[unit, 1]`` so they broadcast against them.
Fluxes returned by ``step`` are stacked over time and averaged over components
(:meth:`PhysicsModel.finalize`) into ``[time, unit]`` outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from dmg.core import engine
from dmg.core.components import PhysicsConfig
from dmg.core.errors import InputError, ShapeError, SpecError
from dmg.core.parameters import Parameter, ParameterSpec
from dmg.core.variables import MassBalance, State, Variable

TensorDict = dict[str, torch.Tensor]
WarmupMode = Literal["spinup", "inline"]
"""``spinup``: a gradient-free pass over the first ``warmup`` steps sets the initial state,
and outputs cover the remaining steps.  ``inline``: one pass over all steps, the first
``warmup`` outputs are dropped."""


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


SlotFiller = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class Outputs(dict):
    """Named outputs (``[time, unit]`` series or ``[unit]`` summaries) plus the final ``state``.

    Pass ``outputs.state`` as ``state=`` to the next call to continue a simulation.
    """

    state: TensorDict

    def __init__(self, values: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor] | None = None):
        super().__init__(values)
        self.state = dict(state or {})


class PhysicsModel(nn.Module):
    """Base class of every process model.

    Parameters
    ----------
    nmul
        Number of parallel components per unit, each with its own parameters.
    dynamic
        Names of parameters that vary in time.
    warmup_mode
        Default warm-up mode (see :data:`WarmupMode`).
    backend
        Engine backend that runs :meth:`step` (see :mod:`dmg.core.engine`).
    backend_options
        Options of that backend, e.g. ``{"chunk_size": 32}``.
    """

    forcings: ClassVar[tuple[Variable, ...]] = ()
    attributes: ClassVar[tuple[Variable, ...]] = ()
    physical_parameters: ClassVar[tuple[Parameter, ...]] = ()
    states: ClassVar[tuple[State, ...]] = ()
    outputs: ClassVar[tuple[Variable, ...]] = ()
    slots: ClassVar[tuple[ProcessSlot, ...]] = ()
    mass_balance: ClassVar[MassBalance | None] = None
    Config: ClassVar[type[PhysicsConfig]] = PhysicsConfig

    @classmethod
    def from_config(cls, config: PhysicsConfig, **context: object) -> PhysicsModel:
        """Build the model from its validated ``Config``."""
        return cls(**config.model_dump(), **context)

    def __init__(
        self,
        *,
        nmul: int = 1,
        dynamic: tuple[str, ...] | list[str] = (),
        warmup_mode: WarmupMode = "spinup",
        backend: str = "eager",
        backend_options: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        if warmup_mode not in ("spinup", "inline"):
            raise SpecError(f"warmup_mode must be 'spinup' or 'inline', got {warmup_mode!r}")
        self.warmup_mode: WarmupMode = warmup_mode
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self._fillers: dict[str, SlotFiller] = {}
        self.parameter_spec = ParameterSpec(
            self.declare_parameters(dynamic=tuple(dynamic)), dynamic=frozenset(dynamic), nmul=nmul
        )

    # ------------------------------------------------------------ declarations
    def declare_parameters(self, dynamic: tuple[str, ...]) -> tuple[Parameter, ...]:
        """The model's parameters; override when they depend on the configuration."""
        return tuple(self.physical_parameters)

    @property
    def nmul(self) -> int:
        """Number of parallel components per unit."""
        return self.parameter_spec.nmul

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

    def initial_state(
        self, n_units: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> TensorDict:
        """Every state at its declared initial value, ``[unit, nmul]``."""
        return {s.name: torch.full((n_units, self.nmul), s.initial, dtype=dtype, device=device) for s in self.states}

    # ------------------------------------------------------------------ slots
    def process(
        self, name: str, default: torch.Tensor | Callable[[], torch.Tensor], **inputs: torch.Tensor
    ) -> torch.Tensor:
        """Value of the process slot ``name``: a network's if one fills it, else ``default``.

        Call this from :meth:`step` with the slot's declared inputs as keywords.
        """
        filler = self._fillers.get(name)
        if filler is None:
            return default() if callable(default) else default
        return filler(inputs)

    def slot(self, name: str) -> ProcessSlot:
        """The declared :class:`ProcessSlot` called ``name``."""
        for s in self.slots:
            if s.name == name:
                return s
        raise SpecError(
            f"{type(self).__name__} has no process slot {name!r}; slots: {[s.name for s in self.slots] or 'none'}"
        )

    @contextmanager
    def filling(self, name: str, filler: SlotFiller) -> Iterator[None]:
        """Within the block, ``filler`` computes process slot ``name``."""
        self.slot(name)
        previous = self._fillers.get(name)
        self._fillers[name] = filler
        try:
            yield
        finally:
            if previous is None:
                self._fillers.pop(name, None)
            else:
                self._fillers[name] = previous

    # -------------------------------------------------------------- the model
    def step(self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict) -> tuple[TensorDict, TensorDict]:
        """Advance one time step; return the new state and this step's fluxes."""
        raise NotImplementedError(f"{type(self).__name__} must implement step() or override simulate()")

    def finalize(self, fluxes: TensorDict, params: TensorDict, attributes: TensorDict) -> TensorDict:
        """Turn stacked step fluxes ``[time, unit, nmul]`` into outputs ``[time, unit]``.

        The default averages every component-resolved flux over its components.
        Override to add derived outputs (e.g. summaries over the whole series).
        """
        return {name: value.mean(dim=-1) for name, value in fluxes.items()}

    def forward(
        self,
        forcings: torch.Tensor | Mapping[str, torch.Tensor],
        params: Mapping[str, torch.Tensor],
        *,
        attributes: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
        warmup: int = 0,
        warmup_mode: WarmupMode | None = None,
        warmup_params: Mapping[str, torch.Tensor] | None = None,
    ) -> Outputs:
        """Simulate the model over a forcing series.

        Parameters
        ----------
        forcings
            ``[time, unit, n_forcings]`` in declared order, or a mapping name -> ``[time, unit]``.
        params
            Physical parameter values (see :mod:`dmg.core.parameters` for shapes); parameters
            with a ``default`` may be left out.
        attributes
            Static per-unit inputs the model declares, name -> ``[unit]``.
        state
            Initial state (e.g. ``outputs.state`` of a previous call); default: declared initial values.
        warmup
            Number of leading steps used to spin up the state; outputs exclude them.
        warmup_mode
            ``spinup`` or ``inline`` (default: the model's ``warmup_mode``).
        warmup_params
            Parameters for the spin-up pass (default: ``params``).

        Returns
        -------
        Outputs
            Outputs after warm-up, ``[time - warmup, unit]``, with the final state in ``.state``.
        """
        forcing_map = self.check_forcings(forcings)
        n_time, n_units = next(iter(forcing_map.values())).shape[:2]
        params = self.check_params(params, n_time, n_units, like=next(iter(forcing_map.values())))
        if warmup_params is not None:
            warmup_params = self.check_params(warmup_params, n_time, n_units, like=next(iter(forcing_map.values())))
        attrs = self.check_attributes(attributes, n_units)
        if not 0 <= warmup < n_time:
            raise InputError(f"warmup must be in [0, {n_time}) for a series of {n_time} steps, got {warmup}")
        outputs, final_state, n_trim = self.simulate(
            forcing_map,
            params,
            attrs,
            state,
            warmup=warmup,
            warmup_mode=warmup_mode or self.warmup_mode,
            warmup_params=warmup_params,
        )
        return Outputs(trim_leading(outputs, n_trim), final_state)

    def simulate(
        self,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        state: Mapping[str, torch.Tensor] | None,
        *,
        warmup: int,
        warmup_mode: WarmupMode,
        warmup_params: TensorDict | None = None,
    ) -> tuple[TensorDict, TensorDict, int]:
        """Run the model on checked inputs; return outputs, final state and leading steps still to drop.

        Composites and models without a time loop override this; models with a loop only
        implement :meth:`step`.
        """
        first = next(iter(forcings.values()))
        n_time, n_units = first.shape[:2]
        if state is None:
            state = self.initial_state(n_units, dtype=first.dtype, device=first.device)
        else:
            self.check_state(state, n_units)
        if warmup and warmup_mode == "spinup":
            spin_params = warmup_params if warmup_params is not None else params
            with torch.no_grad():
                state, _ = self._integrate(
                    state, slice_time(forcings, 0, warmup), self.slice_params(spin_params, 0, warmup), attributes
                )
            state = {k: v.detach() for k, v in state.items()}
            forcings = slice_time(forcings, warmup, n_time)
            params = self.slice_params(params, warmup, n_time)
            n_trim = 0
        else:
            n_trim = warmup
        state, fluxes = self._integrate(dict(state), forcings, params, attributes)
        return self.finalize(fluxes, params, attributes), state, n_trim

    def _integrate(self, state, forcings, params, attributes) -> tuple[TensorDict, TensorDict]:
        n_time = next(iter(forcings.values())).shape[0]
        static: TensorDict = {k: v.unsqueeze(-1) for k, v in attributes.items()}
        dynamic: TensorDict = {}
        for p in self.parameter_spec:
            value = params[p.name]
            if not p.per_component:
                value = value.unsqueeze(-1)
            if self.is_series(p, params[p.name]):
                dynamic[p.name] = value
            else:
                static[p.name] = value
        forcing_steps = {k: v.unsqueeze(-1) for k, v in forcings.items()}
        if not forcing_steps and not dynamic:
            raise SpecError(f"{type(self).__name__} has no forcing to set the number of steps ({n_time})")
        return engine.integrate(
            self.step, state, forcing_steps, static, dynamic, backend=self.backend, **self.backend_options
        )

    def is_series(self, parameter: Parameter, value: torch.Tensor) -> bool:
        """Whether ``value`` of ``parameter`` is a time series (a dynamic one given over time)."""
        return parameter.name in self.parameter_spec.dynamic and value.dim() == (3 if parameter.per_component else 2)

    def slice_params(self, params: Mapping[str, torch.Tensor], start: int, stop: int) -> TensorDict:
        """Slice the time series among ``params`` to ``[start:stop]``; static values pass unchanged."""
        out = dict(params)
        for p in self.parameter_spec:
            if p.name in out and self.is_series(p, out[p.name]):
                out[p.name] = out[p.name][start:stop]
        return out

    # ------------------------------------------------------------- checking
    def check_forcings(self, forcings: torch.Tensor | Mapping[str, torch.Tensor]) -> TensorDict:
        """Forcings as a mapping name -> ``[time, unit]``; raise if missing, misshapen or non-finite."""
        names = self.forcing_names
        if isinstance(forcings, torch.Tensor):
            if forcings.dim() != 3 or forcings.shape[-1] != len(names):
                raise ShapeError(
                    f"{type(self).__name__} forcings must be [time, unit, {len(names)}] "
                    f"with variables {list(names)}, got shape {tuple(forcings.shape)}"
                )
            forcing_map = dict(zip(names, forcings.unbind(-1)))
        else:
            missing = [n for n in names if n not in forcings]
            if missing:
                raise InputError(
                    f"{type(self).__name__} is missing forcings {missing}; it needs {list(names)}, "
                    f"got {sorted(forcings)}"
                )
            forcing_map = {n: forcings[n] for n in names}
        shapes = {n: tuple(v.shape) for n, v in forcing_map.items()}
        if len(set(shapes.values())) > 1 or any(len(s) != 2 for s in shapes.values()):
            raise ShapeError(f"forcings must all be [time, unit] of one shape, got {shapes}")
        for name, value in forcing_map.items():
            check_finite(value, f"forcing {name!r}", ("time", "unit"))
        return forcing_map

    def check_params(
        self, params: Mapping[str, torch.Tensor], n_time: int, n_units: int, like: torch.Tensor
    ) -> TensorDict:
        """Parameters with defaults filled in; raise if unknown, missing or misshapen."""
        full = {
            k: v
            for k, v in self.parameter_spec.defaults(n_units, dtype=like.dtype, device=like.device).items()
            if k not in params
        }
        full.update(params)
        self.parameter_spec.validate(full, n_time, n_units)
        for name, value in full.items():
            check_finite(value, f"parameter {name!r}")
        return full

    def check_attributes(self, attributes: Mapping[str, torch.Tensor] | None, n_units: int) -> TensorDict:
        """Declared attributes as name -> ``[unit]``; raise if missing or misshapen."""
        attributes = dict(attributes or {})
        missing = [n for n in self.attribute_names if n not in attributes]
        if missing:
            raise InputError(f"{type(self).__name__} needs attributes {missing} ([unit] each)")
        out = {}
        for name in self.attribute_names:
            value = attributes[name]
            if tuple(value.shape) != (n_units,):
                raise ShapeError(f"attribute {name!r} must be [unit] = ({n_units},), got {tuple(value.shape)}")
            check_finite(value, f"attribute {name!r}", ("unit",))
            out[name] = value
        return out

    def check_state(self, state: Mapping[str, torch.Tensor], n_units: int) -> None:
        """Raise if ``state`` lacks a declared state or has the wrong shape."""
        for name in self.state_names:
            if name not in state:
                raise InputError(f"state is missing {name!r}; {type(self).__name__} carries {list(self.state_names)}")
            if tuple(state[name].shape) != (n_units, self.nmul):
                raise ShapeError(
                    f"state {name!r} must be [unit, nmul] = ({n_units}, {self.nmul}), got {tuple(state[name].shape)}"
                )

    def extra_repr(self) -> str:
        spec = self.parameter_spec
        dyn = f", dynamic={sorted(spec.dynamic)}" if spec.dynamic else ""
        return f"nmul={spec.nmul}{dyn}, warmup_mode={self.warmup_mode!r}, backend={self.backend!r}"


def check_finite(value: torch.Tensor, what: str, dims: tuple[str, ...] = ()) -> None:
    """Raise :class:`InputError` naming ``what`` and the first non-finite position.

    ``dims`` names the dimensions (e.g. ``("time", "unit")``) for the message.
    """
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        first = [int(i) for i in bad.nonzero()[0]]
        names = list(dims) + [f"dim {d}" for d in range(len(dims), len(first))]
        where = ", ".join(f"{n} index {i}" for n, i in zip(names, first))
        raise InputError(f"{what} has {int(bad.sum())} non-finite values (NaN or inf), first at {where}")


def slice_time(values: Mapping[str, torch.Tensor], start: int, stop: int) -> TensorDict:
    """Slice every ``[time, ...]`` series in ``values`` to ``[start:stop]``."""
    return {k: v[start:stop] for k, v in values.items()}


def trim_leading(outputs: Mapping[str, torch.Tensor], n: int) -> TensorDict:
    """Drop the first ``n`` steps of every ``[time, unit, ...]`` output; ``[unit]`` summaries pass."""
    if n == 0:
        return dict(outputs)
    return {k: v[n:] if v.dim() >= 2 else v for k, v in outputs.items()}
