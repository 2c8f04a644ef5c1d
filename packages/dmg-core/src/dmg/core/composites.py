"""Physics models built from other physics models: :class:`Chain` and :class:`Ensemble`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import ComponentConfig
from dmg.core.errors import SpecError
from dmg.core.parameters import ParameterSpec
from dmg.core.physics import PhysicsModel, ProcessSlot, SlotFiller, TensorDict, WarmupMode, trim_leading
from dmg.core.variables import State, Variable


def _named_members(models: tuple[PhysicsModel, ...], named: Mapping[str, PhysicsModel]) -> dict[str, PhysicsModel]:
    if models and named:
        raise SpecError("give composite members either positionally or by name, not both")
    members = dict(named) if named else {str(i): m for i, m in enumerate(models)}
    if not members:
        raise SpecError("a composite needs at least one member model")
    for name, m in members.items():
        if not isinstance(m, PhysicsModel):
            raise SpecError(f"composite member {name!r} is a {type(m).__name__}, not a PhysicsModel")
        if "." in name:
            raise SpecError(f"composite member name {name!r} must not contain '.'")
    return members


def _union(groups: Sequence[tuple[Variable, ...]]) -> tuple[Variable, ...]:
    seen: dict[str, Variable] = {}
    for group in groups:
        for v in group:
            seen.setdefault(v.name, v)
    return tuple(seen.values())


class CompositeConfig(ComponentConfig):
    """Options of a composite: its member models, each a registered physics component."""

    members: dict[str, dict[str, Any]] = Field(
        description="Member name -> physics component ({name: ..., options}), in order."
    )


class EnsembleConfig(CompositeConfig):
    weights: list[float] | None = Field(None, description="Fixed member weights (normalised); default equal.")
    learn_weights: bool = Field(False, description="Learn the member weights (softmax of trainable logits).")


def _build_members(config: CompositeConfig, path: str) -> dict[str, PhysicsModel]:
    from dmg.core.config import resolve_component  # the config layer sits above the models

    members = {}
    for name, spec in config.members.items():
        cls, cfg = resolve_component("dmg.physics", spec, f"{path}.members.{name}")
        members[name] = cls.from_config(cfg)
    return members


class _Composite(PhysicsModel):
    """Shared machinery: members, prefixed states, slot delegation."""

    Config: ClassVar[type[ComponentConfig]] = CompositeConfig

    def __init__(self, members: dict[str, PhysicsModel], spec: ParameterSpec) -> None:
        nn.Module.__init__(self)
        self.members = nn.ModuleDict(members)
        self.parameter_spec = spec
        self.warmup_mode = next(iter(members.values())).warmup_mode
        self.backend = "composite"
        self.backend_options = {}
        self._fillers = {}
        self.attributes = _union([m.attributes for m in members.values()])
        self.states = tuple(
            State(f"{name}.{s.name}", s.unit, s.description, s.typical_range, s.initial)
            for name, m in members.items()
            for s in m.states
        )
        self.slots = tuple(s for m in members.values() for s in m.slots)
        self.mass_balance = None

    def initial_state(self, n_units, *, dtype=None, device=None) -> TensorDict:
        return {
            f"{name}.{k}": v
            for name, m in self.members.items()
            for k, v in m.initial_state(n_units, dtype=dtype, device=device).items()
        }

    def check_state(self, state, n_units) -> None:
        for name, m in self.members.items():
            m.check_state(self._member_state(state, name), n_units)

    def _member_state(self, state: Mapping[str, torch.Tensor] | None, name: str) -> TensorDict | None:
        if state is None:
            return None
        prefix = f"{name}."
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

    def slot(self, name: str) -> ProcessSlot:
        return self._slot_owner(name).slot(name)

    def _slot_owner(self, name: str) -> PhysicsModel:
        for m in self.members.values():
            if any(s.name == name for s in m.slots):
                return m
        raise SpecError(
            f"no member of this {type(self).__name__} has a process slot {name!r}; "
            f"slots: {[s.name for s in self.slots] or 'none'}"
        )

    @contextmanager
    def filling(self, name: str, filler: SlotFiller) -> Iterator[None]:
        with self._slot_owner(name).filling(name, filler):
            yield

    def extra_repr(self) -> str:
        return f"nmul={self.nmul}"


class Chain(_Composite):
    """Models run in sequence; outputs of earlier members feed later members' forcings by name.

    Example: runoff generation followed by routing, ``Chain(runoff=hbv, routing=uh)``.
    Parameters keep their names (they must not clash); states are named
    ``"<member>.<state>"``; outputs of all members are returned, a later member's
    output replacing an earlier one of the same name.  Later members run inline over
    any warm-up steps the first member still carries, then those steps are dropped.
    """

    @classmethod
    def from_config(cls, config: CompositeConfig, **context: object) -> Chain:
        """Build the members from their component configs, in order."""
        return cls(**_build_members(config, "model.physics"))

    def __init__(self, *models: PhysicsModel, **named: PhysicsModel) -> None:
        members = _named_members(models, named)
        specs = [m.parameter_spec for m in members.values()]
        names = [n for s in specs for n in s.names]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise SpecError(f"members of a Chain declare the same parameters {clashes}; rename one")
        super().__init__(members, ParameterSpec.concat(specs))
        produced: set[str] = set()
        external: list[tuple[Variable, ...]] = []
        for m in members.values():
            external.append(tuple(v for v in m.forcings if v.name not in produced))
            produced.update(m.output_names)
        self.forcings = _union(external)
        outputs: dict[str, Variable] = {}
        for m in members.values():
            outputs.update({v.name: v for v in m.outputs})
        self.outputs = tuple(outputs.values())

    def simulate(
        self, forcings, params, attributes, state, *, warmup: int, warmup_mode: WarmupMode, warmup_params=None
    ) -> tuple[TensorDict, TensorDict, int]:
        n_time = next(iter(forcings.values())).shape[0]
        outputs: TensorDict = {}
        final_state: TensorDict = {}
        offset, pending = 0, warmup
        for i, (name, m) in enumerate(self.members.items()):
            m_forcings = {v: outputs[v] if v in outputs else forcings[v][offset:] for v in m.forcing_names}
            m_params = m.slice_params({k: params[k] for k in m.parameter_spec.names}, offset, n_time)
            m_attrs = {k: attributes[k] for k in m.attribute_names}
            if i == 0:
                m_warm = None if warmup_params is None else {k: warmup_params[k] for k in m.parameter_spec.names}
                out, st, pending = m.simulate(
                    m_forcings,
                    m_params,
                    m_attrs,
                    self._member_state(state, name),
                    warmup=warmup,
                    warmup_mode=warmup_mode,
                    warmup_params=m_warm,
                )
                offset = warmup - pending
            else:
                out, st, _ = m.simulate(
                    m_forcings, m_params, m_attrs, self._member_state(state, name), warmup=pending, warmup_mode="inline"
                )
            outputs.update(out)
            final_state.update({f"{name}.{k}": v for k, v in st.items()})
        return outputs, final_state, pending


class Ensemble(_Composite):
    """Several models run side by side on the same forcings; outputs are weighted means.

    Parameters
    ----------
    *models, **named
        Member models, positionally (named ``"0"``, ``"1"``, …) or by name.
    weights
        Fixed member weights (normalised to sum to one); default: equal.
    learn_weights
        If ``True``, weights are learned (softmax of trainable logits initialised from ``weights``).

    Parameters of member ``m`` are named ``"m.<param>"``; outputs that every member
    produces are averaged, and each member's own outputs are returned as ``"m.<output>"``.
    """

    Config: ClassVar[type[ComponentConfig]] = EnsembleConfig

    @classmethod
    def from_config(cls, config: EnsembleConfig, **context: object) -> Ensemble:
        """Build the members from their component configs."""
        members = _build_members(config, "model.physics")
        return cls(weights=config.weights, learn_weights=config.learn_weights, **members)

    def __init__(
        self,
        *models: PhysicsModel,
        weights: Sequence[float] | None = None,
        learn_weights: bool = False,
        **named: PhysicsModel,
    ) -> None:
        members = _named_members(models, named)
        super().__init__(members, ParameterSpec.concat([m.parameter_spec.prefixed(n) for n, m in members.items()]))
        self.forcings = _union([m.forcings for m in members.values()])
        common = [
            v for v in next(iter(members.values())).outputs if all(v.name in m.output_names for m in members.values())
        ]
        own = [
            Variable(f"{n}.{v.name}", v.unit, v.description, v.typical_range)
            for n, m in members.items()
            for v in m.outputs
        ]
        self.outputs = tuple(common) + tuple(own)
        w = torch.ones(len(members)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(members),) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise SpecError(
                f"Ensemble weights must be {len(members)} non-negative numbers, not all zero; got {weights}"
            )
        w = w / w.sum()
        if learn_weights:
            self.weight_logits = nn.Parameter(torch.log(w.clamp_min(1e-6)))
        else:
            self.register_buffer("fixed_weights", w)

    @property
    def weights(self) -> torch.Tensor:
        """Current member weights, summing to one."""
        if hasattr(self, "weight_logits"):
            return torch.softmax(self.weight_logits, dim=0)
        return self.fixed_weights

    def simulate(
        self, forcings, params, attributes, state, *, warmup: int, warmup_mode: WarmupMode, warmup_params=None
    ) -> tuple[TensorDict, TensorDict, int]:
        results: dict[str, TensorDict] = {}
        final_state: TensorDict = {}
        for name, m in self.members.items():
            prefix = f"{name}."
            m_params = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
            m_warm = (
                None
                if warmup_params is None
                else {k[len(prefix) :]: v for k, v in warmup_params.items() if k.startswith(prefix)}
            )
            out, st, trim = m.simulate(
                {k: forcings[k] for k in m.forcing_names},
                m_params,
                {k: attributes[k] for k in m.attribute_names},
                self._member_state(state, name),
                warmup=warmup,
                warmup_mode=warmup_mode,
                warmup_params=m_warm,
            )
            results[name] = trim_leading(out, trim)
            final_state.update({f"{prefix}{k}": v for k, v in st.items()})
        weights = self.weights
        outputs: TensorDict = {}
        for v in self.outputs:
            if "." not in v.name:
                stacked = torch.stack([results[n][v.name] for n in self.members])
                w = weights.to(stacked).reshape(-1, *([1] * (stacked.dim() - 1)))
                outputs[v.name] = (w * stacked).sum(0)
        for name, out in results.items():
            outputs.update({f"{name}.{k}": v for k, v in out.items()})
        return outputs, final_state, 0
