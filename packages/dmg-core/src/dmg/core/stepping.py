"""Running a trained :class:`~dmg.core.model.DeltaModel` step by step, carrying its whole state.

An operational system (a forecast chain, a BMI framework) advances a model one time step at a
time and may stop, save the model's state and start again from it later. :class:`Stepper` does
this for any trained model, in blocks of any number of steps (one for a BMI update, a whole
period for ``dmg simulate``), and the result does not depend on how the steps are cut into blocks:

* every network reads the block's inputs and its own carried state (:func:`network_step`):
  a network with a ``stream(x, static, state) -> (output, state)`` method (an LSTM's hidden and
  cell state) advances itself; a network on static inputs only needs no state; any other network
  is run on the inputs it has seen so far (its state is that history);
* the couplings compute the parameters and process fillers from those outputs. Dynamic
  parameters follow the networks' output at each step, so they come from the inputs seen so far.
  Static parameters are the networks' output at the end of the warm-up (:meth:`Stepper.warm_up`),
  or at the first step simulated without one, and are then held: they are part of the state;
* the physics model advances over the block from its state: states of every member of a
  composite and, for a series model without states that depends on past inputs (a
  unit-hydrograph routing, declaring ``stream_memory``), the buffer of those past inputs;
* couplings acting after the physics (output corrections) see the block's steps: their networks
  must be pointwise in time (a recurrent one is refused).

A window run (training, ``dmg evaluate``) takes static parameters from the networks' output at the
last step of its window instead, which depends on inputs after the steps it simulates; a stepped
run is causal: its outputs up to a date do not depend on what comes after it.

A model that runs over windows of a minimum length (``required_warmup``, e.g. a multi-timescale
composite handing a coarse spin-up over to a fine model) cannot run step by step and is refused.

A stepped simulation split at any step, with :meth:`Stepper.state` carried over to
:meth:`Stepper.load`, gives the uninterrupted simulation. The whole state is a :class:`ModelState`;
:mod:`dmg.core.states` writes it to and reads it from files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from dmg.core.couplings import Coupling, CouplingContext
from dmg.core.data.batch import Batch
from dmg.core.engine import Engine, _processes, _runner
from dmg.core.engine.inputs import Inputs, check_state, prepare
from dmg.core.errors import InputError, SpecError
from dmg.core.model import DeltaModel, required_warmup
from dmg.core.networks import call_network
from dmg.core.physics import Composite, Outputs, PhysicsModel, SeriesModel
from dmg.core.signature import Processes, TensorDict

__all__ = ["UNIT_AXES", "ModelState", "Stepper", "member_paths", "network_step", "stream_memory"]

HISTORY = "inputs"
"""Key of the input history in the state of a network run on everything it has seen."""
UNIT_AXES = {"physics": 0, "parameters": 0, "memory": 1, "networks": 1}
"""The axis over the units of the tensors in each part of a :class:`ModelState`."""


@dataclass
class ModelState:
    """The whole state of a model between two steps.

    Attributes
    ----------
    physics
        The physics model's states, name -> ``[unit, nmul]`` (a composite's as ``"<member>.<state>"``).
    memory
        Past inputs of series models that depend on them (e.g. a routing's unit-hydrograph buffer),
        member path -> name -> ``[steps, unit]``; member paths are dotted (``"routing"``).
    networks
        Each network's recurrent state, network name -> name -> tensor with the units on axis 1 (as
        the hidden state of torch's recurrent layers, ``[layers, unit, hidden]``, and an input
        history, ``[steps, unit, features]``).
    parameters
        The static parameters held since the end of the warm-up (physical values, name -> ``[unit, ...]``);
        empty before the first step.
    steps
        Steps simulated since the model started from its initial state (warm-up included).

    Every tensor has one axis over the units (:data:`UNIT_AXES`), so the state of some units can be
    taken out (:meth:`select`) and the states of several groups of units joined (:meth:`concat`).
    """

    physics: TensorDict = field(default_factory=dict)
    memory: dict[str, TensorDict] = field(default_factory=dict)
    networks: dict[str, TensorDict] = field(default_factory=dict)
    parameters: TensorDict = field(default_factory=dict)
    steps: int = 0

    def tensors(self) -> dict[str, Any]:
        """The state as nested dicts of tensors (detached copies on the CPU), for a file."""

        def cpu(values: Mapping[str, torch.Tensor]) -> TensorDict:
            return {k: v.detach().cpu().clone() for k, v in values.items()}

        return {
            "physics": cpu(self.physics),
            "memory": {k: cpu(v) for k, v in self.memory.items()},
            "networks": {k: cpu(v) for k, v in self.networks.items()},
            "parameters": cpu(self.parameters),
            "steps": int(self.steps),
        }

    @classmethod
    def from_tensors(cls, saved: Mapping[str, Any]) -> ModelState:
        """The state :meth:`tensors` wrote."""
        return cls(
            physics=dict(saved["physics"]),
            memory={k: dict(v) for k, v in saved["memory"].items()},
            networks={k: dict(v) for k, v in saved["networks"].items()},
            parameters=dict(saved["parameters"]),
            steps=int(saved["steps"]),
        )

    def select(self, units: Sequence[int] | torch.Tensor) -> ModelState:
        """The state of the units at positions ``units`` (in that order)."""
        index = torch.as_tensor(units, dtype=torch.long)

        def take(values: Mapping[str, torch.Tensor], axis: int) -> TensorDict:
            return {k: v.index_select(axis, index.to(v.device)) for k, v in values.items()}

        return ModelState(
            physics=take(self.physics, UNIT_AXES["physics"]),
            memory={k: take(v, UNIT_AXES["memory"]) for k, v in self.memory.items()},
            networks={k: take(v, UNIT_AXES["networks"]) for k, v in self.networks.items()},
            parameters=take(self.parameters, UNIT_AXES["parameters"]),
            steps=self.steps,
        )

    @classmethod
    def concat(cls, states: Sequence[ModelState]) -> ModelState:
        """The states of groups of units joined along the units, in the order given.

        Raises
        ------
        InputError
            If the states do not hold the same tensors or were taken after different numbers of steps.
        """
        first = states[0]
        if any(s.steps != first.steps for s in states):
            raise InputError(
                f"states taken after different numbers of steps cannot be joined: {[s.steps for s in states]}"
            )

        def join(parts: Sequence[Mapping[str, torch.Tensor]], axis: int, what: str) -> TensorDict:
            keys = list(parts[0])
            if any(list(p) != keys for p in parts):
                raise InputError(f"states with different {what} cannot be joined: {[sorted(p) for p in parts]}")
            return {k: torch.cat([p[k] for p in parts], dim=axis) for k in keys}

        def nested(name: str) -> dict[str, TensorDict]:
            groups = [getattr(s, name) for s in states]
            if any(list(g) != list(groups[0]) for g in groups):
                raise InputError(f"states with different {name} cannot be joined")
            return {k: join([g[k] for g in groups], UNIT_AXES[name], f"{name} {k}") for k in groups[0]}

        return cls(
            physics=join([s.physics for s in states], UNIT_AXES["physics"], "physics states"),
            memory=nested("memory"),
            networks=nested("networks"),
            parameters=join([s.parameters for s in states], UNIT_AXES["parameters"], "parameters"),
            steps=first.steps,
        )

    def to(self, device: torch.device | str, dtype: torch.dtype) -> ModelState:
        """A copy on ``device`` with floating tensors of ``dtype``."""

        def move(values: Mapping[str, torch.Tensor]) -> TensorDict:
            return {k: v.to(device, dtype if v.is_floating_point() else v.dtype) for k, v in values.items()}

        return ModelState(
            physics=move(self.physics),
            memory={k: move(v) for k, v in self.memory.items()},
            networks={k: move(v) for k, v in self.networks.items()},
            parameters=move(self.parameters),
            steps=self.steps,
        )


# --------------------------------------------------------------------------- networks


def network_step(
    network: nn.Module, x: torch.Tensor | None, static: torch.Tensor | None, state: Mapping[str, torch.Tensor]
) -> tuple[Any, TensorDict]:
    """Advance ``network`` over the steps ``x`` ``[k, unit, features]`` from its carried ``state``.

    Returns the network's output for these ``k`` steps (as its ``forward`` gives it for a window) and
    its new state. A network with a ``stream(x, static, state)`` method advances itself; one on
    static inputs only is called on them; any other is run on every input it has seen (its state
    holds them), which gives exactly its output in a continuous run, whatever its architecture.
    """
    kind = getattr(network, "input_kind", "sequence")
    stream = getattr(network, "stream", None)
    if callable(stream):
        output, new_state = stream(x, static, dict(state))
        return output, dict(new_state)
    if kind == "static":
        return call_network(network, None, static), {}
    if x is None:
        raise SpecError(f"{type(network).__name__} needs time-varying inputs but the step has no nn_inputs")
    history = torch.cat([state[HISTORY].to(x), x]) if HISTORY in state else x
    output = call_network(network, history, static)
    k = x.shape[0]
    new_state = {HISTORY: history}
    return _last_steps(output, k, history.shape[0]), new_state


def _last_steps(output: Any, k: int, n_time: int) -> Any:
    """The last ``k`` steps of every ``[time, ...]`` part of a network's output (static parts pass)."""
    if isinstance(output, tuple):
        return tuple(_last_steps(o, k, n_time) for o in output)
    if output.dim() == 3 and output.shape[0] == n_time:
        return output[-k:]
    return output


