"""Couplings: how networks and a physics model interface inside a :class:`~dmg.core.model.DeltaModel`.

A coupling acts at up to two points of a forward pass:

* :meth:`Coupling.before` runs before the physics model, e.g. to compute its parameters
  from a network (:class:`ParameterLearning`) or to plug a network into a process slot
  (:class:`ProcessReplacement`);
* :meth:`Coupling.after` runs on the physics outputs, e.g. to correct them
  (:class:`OutputCorrection`).

Couplings compose: a DeltaModel applies its list of couplings in order.

Networks are called by one convention, :func:`call_network`: a network whose
``input_kind`` attribute is ``"sequence"`` (the default) takes ``batch.nn_inputs``
``[time, unit, features]``; ``"static"`` takes ``batch.static_inputs`` ``[unit, attributes]``;
``"sequence+static"`` takes both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dmg.core.data.batch import Batch
from dmg.core.errors import ShapeError, SpecError
from dmg.core.parameters import ParameterSpec, Transform
from dmg.core.physics import Outputs, PhysicsModel

DEFAULT_NETWORK = "default"


@dataclass
class CouplingContext:
    """What couplings share during one forward pass.

    Attributes
    ----------
    batch
        The batch being run.
    networks
        The DeltaModel's networks by name.
    phy_model
        The physics model.
    params
        Physical parameters for the physics model, filled by couplings.
    warmup_params
        Parameters for the spin-up pass, or ``None`` to use ``params``.
    stack
        Context managers entered for the duration of the physics run (e.g. slot fillers).
    """

    batch: Batch
    networks: Mapping[str, nn.Module]
    phy_model: PhysicsModel
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    warmup_params: dict[str, torch.Tensor] | None = None
    stack: ExitStack = field(default_factory=ExitStack)

    def network(self, name: str) -> nn.Module:
        """The network called ``name``, with a clear error if there is none."""
        try:
            return self.networks[name]
        except KeyError:
            raise SpecError(f"no network named {name!r}; networks: {sorted(self.networks)}") from None


def call_network(network: nn.Module, batch: Batch) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Call ``network`` on the inputs its ``input_kind`` asks for (see module docstring)."""
    kind = getattr(network, "input_kind", "sequence")
    if kind in ("sequence", "sequence+static") and batch.nn_inputs is None:
        raise SpecError(f"{type(network).__name__} needs time-varying inputs but the batch has no nn_inputs")
    if kind in ("static", "sequence+static") and batch.static_inputs is None:
        raise SpecError(f"{type(network).__name__} needs static inputs but the batch has no static_inputs")
    if kind == "sequence":
        return network(batch.nn_inputs)
    if kind == "static":
        return network(batch.static_inputs)
    if kind == "sequence+static":
        return network(batch.nn_inputs, batch.static_inputs)
    raise SpecError(f"{type(network).__name__}.input_kind is {kind!r}; use 'sequence', 'static' or 'sequence+static'")


class Coupling(nn.Module):
    """Base class of couplings; override :meth:`before` and/or :meth:`after`."""

    def before(self, ctx: CouplingContext) -> None:
        """Prepare the physics run (fill ``ctx.params``, enter slot fillers on ``ctx.stack``)."""

    def after(self, ctx: CouplingContext, outputs: Outputs) -> Outputs:
        """Post-process the physics outputs."""
        return outputs


