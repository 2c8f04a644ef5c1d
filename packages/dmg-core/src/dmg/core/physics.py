"""Physics models: :class:`PhysicsModel` and the two ways to implement one, :class:`StepModel` and :class:`SeriesModel`.

A process model declares what it reads (``forcings``, ``attributes``), what it learns
(``physical_parameters``), what it carries (``states``), what it writes (``outputs``),
optionally which processes a network may replace (``slots``) and how it conserves mass
(``mass_balance``), and implements one time step as pure tensor code::

    class Bucket(StepModel):
        forcings = (Variable("P", "mm/day"), Variable("PET", "mm/day"))
        physical_parameters = (Parameter("k", 0.01, 0.5, "1/day"),)
        states = (State("S", "mm", initial=10.0),)
        outputs = (Variable("Q", "mm/day"), Variable("ET", "mm/day"))

        def step(self, state, forcing_t, params_t, processes):
            s = state["S"] + forcing_t["P"]
            et = torch.minimum(s, forcing_t["PET"])
            q = params_t["k"] * (s - et)
            return {"S": s - et - q}, {"Q": q, "ET": et}

Inside ``step`` every state and per-component parameter is ``[unit, nmul]``; forcings,
attributes and shared parameters are ``[unit, 1]`` so they broadcast against them.
Fluxes returned by ``step`` are stacked over time and averaged over components into
``[time, unit]`` outputs by the engine.

The class-level declarations are defaults; each instance has its own immutable
:class:`~dmg.core.signature.Signature` (``model.signature``), built once in ``__init__``. A model
whose declarations depend on its options passes them to ``super().__init__`` (e.g.
``states=(...)``); reading ``model.states`` on an instance gives the instance's own, and
assigning to it is an error.

Models with no time loop derive from :class:`SeriesModel` and compute the whole series in
``simulate``. Neither kind contains warm-up logic or loops over time itself: the engine
(:func:`dmg.core.engine.integrate`) owns both.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import EllipsisType
from typing import Any, ClassVar

import torch
from torch import nn

from dmg.core.components import Component, PhysicsConfig
from dmg.core.errors import SpecError
from dmg.core.parameters import Parameter, ParameterSpec
from dmg.core.signature import (
    NO_PROCESSES,
    WARMUP_MODES,
    Processes,
    ProcessSlot,
    Signature,
    SlotFiller,
    TensorDict,
    WarmupMode,
)
from dmg.core.variables import MassBalance, State, Variable

__all__ = [
    "Composite",
    "Outputs",
    "PhysicsModel",
    "Processes",
    "ProcessSlot",
    "SeriesModel",
    "Signature",
    "SlotFiller",
    "StepModel",
    "TensorDict",
    "WarmupMode",
]

_DECLARATIONS = (
    "forcings",
    "attributes",
    "physical_parameters",
    "states",
    "outputs",
    "slots",
    "mass_balance",
    "warmup_modes",
)
"""Class attributes that declare a model's signature."""

_SIGNATURE_FIELD = {"physical_parameters": "parameters"}


class _Declaration:
    """A class-level declaration: the class's default on the class, the instance's signature on an instance."""

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None or "signature" not in instance.__dict__:
            return self.default
        value = getattr(instance.signature, _SIGNATURE_FIELD.get(self.name, self.name))
        return value.parameters if isinstance(value, ParameterSpec) else value

    def __set__(self, instance: Any, value: Any) -> None:
        raise AttributeError(
            f"{type(instance).__name__}.{self.name} is part of the model's immutable signature; "
            f"pass {_SIGNATURE_FIELD.get(self.name, self.name)}=... to PhysicsModel.__init__ instead"
        )


def _check_simulate_signature(cls: type) -> None:
    """A ``simulate`` that cannot take the engine's arguments fails at class definition, saying what to write."""
    simulate = cls.__dict__.get("simulate")
    series_base = globals().get("SeriesModel")
    if simulate is None or series_base is None or not issubclass(cls, series_base):
        return
    try:
        arguments = inspect.signature(simulate).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins and C callables
        return
    takes_any = any(a.kind in (a.VAR_POSITIONAL, a.VAR_KEYWORD) for a in arguments.values())
    if not takes_any and not {"processes", "save"} <= set(arguments):
        raise SpecError(
            f"{cls.__name__}.simulate must take (self, forcings, params, attributes, state, processes, save)"
        )