# --------------------------------------------------------------------------- physics


def member_paths(model: PhysicsModel, prefix: str = "") -> Iterator[tuple[str, PhysicsModel]]:
    """Every model inside ``model`` with its dotted path (``""`` for ``model`` itself), depth first."""
    yield prefix, model
    if isinstance(model, Composite):
        for name, member in model.members.items():
            yield from member_paths(member, f"{prefix}.{name}" if prefix else name)


def stream_memory(model: PhysicsModel) -> int:
    """Past steps of its inputs a series model's output at a step depends on, when run step by step.

    A step model, or a series model with states, carries what it needs in its states (0). A series
    model without states declares ``stream_memory`` (0 for an output depending on the step alone).

    Raises
    ------
    SpecError
        For a series model without states that declares no ``stream_memory``.
    """
    if not isinstance(model, SeriesModel):
        return 0
    declared = getattr(model, "stream_memory", None)
    if declared is None:
        if model.state_names:
            return 0
        raise SpecError(
            f"{type(model).__name__} cannot run step by step: it is a series model without states and declares "
            "no stream_memory (the number of past steps of its inputs its output depends on; 0 for none)"
        )
    return int(declared)


def _stepping_runner(engine: Engine, memory: dict[str, TensorDict], paths: Mapping[int, str]) -> Any:
    """The engine's member runner, with series models that depend on past inputs given their buffer."""
    base = _runner(engine)

    def run(
        model: PhysicsModel, inputs: Inputs, state: TensorDict, processes: Processes, save: frozenset[str] | None
    ) -> tuple[TensorDict, TensorDict]:
        if isinstance(model, Composite):
            return model.run_members(inputs, state, processes, save, run)
        lag = stream_memory(model)
        if not lag:
            return base(model, inputs, state, processes, save)
        key = paths[id(model)]
        past = memory.get(key, {})
        n_past = next(iter(past.values())).shape[0] if past else 0
        series = {f"param:{k}": v for k, v in inputs.params.items() if k in inputs.series}
        current = {**inputs.forcings, **series}
        joined = {k: torch.cat([past[k].to(v), v]) if n_past and k in past else v for k, v in current.items()}
        if n_past and any(k not in past for k in current):
            raise SpecError(f"the buffer of {key} lacks {sorted(set(current) - set(past))}")
        extended = replace(
            inputs,
            forcings={k: joined[k] for k in inputs.forcings},
            params={k: joined.get(f"param:{k}", v) for k, v in inputs.params.items()},
            n_time=n_past + inputs.n_time,
        )
        outputs, final = base(model, extended, state, processes, save)
        memory[key] = {k: v[-lag:].detach() for k, v in joined.items()}
        return {k: v[n_past:] if v.dim() >= 2 else v for k, v in outputs.items()}, final

    return run


