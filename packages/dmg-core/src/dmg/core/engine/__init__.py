"""The engine: how physics models are run. One entry point, :func:`integrate`.

A physics model says what it *is* (its signature and a ``step``, a whole-series ``simulate``, or
members to connect); the engine owns everything about running it:

* input checks (:mod:`dmg.core.engine.inputs`), without a host synchronisation on accelerators;
* warm-up: ``spinup`` (a gradient-free pass over the first ``warmup`` steps sets the state) or
  ``inline`` (one pass, the first ``warmup`` outputs dropped), for every kind of model alike;
* which outputs are kept (``save=``): fluxes nobody asked for are never stacked;
* the loop over time, by a registered :class:`~dmg.core.engine.backends.Backend`;
* the memory policy of backward (:mod:`dmg.core.engine.memory`), independent of the backend;
* composites: members are run one by one through the same machinery.

An :class:`Engine` bundles the backend, the memory policy and the validation level. It is chosen
per run in the ``engine:`` section of a run config, or per call in Python::

    model(forcings, params, engine=Engine(memory=Recompute(chunk_size=32)))
    integrate(model, forcings, params, warmup=365, save=["Q"], engine="eager")
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from dmg.core import registry
from dmg.core.engine.backends import Backend, BackendConfig, EagerBackend, Loop
from dmg.core.engine.inputs import CheckInputs, Inputs, check_state, prepare
from dmg.core.engine.memory import MemoryPolicy, Recompute, StoreAll
from dmg.core.errors import InputError, SpecError
from dmg.core.physics import Composite, Outputs, PhysicsModel, SeriesModel, StepModel
from dmg.core.signature import Processes, SlotFiller, TensorDict, WarmupMode

__all__ = [
    "Backend",
    "BackendConfig",
    "EagerBackend",
    "Engine",
    "Inputs",
    "Loop",
    "MemoryPolicy",
    "Recompute",
    "StoreAll",
    "available_backends",
    "integrate",
]


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends."""
    return tuple(registry.entries("dmg.backends"))


@dataclass(frozen=True)
class Engine:
    """How models are run: a backend, a memory policy and how thoroughly inputs are checked.

    Parameters
    ----------
    backend
        The loop backend (default: :class:`~dmg.core.engine.backends.EagerBackend`).
    memory
        The memory policy of backward (default: :class:`~dmg.core.engine.memory.StoreAll`).
    check_inputs
        ``"auto"``, ``"always"`` or ``"shapes"`` (see :mod:`dmg.core.engine.inputs`).
    """

    backend: Backend = field(default_factory=EagerBackend)
    memory: MemoryPolicy = field(default_factory=StoreAll)
    check_inputs: CheckInputs = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.backend, Backend):
            raise SpecError(f"Engine.backend must be a Backend, got {type(self.backend).__name__}")
        if not isinstance(self.memory, MemoryPolicy):
            raise SpecError(f"Engine.memory must be a MemoryPolicy, got {type(self.memory).__name__}")
        if self.check_inputs not in ("auto", "always", "shapes"):
            raise SpecError(f"Engine.check_inputs must be 'auto', 'always' or 'shapes', got {self.check_inputs!r}")

    @classmethod
    def create(
        cls,
        backend: str = "eager",
        *,
        memory: MemoryPolicy | None = None,
        check_inputs: CheckInputs = "auto",
        **options: Any,
    ) -> Engine:
        """An engine with the registered backend ``backend`` built from ``options`` (checked by its ``Config``)."""
        backend_cls = registry.get("dmg.backends", backend)
        return cls(backend=backend_cls(**options), memory=memory or StoreAll(), check_inputs=check_inputs)

    @classmethod
    def from_config(cls, config: Any) -> Engine:
        """The engine of a run's ``engine:`` section (:class:`~dmg.core.config.EngineConfig`)."""
        from dmg.core.config import resolve_component  # the config layer sits above the engine

        backend_cls, options = resolve_component("dmg.backends", config.backend, "engine.backend")
        memory = Recompute(config.chunk_size) if config.memory == "recompute" else StoreAll()
        return cls(backend=backend_cls.from_config(options), memory=memory, check_inputs=config.check_inputs)

    @classmethod
    def resolve(cls, engine: Engine | str | None) -> Engine:
        """``engine`` as an :class:`Engine`: ``None`` is the default, a string names a backend."""
        if engine is None:
            return DEFAULT_ENGINE
        if isinstance(engine, str):
            return cls.create(engine)
        if not isinstance(engine, Engine):
            raise SpecError(f"engine must be an Engine, a backend name or None, got {type(engine).__name__}")
        return engine

    def run_loop(self, loop: Loop) -> tuple[TensorDict, TensorDict]:
        """Run ``loop`` on this engine's backend under its memory policy (eager where the backend cannot)."""
        backend = self.backend
        reason = backend.unavailable(loop)
        if reason is not None:
            _warn_once(backend.name, type(loop.model).__name__, reason)
            backend = _EAGER
        return self.memory.run(backend, loop)


