"""Physics models built from other physics models: :class:`Chain` and :class:`Ensemble`.

A composite builds its signature from its members' and says, in ``run_members``, how members
connect in one pass over a series. The engine runs every member (with the run's backend), owns
warm-up for the composite as a whole, and asks each member only for the outputs that are needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import ComponentConfig
from dmg.core.errors import ConfigError, SpecError
from dmg.core.parameters import ParameterSpec
from dmg.core.physics import Composite, PhysicsModel
from dmg.core.signature import WARMUP_MODES, Processes, TensorDict
from dmg.core.variables import Variable


class CompositeConfig(ComponentConfig):
    """Options of a composite: its member models, each a registered physics component."""

    members: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Member name -> physics component ({name: ..., options}), in order. In Python, give the "
        "member models themselves instead.",
    )
    warmup_mode: Literal["spinup", "inline"] | None = Field(
        None, description="Warm-up mode of the whole composite; default: the first member's."
    )


class EnsembleConfig(CompositeConfig):
    """Options of :class:`Ensemble`."""

    weights: list[float] | None = Field(None, description="Fixed member weights (normalised); default equal.")
    learn_weights: bool = Field(False, description="Learn the member weights (softmax of trainable logits).")


def _split_members(
    models: tuple[PhysicsModel, ...], named: Mapping[str, Any]
) -> tuple[dict[str, PhysicsModel], dict[str, Any]]:
    """Members (positional, or keywords whose value is a model) and the remaining keyword options."""
    by_name = {k: v for k, v in named.items() if isinstance(v, PhysicsModel)}
    options = {k: v for k, v in named.items() if k not in by_name}
    if models and by_name:
        raise SpecError("give composite members either positionally or by name, not both")
    members = by_name or {str(i): m for i, m in enumerate(models)}
    for name, m in members.items():
        if not isinstance(m, PhysicsModel):
            raise SpecError(f"composite member {name!r} is a {type(m).__name__}, not a PhysicsModel")
        if "." in name:
            raise SpecError(f"composite member name {name!r} must not contain '.'")
    return members, options


def _build_members(config: CompositeConfig, path: str) -> dict[str, PhysicsModel]:
    from dmg.core.config import resolve_component  # the config layer sits above the models

    if not config.members:
        raise ConfigError(f"{path}.members: a composite needs at least one member model")
    members = {}
    for name, spec in config.members.items():
        cls, cfg = resolve_component("dmg.physics", spec, f"{path}.members.{name}")
        members[name] = cls.from_config(cfg)
    return members


def _union(groups: Sequence[tuple[Variable, ...]]) -> tuple[Variable, ...]:
    seen: dict[str, Variable] = {}
    for group in groups:
        for v in group:
            seen.setdefault(v.name, v)
    return tuple(seen.values())


def _common_warmup_modes(members: Mapping[str, PhysicsModel]) -> tuple[str, ...]:
    modes = tuple(m for m in WARMUP_MODES if all(m in member.signature.warmup_modes for member in members.values()))
    if not modes:
        raise SpecError(f"the members {list(members)} share no warm-up mode")
    return modes


def _prefixed_states(members: Mapping[str, PhysicsModel]) -> tuple:
    return tuple(replace(s, name=f"{name}.{s.name}") for name, m in members.items() for s in m.signature.states)


class _CompositeComponent(Composite):
    """Members from positional/keyword models in Python, or from ``Config.members`` in a config file."""

    Config: ClassVar[type[CompositeConfig]] = CompositeConfig

    @classmethod
    def from_config(cls, config: Any = None, **context: Any) -> Composite:
        """Build the members from their component configs, in order."""
        config = cls.validate_config(config)
        return cls(config, **_build_members(config, "model.physics"), **context)

    @staticmethod
    def _parse(models: tuple[Any, ...], named: Mapping[str, Any]) -> tuple[Any, dict[str, PhysicsModel], dict]:
        config = None
        if models and not isinstance(models[0], PhysicsModel):
            config, models = models[0], models[1:]
        members, options = _split_members(tuple(models), named)
        if not members:
            raise SpecError("a composite needs at least one member model")
        return config, members, options


class Chain(_CompositeComponent):
    """Models run in sequence; outputs of earlier members feed later members' forcings by name.

    Example: runoff generation followed by routing, ``Chain(runoff=hbv, routing=uh)``.
    Parameters and process slots keep their names (they must not clash); states are named
    ``"<member>.<state>"``; outputs of all members are returned, a later member's output replacing
    an earlier one of the same name. Warm-up applies to the chain as a whole.
    """

    def __init__(self, *models: Any, **named: Any) -> None:
        config, members, options = self._parse(models, named)
        specs = [m.parameter_spec for m in members.values()]
        for what, names in (
            ("parameters", [n for s in specs for n in s.names]),
            ("process slots", [s.name for m in members.values() for s in m.signature.slots]),
        ):
            clashes = sorted({n for n in names if names.count(n) > 1})
            if clashes:
                raise SpecError(f"members of a Chain declare the same {what} {clashes}; rename one")
        produced: set[str] = set()
        external: list[tuple[Variable, ...]] = []
        outputs: dict[str, Variable] = {}
        for m in members.values():
            external.append(tuple(v for v in m.signature.forcings if v.name not in produced))
            produced.update(m.output_names)
            outputs.update({v.name: v for v in m.signature.outputs})
        config = self.validate_config(config, options)
        super().__init__(
            members,
            config,
            forcings=_union(external),
            attributes=_union([m.signature.attributes for m in members.values()]),
            parameters=ParameterSpec.concat(specs),
            states=_prefixed_states(members),
            outputs=tuple(outputs.values()),
            slots=tuple(s for m in members.values() for s in m.signature.slots),
            mass_balance=None,
            warmup_modes=_common_warmup_modes(members),
        )

    def run_members(
        self, inputs: Any, state: TensorDict, processes: Processes, save: frozenset[str] | None, run: Any
    ) -> tuple[TensorDict, TensorDict]:
        members = list(self.members.items())
        plan = _chain_plan(members, save)
        values: TensorDict = dict(inputs.forcings)
        outputs: TensorDict = {}
        final: TensorDict = {}
        for name, m in members:
            if name not in plan:
                continue
            member_inputs = inputs.for_member(
                m, values, inputs.params, inputs.attributes, m.forcings_needed(plan[name])
            )
            out, st = run(
                m, member_inputs, self.member_state(state, name), processes.only(m.signature.slot_names), plan[name]
            )
            values.update(out)
            outputs.update(out)
            final.update({f"{name}.{k}": v for k, v in st.items()})
        return (outputs if save is None else {k: outputs[k] for k in save}), final


def _chain_plan(
    members: list[tuple[str, PhysicsModel]], save: frozenset[str] | None
) -> dict[str, frozenset[str] | None]:
    """Which members run and what each keeps: walking back from ``save``, a member runs when it carries
    state or produces something a later member or the caller needs."""
    if save is None:
        return {name: None for name, _ in members}
    needed = set(save)
    plan: dict[str, frozenset[str] | None] = {}
    for name, m in reversed(members):
        keep = needed & set(m.output_names)
        if keep or m.state_names:
            plan[name] = frozenset(keep)
            needed = (needed - keep) | set(m.forcings_needed(plan[name]))
    return plan


class Ensemble(_CompositeComponent):
    """Several models run side by side on the same forcings; outputs are weighted means.

    Parameters
    ----------
    *models, **named
        Member models, positionally (named ``"0"``, ``"1"``, …) or by name.
    **options
        Options of :class:`EnsembleConfig`: ``weights`` (fixed, normalised to sum to one; default
        equal) and ``learn_weights`` (softmax of trainable logits initialised from ``weights``).

    Parameters and process slots of member ``m`` are named ``"m.<name>"``; outputs that every
    member produces are averaged, and each member's own outputs are returned as ``"m.<output>"``.
    """

    Config: ClassVar[type[EnsembleConfig]] = EnsembleConfig

    def __init__(self, *models: Any, **named: Any) -> None:
        config, members, options = self._parse(models, named)
        config = self.validate_config(config, options)
        first = next(iter(members.values()))
        common = [v for v in first.signature.outputs if all(v.name in m.output_names for m in members.values())]
        own = [replace(v, name=f"{n}.{v.name}") for n, m in members.items() for v in m.signature.outputs]
        super().__init__(
            members,
            config,
            forcings=_union([m.signature.forcings for m in members.values()]),
            attributes=_union([m.signature.attributes for m in members.values()]),
            parameters=ParameterSpec.concat([m.parameter_spec.prefixed(n) for n, m in members.items()]),
            states=_prefixed_states(members),
            outputs=tuple(common) + tuple(own),
            slots=tuple(s.renamed(f"{n}.{s.name}") for n, m in members.items() for s in m.signature.slots),
            mass_balance=None,
            warmup_modes=_common_warmup_modes(members),
        )
        weights = config.weights
        w = torch.ones(len(members)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(members),) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise SpecError(
                f"Ensemble weights must be {len(members)} non-negative numbers, not all zero; got {weights}"
            )
        w = w / w.sum()
        if config.learn_weights:
            self.weight_logits = nn.Parameter(torch.log(w.clamp_min(1e-6)))
        else:
            self.register_buffer("fixed_weights", w)

    @property
    def weights(self) -> torch.Tensor:
        """Current member weights, summing to one."""
        if hasattr(self, "weight_logits"):
            return torch.softmax(self.weight_logits, dim=0)
        return self.fixed_weights

    def run_members(
        self, inputs: Any, state: TensorDict, processes: Processes, save: frozenset[str] | None, run: Any
    ) -> tuple[TensorDict, TensorDict]:
        common = [v.name for v in self.signature.outputs if "." not in v.name]
        results: dict[str, TensorDict] = {}
        final: TensorDict = {}
        for name, m in self.members.items():
            prefix = f"{name}."
            if save is None:
                keep = None
            else:
                keep = frozenset(n for n in m.output_names if (n in save and n in common) or prefix + n in save)
                if not keep and not m.state_names:
                    continue
            params = {k[len(prefix) :]: v for k, v in inputs.params.items() if k.startswith(prefix)}
            member_inputs = inputs.for_member(m, inputs.forcings, params, inputs.attributes)
            out, st = run(
                m, member_inputs, self.member_state(state, name), processes.only(m.signature.slot_names, prefix), keep
            )
            results[name] = out
            final.update({f"{prefix}{k}": v for k, v in st.items()})
        weights = self.weights
        outputs: TensorDict = {}
        for output in common:
            if save is None or output in save:
                stacked = torch.stack([results[n][output] for n in self.members])
                w = weights.to(stacked).reshape(-1, *([1] * (stacked.dim() - 1)))
                outputs[output] = (w * stacked).sum(0)
        for name, out in results.items():
            outputs.update({f"{name}.{k}": v for k, v in out.items() if save is None or f"{name}.{k}" in save})
        return outputs, final