# --------------------------------------------------------------------------- the stepper


class Stepper:
    """A trained model advanced in blocks of steps from a carried :class:`ModelState`.

    Parameters
    ----------
    model
        The trained model (put in evaluation mode; nothing is differentiated).
    engine
        How the physics is run (default: the model's engine).

    Examples
    --------
    >>> stepper = Stepper(model)                         # doctest: +SKIP
    >>> stepper.warm_up(before)        # the steps before the period: state, static parameters  # doctest: +SKIP
    >>> out = stepper.advance(batch)   # a batch of k steps, no warm-up; out["Q"]: [k, unit]   # doctest: +SKIP
    >>> saved = stepper.state()        # continue later with Stepper(model).load(saved)        # doctest: +SKIP
    """

    def __init__(self, model: DeltaModel, engine: Engine | str | None = None) -> None:
        self.model = model.eval()
        self.engine = model.engine if engine is None else Engine.resolve(engine)
        self._paths = {id(m): path for path, m in member_paths(model.phy_model)}
        for _, member in member_paths(model.phy_model):
            stream_memory(member)  # refuses a model that cannot run step by step now, not at the first step
        span = required_warmup(model.phy_model)
        if span:
            raise SpecError(
                f"{type(model.phy_model).__name__} runs over windows of more than {span} steps (its required "
                "warm-up); it cannot run step by step"
            )
        for c in model.couplings:
            if type(c).after is not Coupling.after and c.network is not None:
                net = model.networks.get(c.network)
                if net is not None and callable(getattr(net, "stream", None)):
                    raise SpecError(
                        f"{type(c).__name__} corrects outputs with the recurrent network {c.network!r}; run step by "
                        "step, its network sees one step at a time: use a pointwise network for corrections"
                    )
        self._state = ModelState()

    # ------------------------------------------------------------------ state
    def state(self) -> ModelState:
        """The state after the last step (detached copies)."""
        return ModelState(
            physics={k: v.detach().clone() for k, v in self._state.physics.items()},
            memory={p: {k: v.detach().clone() for k, v in m.items()} for p, m in self._state.memory.items()},
            networks={n: {k: v.detach().clone() for k, v in s.items()} for n, s in self._state.networks.items()},
            parameters={k: v.detach().clone() for k, v in self._state.parameters.items()},
            steps=self._state.steps,
        )

    def load(self, state: ModelState) -> Stepper:
        """Continue from ``state`` (e.g. read from a file); returns the stepper."""
        unknown = sorted(set(state.networks) - set(self.model.networks))
        if unknown:
            known = sorted(self.model.networks)
            raise InputError(f"the state holds networks {unknown} that the model does not have ({known})")
        like = self._like()
        self._state = state.to(like.device, like.dtype)
        return self

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def warm_up(self, batch: Batch) -> None:
        """Warm the state up over every step of ``batch``, as a window run warms up before its period.

        The networks read the steps; static parameters are their output at the last step and are
        held from then on; the physics runs over the steps as the model warms up (``spinup``: with
        the couplings' spin-up parameters; ``inline``: with the step's dynamic parameters). Nothing
        is returned: the steps only set the state.

        Raises
        ------
        InputError
            If the model has already simulated steps (a warm-up comes first).
        """
        if self._state.steps:
            raise InputError(f"a warm-up comes first; the model has already simulated {self._state.steps} steps")
        if not batch.n_time:
            return
        batch = replace(batch.to(self._like().device), warmup=batch.n_time, targets={})
        ctx = self._couplings(batch, static_step=-1)
        phy = self.model.phy_model
        inputs = self._hold(prepare(phy, batch.forcings, ctx.params, batch.attributes, self.engine.check_inputs))
        if ctx.warmup_params is not None and phy.warmup_mode == "spinup":
            inputs = inputs.with_params(phy, ctx.warmup_params, self.engine.check_inputs)
        self._physics(inputs, ctx)
        self._state.steps += batch.n_time

    @torch.no_grad()
    def advance(self, batch: Batch) -> Outputs:
        """Simulate the ``k`` steps of ``batch`` (which has no warm-up); returns ``[k, unit]`` outputs.

        Outputs that are summaries over a window (``[unit]``) are not returned.
        """
        if batch.warmup:
            raise InputError(f"a stepped batch has no warm-up: its steps are simulated, got warmup={batch.warmup}")
        batch = replace(batch.to(self._like().device), targets={})
        ctx = self._couplings(batch, static_step=0)
        phy = self.model.phy_model
        inputs = self._hold(prepare(phy, batch.forcings, ctx.params, batch.attributes, self.engine.check_inputs))
        result = self._physics(inputs, ctx)
        for c in self.model.couplings:
            result = c.after(ctx, result)
        self._state.steps += batch.n_time
        return Outputs({name: value for name, value in result.items() if value.dim() >= 2}, self._state.physics)

    def _like(self) -> torch.Tensor:
        """A tensor of the model's device and floating dtype (float32 on the CPU for a model without weights)."""
        return next(iter(self.model.parameters()), next(iter(self.model.buffers()), torch.zeros(())))

    def _couplings(self, batch: Batch, static_step: int) -> CouplingContext:
        """The couplings' parameters and fillers for ``batch``, the networks advanced over it."""
        ctx = CouplingContext(
            batch=batch, networks=self.model.networks, phy_model=self.model.phy_model, static_step=static_step
        )
        for name, net in self.model.networks.items():
            carried = self._state.networks.get(name, {})
            ctx._network_outputs[name], self._state.networks[name] = network_step(
                net, batch.nn_inputs, batch.static_inputs, carried
            )
        for c in self.model.couplings:
            c.before(ctx)
        return ctx

    def _hold(self, inputs: Inputs) -> Inputs:
        """``inputs`` with the held static parameters; the first block's become the held ones."""
        held = self._state.parameters
        if not held:
            self._state.parameters = {k: v.detach() for k, v in inputs.params.items() if k not in inputs.series}
            return inputs
        return replace(inputs, params={**inputs.params, **{k: v.to(inputs.params[k]) for k, v in held.items()}})

    def _physics(self, inputs: Inputs, ctx: CouplingContext) -> Outputs:
        phy = self.model.phy_model
        if self._state.physics:
            start = check_state(phy, self._state.physics, inputs.n_units, self.engine.check_inputs)
        else:
            like = next(iter(inputs.forcings.values()), next(iter(inputs.params.values())))
            start = phy.initial_state(inputs.n_units, dtype=like.dtype, device=like.device)
        run = _stepping_runner(self.engine, self._state.memory, self._paths)
        outputs, final = run(phy, inputs, start, _processes(phy, ctx.processes), None)
        self._state.physics = dict(final)
        return Outputs(outputs, final)