def _check_step_signature(cls: type) -> None:
    """A ``step`` written for the old three-argument interface fails at class definition, saying what changed."""
    step = cls.__dict__.get("step")
    if step is None:
        return
    step_base = globals().get("StepModel")
    if step_base is not None and not issubclass(cls, step_base):
        raise SpecError(f"{cls.__name__} defines step(): derive it from dmg.core.StepModel, not PhysicsModel")
    try:
        arguments = list(inspect.signature(step).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - builtins and C callables
        return
    positional = [a for a in arguments if a.kind in (a.POSITIONAL_ONLY, a.POSITIONAL_OR_KEYWORD)]
    variadic = any(a.kind is a.VAR_POSITIONAL for a in arguments)
    if len(positional) != 5 and not variadic:
        raise SpecError(
            f"{cls.__name__}.step must take (self, state, forcing_t, params_t, processes); process fillers are "
            "an explicit argument: call processes.compute(slot, default, **inputs) instead of self.process(...)"
        )


class Outputs(dict):
    """Named outputs (``[time, unit]`` series or ``[unit]`` summaries) plus the final ``state``.

    Pass ``outputs.state`` as ``state=`` to the next call to continue a simulation.
    """

    state: TensorDict

    def __init__(self, values: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor] | None = None):
        super().__init__(values)
        self.state = dict(state or {})


