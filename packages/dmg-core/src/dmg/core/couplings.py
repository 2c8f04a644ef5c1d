"""Couplings: how networks and a physics model interface inside a :class:`~dmg.core.model.DeltaModel`.

A coupling is a registered component (entry-point group ``dmg.couplings``) acting at up to two
points of a forward pass, through a shared :class:`CouplingContext`:

* :meth:`Coupling.before` runs before the physics model, e.g. to compute its parameters from a
  network (:class:`ParameterLearning`) or to fill a process slot with one (:class:`ProcessReplacement`);
* :meth:`Coupling.after` runs on the physics outputs, e.g. to correct them (:class:`OutputCorrection`).

It also sizes its network: :meth:`Coupling.network_inputs` and :meth:`Coupling.network_outputs`
say what the network must read and produce, so the config layer builds every network without
knowing any coupling. Couplings sharing one network add up its output channels; each reads its own
(:attr:`Coupling.channels`, set by the DeltaModel).

Couplings compose: a DeltaModel applies its list of couplings in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import Component, ComponentConfig
from dmg.core.data.batch import Batch
from dmg.core.errors import ShapeError, SpecError
from dmg.core.networks import NetworkInputs, NetworkOutputs, call_network
from dmg.core.parameters import ParameterSpec
from dmg.core.physics import Outputs, PhysicsModel
from dmg.core.signature import SlotFiller

DEFAULT_NETWORK = "default"
TransformName = Literal["sigmoid", "identity", "clamp"]


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
    processes
        Fillers of the physics model's process slots, filled by couplings.
    static_step
        The step of the batch whose network output sets static parameters: the last one (``-1``) in
        a window run, as in training; a run step by step takes them at its first step (``0``) and
        holds them (:mod:`dmg.core.stepping`).
    """

    batch: Batch
    networks: Mapping[str, nn.Module]
    phy_model: PhysicsModel
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    warmup_params: dict[str, torch.Tensor] | None = None
    processes: dict[str, SlotFiller] = field(default_factory=dict)
    static_step: int = -1
    _network_outputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def network(self, name: str) -> nn.Module:
        """The network called ``name``, with a clear error if there is none."""
        try:
            return self.networks[name]
        except KeyError:
            raise SpecError(f"no network named {name!r}; networks: {sorted(self.networks)}") from None

    def network_output(self, name: str) -> Any:
        """The output of network ``name`` on the batch's inputs, computed once per forward pass."""
        if name not in self._network_outputs:
            net = self.network(name)
            self._network_outputs[name] = call_network(net, self.batch.nn_inputs, self.batch.static_inputs)
        return self._network_outputs[name]


class CouplingConfig(ComponentConfig):
    """Options every coupling takes."""

    network: str | None = Field(DEFAULT_NETWORK, description="Name of the network the coupling uses.")


class Coupling(Component, nn.Module):
    """Base class of couplings; override :meth:`before` and/or :meth:`after` and the sizing methods."""

    Config: ClassVar[type[CouplingConfig]] = CouplingConfig

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        nn.Module.__init__(self)
        self.config = self.validate_config(config, options)
        self.channels: tuple[slice, ...] | None = None
        """Channels of a shared network's output this coupling reads (``None``: all of them)."""

    @property
    def network(self) -> str | None:
        """Name of the network this coupling uses, or ``None``."""
        return self.config.network

    # ------------------------------------------------------------------ sizing
    def network_inputs(self, phy_model: PhysicsModel, available: NetworkInputs) -> NetworkInputs:
        """What the network reads, given the widths of the batch's sequence and static inputs."""
        return available

    def network_outputs(self, phy_model: PhysicsModel, output_kind: str = "single") -> NetworkOutputs:
        """Output channels the network must produce for this coupling."""
        raise NotImplementedError(f"{type(self).__name__} must say how many outputs its network produces")

    def required_outputs(self) -> tuple[str, ...]:
        """Physics outputs this coupling reads in :meth:`after` (so the engine keeps them)."""
        return ()

    def take(self, output: Any) -> Any:
        """This coupling's channels of a (possibly shared) network's ``output``."""
        if self.channels is None:
            return output
        if isinstance(output, tuple):
            return tuple(part[..., s] for part, s in zip(output, self.channels))
        return output[..., self.channels[0]]

    # --------------------------------------------------------------- the pass
    def before(self, ctx: CouplingContext) -> None:
        """Prepare the physics run (fill ``ctx.params``, ``ctx.processes``)."""

    def after(self, ctx: CouplingContext, outputs: Outputs) -> Outputs:
        """Post-process the physics outputs."""
        return outputs

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())


class ParameterLearningConfig(CouplingConfig):
    """Options of :class:`ParameterLearning`."""

    learn: list[str] | None = Field(None, description="Learned parameters (default: all).")
    transform: TransformName = Field("sigmoid", description="Raw output to [0, 1].")
    dynamic_transform: TransformName | None = Field(
        None, description="Transform of the dynamic part of a split output (default: transform)."
    )
    spinup_static: Literal["last", "warmup_end"] = Field(
        "last", description="Network step whose output sets static parameters during spin-up."
    )
    spinup_hold_dynamic: bool = Field(False, description="Hold dynamic parameters at step warmup-1 during spin-up.")