_EAGER = EagerBackend()
DEFAULT_ENGINE = Engine()
_WARNED: set[tuple[str, str, str]] = set()


def _warn_once(backend: str, model: str, reason: str) -> None:
    key = (backend, model, reason)
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"engine backend {backend} cannot run {model} ({reason}); running it eagerly", stacklevel=3)


class MemberRunner(Protocol):
    """How a composite runs one member pass: ``run(member, inputs, state, processes, save)``."""

    def __call__(
        self,
        model: PhysicsModel,
        inputs: Inputs,
        state: TensorDict,
        processes: Processes,
        save: frozenset[str] | None,
    ) -> tuple[TensorDict, TensorDict]: ...


def integrate(
    model: PhysicsModel,
    forcings: torch.Tensor | Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
    *,
    attributes: Mapping[str, torch.Tensor] | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
    warmup: int = 0,
    warmup_mode: WarmupMode | None = None,
    warmup_params: Mapping[str, torch.Tensor] | None = None,
    processes: Mapping[str, SlotFiller] | None = None,
    save: Iterable[str] | None = None,
    engine: Engine | str | None = None,
) -> Outputs:
    """Simulate ``model`` over a series: checks, warm-up, the loop, kept outputs, final state.

    Parameters
    ----------
    model
        Any physics model (a step model, a series model or a composite).
    forcings
        ``[time, unit, n_forcings]`` in declared order, or a mapping name -> ``[time, unit]``.
    params
        Physical parameters (shapes as in :mod:`dmg.core.parameters`); ones with a default may be left out.
    attributes
        Static per-unit inputs, name -> ``[unit]``.
    state
        Initial state (e.g. ``outputs.state`` of a previous call); default: declared initial values.
    warmup
        Leading steps that only warm up the state; outputs exclude them.
    warmup_mode
        ``"spinup"`` or ``"inline"`` (default: the model's ``warmup_mode``).
    warmup_params
        Parameters of the spin-up pass (default: ``params``).
    processes
        Fillers of the model's process slots, slot name -> ``filler(inputs) -> value``.
    save
        Outputs to keep (default: all); nothing else is stacked over time.
    engine
        An :class:`Engine`, a registered backend name, or ``None`` for the default engine.

    Returns
    -------
    Outputs
        The kept outputs after warm-up, ``[time - warmup, unit]`` (or ``[unit]`` summaries), with the
        final state in ``.state``.
    """
    engine = Engine.resolve(engine)
    inputs = prepare(model, forcings, params, attributes, engine.check_inputs)
    mode = warmup_mode or model.warmup_mode
    if mode not in model.signature.warmup_modes:
        raise SpecError(
            f"warmup_mode: {type(model).__name__} supports {list(model.signature.warmup_modes)}, got {mode!r}"
        )
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < inputs.n_time:
        raise InputError(f"warmup must be in [0, {inputs.n_time}) for a series of {inputs.n_time} steps, got {warmup}")
    fillers = _processes(model, processes)
    kept = _save(model, save)
    like = next(iter(inputs.forcings.values()), next(iter(inputs.params.values()), None))
    if state is None:
        start = model.initial_state(inputs.n_units, dtype=like.dtype, device=like.device)
    else:
        start = check_state(model, state, inputs.n_units, engine.check_inputs)
    runner = _runner(engine)
    if warmup and mode == "spinup":
        spin = inputs if warmup_params is None else inputs.with_params(model, warmup_params, engine.check_inputs)
        with torch.no_grad():
            _, start = runner(model, spin.window(0, warmup), start, fillers, frozenset())
        start = {k: v.detach() for k, v in start.items()}
        outputs, final = runner(model, inputs.window(warmup, inputs.n_time), start, fillers, kept)
    else:
        outputs, final = runner(model, inputs, start, fillers, kept)
        outputs = _trim_leading(outputs, warmup)
    return Outputs(outputs, final)