class ParameterLearning(Coupling):
    """A network supplies (some of) the physics model's parameters.

    The network's output is read according to its shape:

    * one tensor ``[time, unit, C]`` with ``C = spec.n_channels()``: every learned
      parameter in declaration order and the spec's layout (the published layout);
      static parameters take the values at the last step, dynamic ones the series;
    * one tensor ``[unit, C]``: static parameters only;
    * a pair ``(dynamic [time, unit, Cd], static [unit, Cs])``: the split layout of
      :meth:`~dmg.core.parameters.ParameterSpec.from_split`.

    Parameters
    ----------
    network
        Name of the network in the DeltaModel.
    learn
        Names of learned parameters (default: all); the others take their defaults.
    transform
        How raw outputs become ``[0, 1]`` (``"sigmoid"`` or ``"identity"`` when the network
        already ends in a bounded activation).
    dynamic_transform
        Transform for the dynamic part of a split output (default: ``transform``).
    spinup_static
        For ``spinup`` warm-up, the time step whose network output sets the static parameters
        of the spin-up pass: ``"last"`` (same as the main pass) or ``"warmup_end"`` (step
        ``warmup - 1``).
    spinup_hold_dynamic
        For ``spinup`` warm-up with ``spinup_static="warmup_end"``, also hold dynamic
        parameters at step ``warmup - 1`` during spin-up.
    """

    def __init__(
        self,
        network: str = DEFAULT_NETWORK,
        learn: Sequence[str] | None = None,
        *,
        transform: Transform = "sigmoid",
        dynamic_transform: Transform | None = None,
        spinup_static: Literal["last", "warmup_end"] = "last",
        spinup_hold_dynamic: bool = False,
    ) -> None:
        super().__init__()
        if spinup_static not in ("last", "warmup_end"):
            raise SpecError(f"spinup_static must be 'last' or 'warmup_end', got {spinup_static!r}")
        self.network = network
        self.learn = None if learn is None else tuple(learn)
        self.transform = transform
        self.dynamic_transform = dynamic_transform
        self.spinup_static = spinup_static
        self.spinup_hold_dynamic = spinup_hold_dynamic

    def learned_spec(self, phy_model: PhysicsModel) -> ParameterSpec:
        """The part of the model's ParameterSpec this coupling's network supplies."""
        spec = phy_model.parameter_spec
        return spec if self.learn is None else spec.subset(self.learn)

    def n_outputs(self, phy_model: PhysicsModel, split: bool = False) -> int | tuple[int, int]:
        """Output channels the network must produce: ``C``, or ``(Cd, Cs)`` when ``split``."""
        spec = self.learned_spec(phy_model)
        return (spec.n_dynamic_channels, spec.n_static_channels) if split else spec.n_channels()

    def before(self, ctx: CouplingContext) -> None:
        spec = self.learned_spec(ctx.phy_model)
        raw = call_network(ctx.network(self.network), ctx.batch)
        warmup = ctx.batch.warmup
        spin_at_end = self.spinup_static == "warmup_end" and warmup > 0
        spin: dict[str, torch.Tensor] | None = None
        if isinstance(raw, tuple):
            if len(raw) != 2:
                raise ShapeError(f"network {self.network!r} returned {len(raw)} tensors; expected (dynamic, static)")
            params = spec.from_split(raw[1], raw[0], transform=self.transform, dynamic_transform=self.dynamic_transform)
            if spin_at_end and self.spinup_hold_dynamic:
                spin = {k: v[warmup - 1].expand_as(v) if spec.is_dynamic(k) else v for k, v in params.items()}
        elif raw.dim() == 3:
            params = spec.from_raw(raw, transform=self.transform)
            if spin_at_end:
                spin = spec.from_raw(
                    raw, transform=self.transform, static_step=warmup - 1, hold_dynamic=self.spinup_hold_dynamic
                )
        elif raw.dim() == 2:
            if spec.dynamic:
                raise ShapeError(
                    f"network {self.network!r} returned static output {tuple(raw.shape)} but parameters "
                    f"{sorted(spec.dynamic)} are dynamic; use a sequence network"
                )
            params = spec.from_split(raw, None, transform=self.transform)
        else:
            raise ShapeError(
                f"network {self.network!r} returned shape {tuple(raw.shape)}; expected [time, unit, C] or [unit, C]"
            )
        if spin is not None and ctx.warmup_params is None:
            ctx.warmup_params = dict(ctx.params)
        ctx.params.update(params)
        if ctx.warmup_params is not None:
            ctx.warmup_params.update(spin if spin is not None else params)