class PhysicsModel(Component, nn.Module):
    """Base class of every process model: an immutable :attr:`signature` plus how to compute it.

    Do not derive from this class directly: implement a :class:`StepModel` (``step``, the common
    case), a :class:`SeriesModel` (``simulate`` over the whole series), or compose models with
    :class:`~dmg.core.composites.Chain` and :class:`~dmg.core.composites.Ensemble`.

    Parameters
    ----------
    config
        The model's ``Config`` (or a mapping of its options); alternatively give the options as keywords.
    forcings, attributes, parameters, states, outputs, slots, mass_balance, warmup_modes
        For subclasses: this instance's declarations where they differ from the class-level ones
        (``parameters`` may be a tuple of :class:`~dmg.core.parameters.Parameter` or a whole
        :class:`~dmg.core.parameters.ParameterSpec`).
    **options
        Options of the model's ``Config``: ``nmul`` (parallel components per unit), ``dynamic``
        (time-varying parameters), ``warmup_mode`` and the model's own.
    """

    forcings: ClassVar[tuple[Variable, ...]] = ()
    attributes: ClassVar[tuple[Variable, ...]] = ()
    physical_parameters: ClassVar[tuple[Parameter, ...]] = ()
    states: ClassVar[tuple[State, ...]] = ()
    outputs: ClassVar[tuple[Variable, ...]] = ()
    slots: ClassVar[tuple[ProcessSlot, ...]] = ()
    mass_balance: ClassVar[MassBalance | None] = None
    warmup_modes: ClassVar[tuple[WarmupMode, ...]] = WARMUP_MODES
    Config: ClassVar[type[PhysicsConfig]] = PhysicsConfig

    signature: Signature
    warmup_mode: WarmupMode

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _DECLARATIONS:
            if name in cls.__dict__ and not isinstance(cls.__dict__[name], _Declaration):
                setattr(cls, name, _Declaration(name, cls.__dict__[name]))
        _check_step_signature(cls)
        _check_simulate_signature(cls)

    def __init__(
        self,
        config: Any = None,
        /,
        *,
        forcings: tuple[Variable, ...] | None = None,
        attributes: tuple[Variable, ...] | None = None,
        parameters: tuple[Parameter, ...] | ParameterSpec | None = None,
        states: tuple[State, ...] | None = None,
        outputs: tuple[Variable, ...] | None = None,
        slots: tuple[ProcessSlot, ...] | None = None,
        mass_balance: MassBalance | EllipsisType | None = ...,
        warmup_modes: tuple[WarmupMode, ...] | None = None,
        **options: Any,
    ) -> None:
        nn.Module.__init__(self)
        self.config = self.validate_config(config, options)
        cls = type(self)
        if not isinstance(parameters, ParameterSpec):
            declared = cls.physical_parameters if parameters is None else tuple(parameters)
            dynamic = tuple(getattr(self.config, "dynamic", ()))
            parameters = ParameterSpec(declared, dynamic=frozenset(dynamic), nmul=getattr(self.config, "nmul", 1))
        signature = Signature(
            forcings=cls.forcings if forcings is None else forcings,
            attributes=cls.attributes if attributes is None else attributes,
            parameters=parameters,
            states=cls.states if states is None else states,
            outputs=cls.outputs if outputs is None else outputs,
            slots=cls.slots if slots is None else slots,
            mass_balance=cls.mass_balance if isinstance(mass_balance, EllipsisType) else mass_balance,
            warmup_modes=cls.warmup_modes if warmup_modes is None else warmup_modes,
        )
        object.__setattr__(self, "signature", signature)
        mode = getattr(self.config, "warmup_mode", None) or signature.warmup_modes[0]
        if mode not in signature.warmup_modes:
            raise SpecError(
                f"warmup_mode: {cls.__name__} supports warm-up modes {list(signature.warmup_modes)}, got {mode!r}"
            )
        self.warmup_mode = mode

    # ------------------------------------------------------------ declarations
    @property
    def parameter_spec(self) -> ParameterSpec:
        """The model's parameters, with ``nmul`` and the dynamic ones."""
        return self.signature.parameters

    @property
    def nmul(self) -> int:
        """Number of parallel components per unit."""
        return self.signature.parameters.nmul

    @property
    def forcing_names(self) -> tuple[str, ...]:
        return self.signature.forcing_names

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return self.signature.attribute_names

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.signature.state_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.signature.output_names

    def slot(self, name: str) -> ProcessSlot:
        """The declared :class:`ProcessSlot` called ``name``."""
        try:
            return self.signature.slot(name)
        except SpecError as exc:
            raise SpecError(f"{type(self).__name__} has {exc}") from None

    def state_shapes(self, n_units: int) -> dict[str, tuple[int, ...]]:
        """The shape of every state for ``n_units`` units: ``[unit, nmul]``."""
        return {name: (n_units, self.nmul) for name in self.signature.state_names}

    def forcings_needed(self, save: frozenset[str] | None) -> tuple[str, ...]:
        """The forcings needed to compute the outputs ``save`` (``None``: all outputs); default: every forcing.

        A model whose outputs depend on only some forcings (e.g. a routing of several flows) narrows
        this, so that a composite asks the models before it for no more than that.
        """
        return self.signature.forcing_names

    def initial_state(
        self, n_units: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> TensorDict:
        """Every state at its declared initial value, ``[unit, nmul]``."""
        shapes = self.state_shapes(n_units)
        return {
            s.name: torch.full(shapes[s.name], s.initial, dtype=dtype, device=device) for s in self.signature.states
        }

    # -------------------------------------------------------------- the model
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
        processes: Mapping[str, SlotFiller] | None = None,
        save: Any = None,
        engine: Any = None,
    ) -> Outputs:
        """Simulate the model over a forcing series through :func:`dmg.core.engine.integrate`.

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
            Number of leading steps used to warm up the state; outputs exclude them.
        warmup_mode
            ``spinup`` or ``inline`` (default: the model's ``warmup_mode``).
        warmup_params
            Parameters for the spin-up pass (default: ``params``).
        processes
            Fillers of process slots, slot name -> ``filler(inputs) -> value``.
        save
            Names of the outputs to keep (default: all); the others are never stacked.
        engine
            How to run: an :class:`~dmg.core.engine.Engine`, a backend name, or ``None`` for the default.

        Returns
        -------
        Outputs
            Outputs after warm-up, ``[time - warmup, unit]``, with the final state in ``.state``.
        """
        from dmg.core.engine import integrate  # the engine runs models; models do not import it at load

        return integrate(
            self,
            forcings,
            params,
            attributes=attributes,
            state=state,
            warmup=warmup,
            warmup_mode=warmup_mode,
            warmup_params=warmup_params,
            processes=processes,
            save=save,
            engine=engine,
        )

    def extra_repr(self) -> str:
        spec = self.parameter_spec
        dyn = f", dynamic={sorted(spec.dynamic)}" if spec.dynamic else ""
        return f"nmul={spec.nmul}{dyn}, warmup_mode={self.warmup_mode!r}"