class ParameterLearning(Coupling):
    """A network supplies (some of) the physics model's parameters.

    The network's output is read according to its shape:

    * one tensor ``[time, unit, C]`` with ``C = spec.n_channels()``: every learned
      parameter in declaration order and the spec's layout (the published layout);
      static parameters take the values at the context's ``static_step`` (the last step of a
      window), dynamic ones the series;
    * one tensor ``[unit, C]``: static parameters only;
    * a pair ``(dynamic [time, unit, Cd], static [unit, Cs])``: the split layout of
      :meth:`~dmg.core.parameters.ParameterSpec.from_split`.

    Options (:class:`ParameterLearningConfig`): ``network``; ``learn`` (names of learned parameters,
    default all, the others take their defaults); ``transform`` (how raw outputs become ``[0, 1]``:
    ``"sigmoid"``, or ``"identity"`` when the network already ends in a bounded activation);
    ``dynamic_transform`` (for the dynamic part of a split output); ``spinup_static`` (for ``spinup``
    warm-up, the step whose output sets the static parameters of the spin-up pass: ``"last"`` or
    ``"warmup_end"``, step ``warmup - 1``); ``spinup_hold_dynamic`` (with ``"warmup_end"``, also hold
    dynamic parameters at step ``warmup - 1`` during spin-up).
    """

    Config: ClassVar[type[ParameterLearningConfig]] = ParameterLearningConfig

    def learned_spec(self, phy_model: PhysicsModel) -> ParameterSpec:
        """The part of the model's ParameterSpec this coupling's network supplies."""
        spec = phy_model.parameter_spec
        return spec if self.config.learn is None else spec.subset(self.config.learn)

    def n_outputs(self, phy_model: PhysicsModel, split: bool = False) -> int | tuple[int, int]:
        """Output channels the network must produce: ``C``, or ``(Cd, Cs)`` when ``split``."""
        spec = self.learned_spec(phy_model)
        return (spec.n_dynamic_channels, spec.n_static_channels) if split else spec.n_channels()

    def network_outputs(self, phy_model: PhysicsModel, output_kind: str = "single") -> NetworkOutputs:
        return self.n_outputs(phy_model, split=output_kind == "split")

    def raw_output(self, ctx: CouplingContext) -> Any:
        """The raw network output the parameters are read from (this coupling's channels of it)."""
        return self.take(ctx.network_output(self.network))

    def before(self, ctx: CouplingContext) -> None:
        cfg = self.config
        spec = self.learned_spec(ctx.phy_model)
        raw = self.raw_output(ctx)
        warmup = ctx.batch.warmup
        spin_at_end = cfg.spinup_static == "warmup_end" and warmup > 0
        spin: dict[str, torch.Tensor] | None = None
        if isinstance(raw, tuple):
            if len(raw) != 2:
                raise ShapeError(f"network {self.network!r} returned {len(raw)} tensors; expected (dynamic, static)")
            params = spec.from_split(raw[1], raw[0], transform=cfg.transform, dynamic_transform=cfg.dynamic_transform)
            if spin_at_end and cfg.spinup_hold_dynamic:
                spin = {k: v[warmup - 1].expand_as(v) if spec.is_dynamic(k) else v for k, v in params.items()}
        elif raw.dim() == 3:
            params = spec.from_raw(raw, transform=cfg.transform, static_step=ctx.static_step)
            if spin_at_end:  # the spin-up pass runs without gradient: nothing to differentiate here
                spin = spec.from_raw(
                    raw.detach(), transform=cfg.transform, static_step=warmup - 1, hold_dynamic=cfg.spinup_hold_dynamic
                )
        elif raw.dim() == 2:
            if spec.dynamic:
                raise ShapeError(
                    f"network {self.network!r} returned static output {tuple(raw.shape)} but parameters "
                    f"{sorted(spec.dynamic)} are dynamic; use a sequence network"
                )
            params = spec.from_split(raw, None, transform=cfg.transform)
        else:
            raise ShapeError(
                f"network {self.network!r} returned shape {tuple(raw.shape)}; expected [time, unit, C] or [unit, C]"
            )
        if spin is not None and ctx.warmup_params is None:
            ctx.warmup_params = dict(ctx.params)
        ctx.params.update(params)
        if ctx.warmup_params is not None:
            ctx.warmup_params.update(spin if spin is not None else params)


class ProcessReplacementConfig(CouplingConfig):
    """Options of :class:`ProcessReplacement`."""

    slot: str = Field(description="Name of the process slot.")
    static_context: bool = Field(False, description="Append static network inputs to the slot inputs.")