def _runner(engine: Engine) -> MemberRunner:
    def run(
        model: PhysicsModel, inputs: Inputs, state: TensorDict, processes: Processes, save: frozenset[str] | None
    ) -> tuple[TensorDict, TensorDict]:
        if save is not None and not save and not model.state_names:
            return {}, {}  # nothing is kept and nothing carried: nothing to compute
        if isinstance(model, StepModel):
            return _run_steps(engine, model, inputs, state, processes, save)
        if isinstance(model, SeriesModel):
            outputs, final = model.simulate(
                inputs.forcings, inputs.params, inputs.attributes, dict(state), processes, save
            )
            if save is None:
                return outputs, final
            missing = sorted(save - set(outputs))
            if missing:
                raise SpecError(f"{type(model).__name__}.simulate returned no {missing}; it returned {sorted(outputs)}")
            return {k: outputs[k] for k in save}, final
        if isinstance(model, Composite):
            return model.run_members(inputs, state, processes, save, run)
        raise SpecError(
            f"{type(model).__name__} derives from PhysicsModel directly; derive it from StepModel (step), "
            "SeriesModel (simulate) or Composite (run_members)"
        )

    return run


def _run_steps(
    engine: Engine,
    model: StepModel,
    inputs: Inputs,
    state: TensorDict,
    processes: Processes,
    save: frozenset[str] | None,
) -> tuple[TensorDict, TensorDict]:
    """One pass of a step model: per-step inputs broadcast against ``[unit, nmul]``, then the loop."""
    static: TensorDict = {k: v.unsqueeze(-1) for k, v in inputs.attributes.items()}
    dynamic: TensorDict = {}
    for p in model.parameter_spec:
        value = inputs.params[p.name]
        if not p.per_component:
            value = value.unsqueeze(-1)
        (dynamic if p.name in inputs.series else static)[p.name] = value
    loop = Loop(
        model=model,
        state=dict(state),
        forcings={k: v.unsqueeze(-1) for k, v in inputs.forcings.items()},
        static=static,
        dynamic=dynamic,
        processes=processes,
        save=save,
        n_time=inputs.n_time,
    )
    final, fluxes = engine.run_loop(loop)
    return {name: value.mean(dim=-1) for name, value in fluxes.items()}, final


def _processes(model: PhysicsModel, processes: Mapping[str, SlotFiller] | None) -> Processes:
    if not processes:
        return Processes()
    unknown = sorted(set(processes) - set(model.signature.slot_names))
    if unknown:
        raise SpecError(
            f"{type(model).__name__} has no process slot {unknown}; slots: {list(model.signature.slot_names) or 'none'}"
        )
    return processes if isinstance(processes, Processes) else Processes(processes)


def _save(model: PhysicsModel, save: Iterable[str] | None) -> frozenset[str] | None:
    if save is None:
        return None
    if isinstance(save, str):
        save = (save,)
    kept = frozenset(save)
    unknown = sorted(kept - set(model.output_names))
    if unknown:
        raise SpecError(f"save: {type(model).__name__} has no output {unknown}; outputs: {list(model.output_names)}")
    return kept


def _trim_leading(outputs: Mapping[str, torch.Tensor], n: int) -> TensorDict:
    """Drop the first ``n`` steps of every ``[time, unit, ...]`` output; ``[unit]`` summaries pass."""
    if n == 0:
        return dict(outputs)
    return {k: v[n:] if v.dim() >= 2 else v for k, v in outputs.items()}