class StepModel(PhysicsModel):
    """A model defined by one time step; the engine runs it over time (see the module docstring)."""

    def step(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict, processes: Processes
    ) -> tuple[TensorDict, TensorDict]:
        """Advance one time step; return the new state and this step's fluxes.

        Parameters
        ----------
        state
            Every state, ``[unit, nmul]``.
        forcing_t
            This step's forcings, ``[unit, 1]``.
        params_t
            Parameters (``[unit, nmul]`` per component, ``[unit, 1]`` shared) and attributes (``[unit, 1]``).
        processes
            Fillers of the model's process slots: ``processes.compute(slot, default, **inputs)``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement step()")


class SeriesModel(PhysicsModel):
    """A model computed over the whole series at once, with no loop over time steps.

    Implement :meth:`simulate`. The engine slices the series for warm-up and carries ``state``
    between calls, so ``simulate`` never sees a warm-up length.
    """

    def simulate(
        self,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        state: TensorDict,
        processes: Processes = NO_PROCESSES,
        save: frozenset[str] | None = None,
    ) -> tuple[TensorDict, TensorDict]:
        """Outputs over the whole series, ``[time, unit]`` (or ``[unit]`` summaries), and the final state.

        Parameters
        ----------
        forcings
            name -> ``[time, unit]``: those :meth:`forcings_needed` names for ``save``.
        params
            Checked physical parameters (shapes as in :mod:`dmg.core.parameters`).
        attributes
            name -> ``[unit]``.
        state
            The state at the start of the series (declared initial values unless carried over).
        processes
            Fillers of the model's process slots.
        save
            The outputs the caller keeps (``None``: all); the model may compute only those.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement simulate()")


class Composite(PhysicsModel):
    """A model made of member models (see :mod:`dmg.core.composites`).

    Subclasses build their signature from their members' signatures, pass it to
    ``super().__init__`` and implement :meth:`run_members`: how members connect in one pass over
    a series. The engine runs each member (its loop, its backend) and owns warm-up.
    Member ``m``'s states appear in the composite as ``"m.<state>"``.
    """

    members: nn.ModuleDict

    def __init__(self, members: Mapping[str, PhysicsModel], config: Any = None, /, **declared: Any) -> None:
        super().__init__(config, **declared)
        self.members = nn.ModuleDict(dict(members))
        if getattr(self.config, "warmup_mode", None) is None:
            mode = next(iter(members.values())).warmup_mode
            if mode not in self.signature.warmup_modes:
                raise SpecError(
                    f"{type(self).__name__}: its first member warms up {mode!r}, but its members together "
                    f"support only {list(self.signature.warmup_modes)}; set warmup_mode"
                )
            self.warmup_mode = mode

    def state_shapes(self, n_units: int) -> dict[str, tuple[int, ...]]:
        return {
            f"{name}.{k}": shape for name, m in self.members.items() for k, shape in m.state_shapes(n_units).items()
        }

    @staticmethod
    def member_state(state: Mapping[str, torch.Tensor], name: str) -> TensorDict:
        """The states of member ``name`` (without its prefix) from the composite's ``state``."""
        prefix = f"{name}."
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

    def run_members(
        self, inputs: Any, state: TensorDict, processes: Processes, save: frozenset[str] | None, run: Any
    ) -> tuple[TensorDict, TensorDict]:
        """One pass over the series: run members with ``run(member, inputs, state, processes, save)``.

        Parameters
        ----------
        inputs
            The composite's checked :class:`~dmg.core.engine.Inputs`.
        state
            The composite's state at the start of the pass (prefixed member states).
        processes
            Fillers of the composite's process slots.
        save
            Outputs the caller keeps (``None``: all).
        run
            The engine's runner of one member pass, returning ``(outputs, final_state)``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement run_members()")

    def extra_repr(self) -> str:
        return f"nmul={self.nmul}, warmup_mode={self.warmup_mode!r}"