class ProcessReplacement(Coupling):
    """A network computes a named process slot inside the physics step.

    At each step the slot's inputs (broadcast to ``[unit, nmul]``) are stacked into
    ``[unit, nmul, n_inputs]`` — followed by the batch's static inputs when
    ``static_context`` is set — and the network maps the last dimension to one value,
    which the slot's bounds then constrain.

    Parameters
    ----------
    slot
        Name of the process slot declared by the physics model.
    network
        Name of the network in the DeltaModel.
    static_context
        Append ``batch.static_inputs`` to the slot inputs.
    """

    def __init__(self, slot: str, network: str = DEFAULT_NETWORK, *, static_context: bool = False) -> None:
        super().__init__()
        self.slot = slot
        self.network = network
        self.static_context = static_context

    def n_inputs(self, phy_model: PhysicsModel, n_static: int = 0) -> int:
        """Input features of the slot network."""
        return len(phy_model.slot(self.slot).inputs) + (n_static if self.static_context else 0)

    def before(self, ctx: CouplingContext) -> None:
        slot = ctx.phy_model.slot(self.slot)
        net = ctx.network(self.network)
        context = ctx.batch.static_inputs if self.static_context else None
        if self.static_context and context is None:
            raise SpecError(f"slot {self.slot!r} uses static_context but the batch has no static_inputs")

        def fill(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            missing = [n for n in slot.inputs if n not in inputs]
            if missing:
                raise SpecError(f"the model passed no {missing} to process slot {slot.name!r}")
            values = torch.broadcast_tensors(*(inputs[n] for n in slot.inputs))
            x = torch.stack(values, dim=-1)
            if context is not None:
                c = context.reshape(context.shape[0], *([1] * (x.dim() - 2)), context.shape[-1])
                x = torch.cat([x, c.expand(*x.shape[:-1], c.shape[-1]).to(x)], dim=-1)
            return slot.bound(net(x).squeeze(-1))

        ctx.stack.enter_context(ctx.phy_model.filling(self.slot, fill))


class OutputCorrection(Coupling):
    """A network corrects physics outputs after the simulation.

    The network sees ``[time, unit, features + n_variables]``: the batch's network inputs
    after warm-up followed by the physics values of ``variables`` (when ``physics_as_input``),
    and returns ``[time, unit, n_variables]`` corrections ``d``.

    Parameters
    ----------
    variables
        Physics outputs to correct.
    network
        Name of the network in the DeltaModel.
    mode
        ``"additive"`` (``y + d``), ``"multiplicative"`` (``y * exp(d)``) or
        ``"replace"`` (``d``).
    physics_as_input
        Feed the physics outputs to the network.
    """

    def __init__(
        self,
        variables: Sequence[str],
        network: str = DEFAULT_NETWORK,
        *,
        mode: Literal["additive", "multiplicative", "replace"] = "additive",
        physics_as_input: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("additive", "multiplicative", "replace"):
            raise SpecError(f"mode must be 'additive', 'multiplicative' or 'replace', got {mode!r}")
        self.variables = tuple(variables)
        self.network = network
        self.mode = mode
        self.physics_as_input = physics_as_input

    def n_inputs(self, n_features: int) -> int:
        """Input features of the correction network given ``n_features`` network inputs."""
        return n_features + (len(self.variables) if self.physics_as_input else 0)

    def after(self, ctx: CouplingContext, outputs: Outputs) -> Outputs:
        missing = [v for v in self.variables if v not in outputs]
        if missing:
            raise SpecError(f"cannot correct {missing}: the physics model outputs {sorted(outputs)}")
        y = torch.stack([outputs[v] for v in self.variables], dim=-1)
        parts = []
        if ctx.batch.nn_inputs is not None:
            parts.append(ctx.batch.nn_inputs[ctx.batch.warmup :].to(y))
        if self.physics_as_input:
            parts.append(y)
        if not parts:
            raise SpecError("OutputCorrection has no inputs: the batch has no nn_inputs and physics_as_input is off")
        d = ctx.network(self.network)(torch.cat(parts, dim=-1))
        if d.shape != y.shape:
            raise ShapeError(
                f"correction network {self.network!r} returned {tuple(d.shape)}, expected {tuple(y.shape)}"
            )
        if self.mode == "additive":
            corrected = y + d
        elif self.mode == "multiplicative":
            corrected = y * torch.exp(d)
        else:
            corrected = d
        values = dict(outputs)
        values.update({f"{v}_physics": outputs[v] for v in self.variables})
        values.update({v: corrected[..., i] for i, v in enumerate(self.variables)})
        return Outputs(values, outputs.state)