class ProcessReplacement(Coupling):
    """A network computes a named process slot inside the physics step.

    At each step the slot's inputs (broadcast to ``[unit, nmul]``) are stacked into
    ``[unit, nmul, n_inputs]`` — followed by the batch's static inputs when
    ``static_context`` is set — and the network maps the last dimension to one value,
    which the slot's bounds then constrain.

    Options (:class:`ProcessReplacementConfig`): ``slot`` (name of the process slot), ``network``,
    ``static_context`` (append ``batch.static_inputs`` to the slot inputs).
    """

    Config: ClassVar[type[ProcessReplacementConfig]] = ProcessReplacementConfig

    def n_inputs(self, phy_model: PhysicsModel, n_static: int = 0) -> int:
        """Input features of the slot network."""
        return len(phy_model.slot(self.config.slot).inputs) + (n_static if self.config.static_context else 0)

    def network_inputs(self, phy_model: PhysicsModel, available: NetworkInputs) -> NetworkInputs:
        return NetworkInputs(self.n_inputs(phy_model, available.n_static), 0)

    def network_outputs(self, phy_model: PhysicsModel, output_kind: str = "single") -> NetworkOutputs:
        return 1

    def before(self, ctx: CouplingContext) -> None:
        slot = ctx.phy_model.slot(self.config.slot)
        net = ctx.network(self.network)
        context = ctx.batch.static_inputs if self.config.static_context else None
        if self.config.static_context and context is None:
            raise SpecError(f"slot {slot.name!r} uses static_context but the batch has no static_inputs")
        take = self.take

        def fill(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            missing = [n for n in slot.inputs if n not in inputs]
            if missing:
                raise SpecError(f"the model passed no {missing} to process slot {slot.name!r}")
            values = torch.broadcast_tensors(*(inputs[n] for n in slot.inputs))
            x = torch.stack(values, dim=-1)
            if context is not None:
                c = context.reshape(context.shape[0], *([1] * (x.dim() - 2)), context.shape[-1])
                x = torch.cat([x, c.expand(*x.shape[:-1], c.shape[-1]).to(x)], dim=-1)
            return slot.bound(take(net(x)).squeeze(-1))

        ctx.processes[slot.name] = fill


class OutputCorrectionConfig(CouplingConfig):
    """Options of :class:`OutputCorrection`."""

    variables: list[str] = Field(description="Physics outputs to correct.")
    mode: Literal["additive", "multiplicative", "replace"] = Field("additive", description="How corrections apply.")
    physics_as_input: bool = Field(True, description="Feed the physics outputs to the network.")


class OutputCorrection(Coupling):
    """A network corrects physics outputs after the simulation.

    The network sees ``[time, unit, features + n_variables]``: the batch's network inputs
    after warm-up followed by the physics values of ``variables`` (when ``physics_as_input``),
    and returns ``[time, unit, n_variables]`` corrections ``d``.

    Options (:class:`OutputCorrectionConfig`): ``variables`` (physics outputs to correct),
    ``network``, ``mode`` (``"additive"``: ``y + d``, ``"multiplicative"``: ``y * exp(d)``,
    ``"replace"``: ``d``), ``physics_as_input`` (feed the physics outputs to the network).
    The uncorrected values stay available as ``<name>_physics``.
    """

    Config: ClassVar[type[OutputCorrectionConfig]] = OutputCorrectionConfig

    def n_inputs(self, n_features: int) -> int:
        """Input features of the correction network given ``n_features`` network inputs."""
        return n_features + (len(self.config.variables) if self.config.physics_as_input else 0)

    def network_inputs(self, phy_model: PhysicsModel, available: NetworkInputs) -> NetworkInputs:
        return NetworkInputs(self.n_inputs(available.n_inputs), available.n_static)

    def network_outputs(self, phy_model: PhysicsModel, output_kind: str = "single") -> NetworkOutputs:
        return len(self.config.variables)

    def required_outputs(self) -> tuple[str, ...]:
        return tuple(self.config.variables)

    def after(self, ctx: CouplingContext, outputs: Outputs) -> Outputs:
        variables = self.config.variables
        missing = [v for v in variables if v not in outputs]
        if missing:
            raise SpecError(f"cannot correct {missing}: the physics model outputs {sorted(outputs)}")
        y = torch.stack([outputs[v] for v in variables], dim=-1)
        parts = []
        if ctx.batch.nn_inputs is not None:
            parts.append(ctx.batch.nn_inputs[ctx.batch.warmup :].to(y))
        if self.config.physics_as_input:
            parts.append(y)
        if not parts:
            raise SpecError("OutputCorrection has no inputs: the batch has no nn_inputs and physics_as_input is off")
        d = self.take(ctx.network(self.network)(torch.cat(parts, dim=-1)))
        if d.shape != y.shape:
            raise ShapeError(
                f"correction network {self.network!r} returned {tuple(d.shape)}, expected {tuple(y.shape)}"
            )
        if self.config.mode == "additive":
            corrected = y + d
        elif self.config.mode == "multiplicative":
            corrected = y * torch.exp(d)
        else:
            corrected = d
        values = dict(outputs)
        values.update({f"{v}_physics": outputs[v] for v in variables})
        values.update({v: corrected[..., i] for i, v in enumerate(variables)})
        return Outputs(values, outputs.state)
