"""A coarse model spins up the states of a fine model: the :class:`MultiTimescale` composite.

One series at the fine time step (e.g. hourly) feeds the composite. Its first
``coarse_steps * ratio`` steps are the *coarse span*: they are aggregated, variable by variable,
into ``coarse_steps`` blocks of ``ratio`` fine steps (the coarse time step, e.g. daily), over which
the coarse model runs. The coarse model's final states are handed over to the fine model (through
a mapping of state names and optional linear transforms), which then runs over the rest of the
series, the *fine span*::

    fine steps   |<------- coarse span: coarse_steps * ratio ------->|<---- fine span ---->|
    coarse model [ block 0 | block 1 | ...          | block D-1       ]
    fine model                                                        [ t0, t0+1, ...      ]
                                                      final states --> initial states

Outputs are the fine model's; over the coarse span they are NaN, so the batch's warm-up must
cover at least the coarse span (:attr:`MultiTimescale.required_warmup`); the composite warms up
``inline`` only. The coarse model's outputs are not kept.

Parameters are named ``coarse.<name>`` and ``fine.<name>``, so a network per time scale supplies
its own (e.g. two ``ParameterLearning`` couplings with ``learn`` lists). A time-varying parameter is
given over the whole series at the fine step; the coarse model sees its block means over the coarse
span and the fine model its values over the fine span. A parameter declared in ``shared`` is
supplied by one scale only and rescaled to the other's bounds: its unit-interval value
``u = (value - low) / (high - low)`` under the supplying model's bounds becomes
``low + u * (high - low)`` under the receiving model's bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

from dmg.core.components import ComponentConfig, OptionsModel
from dmg.core.composites import _split_members, _union
from dmg.core.errors import ConfigError, InputError, SpecError
from dmg.core.parameters import ParameterSpec
from dmg.core.physics import Composite, PhysicsModel
from dmg.core.signature import Processes, TensorDict

Aggregation = Literal["sum", "mean", "min", "max"]
"""How the ``ratio`` fine steps of one coarse step become one value."""

Scale = Literal["coarse", "fine"]
"""A time scale of the composite (and the name of its member)."""

COARSE: Scale = "coarse"
FINE: Scale = "fine"


class HandoverRule(OptionsModel):
    """How one fine state starts from a coarse model's final state: ``scale * coarse_state + offset``."""

    state: str = Field(description="Name of the coarse model's state handed over.")
    scale: float = Field(1.0, description="Factor applied to the coarse state (e.g. a change of unit).")
    offset: float = Field(0.0, description="Added after scaling, in the fine state's unit.")


class MultiTimescaleConfig(ComponentConfig):
    """Options of :class:`MultiTimescale`."""

    coarse: dict[str, Any] | None = Field(
        None,
        description="The coarse model: a physics component ({name: ..., options}). In Python, give the model "
        "itself as coarse=.",
    )
    fine: dict[str, Any] | None = Field(
        None,
        description="The fine model: a physics component ({name: ..., options}). In Python, give the model "
        "itself as fine=.",
    )
    ratio: int = Field(ge=1, description="Fine steps per coarse step (e.g. 24 hours per day).")
    coarse_steps: int = Field(
        ge=1, description="Coarse steps the coarse model runs before the fine span (e.g. 351 days)."
    )
    aggregation: dict[str, Aggregation] = Field(
        default_factory=dict,
        description="Coarse forcing -> how its fine values aggregate over a coarse step: 'sum', 'mean', 'min' or "
        "'max'; every forcing of the coarse model needs one.",
    )
    handover: dict[str, HandoverRule] = Field(
        default_factory=dict,
        description="Fine state -> the coarse state it starts from (a name, or {state, scale, offset}); fine "
        "states not listed start from their own initial values.",
    )

    @field_validator("handover", mode="before")
    @classmethod
    def _state_names(cls, value: Any) -> Any:
        """A bare state name stands for ``{state: name}``."""
        if isinstance(value, Mapping):
            return {k: {"state": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    detach_handover: bool = Field(
        True, description="Hand over the coarse states without gradient (the fine loss does not reach them)."
    )
    shared: dict[str, Scale] = Field(
        default_factory=dict,
        description="Parameter both models declare -> the scale that supplies it ('coarse' or 'fine'); its value "
        "is rescaled from the supplying model's bounds to the other's. Other parameters each scale supplies itself.",
    )
    warmup_mode: Literal["inline"] = Field(
        "inline", description="Warm-up mode: 'inline' only (the warm-up covers the coarse span)."
    )


_AGGREGATE = {
    "sum": lambda x: x.sum(dim=1),
    "mean": lambda x: x.mean(dim=1),
    "min": lambda x: x.amin(dim=1),
    "max": lambda x: x.amax(dim=1),
}


def aggregate(series: torch.Tensor, ratio: int, how: Aggregation) -> torch.Tensor:
    """Consecutive blocks of ``ratio`` steps of ``series`` ``[time, ...]`` as ``[time // ratio, ...]``.

    Parameters
    ----------
    series
        A series whose length is a whole number of blocks.
    ratio
        Steps per block.
    how
        ``"sum"``, ``"mean"``, ``"min"`` or ``"max"`` over each block.
    """
    n = series.shape[0]
    if n % ratio:
        raise InputError(f"a series of {n} steps is not a whole number of blocks of {ratio} steps")
    if how not in _AGGREGATE:
        raise SpecError(f"unknown aggregation {how!r}; use one of {sorted(_AGGREGATE)}")
    return _AGGREGATE[how](series.reshape(n // ratio, ratio, *series.shape[1:]))


class MultiTimescale(Composite):
    """A coarse model runs over an aggregated span, then hands its final states to a fine model.

    See the module docstring for the layout of the series.

    Parameters
    ----------
    config
        A :class:`MultiTimescaleConfig` (or mapping of its options).
    coarse, fine
        The two member models (in Python; from a config file they are built from ``coarse``/``fine``).
    **options
        Options of :class:`MultiTimescaleConfig`: ``ratio``, ``coarse_steps``, ``aggregation``,
        ``handover``, ``detach_handover``, ``shared``.

    Examples
    --------
    >>> mts = MultiTimescale(coarse=daily, fine=hourly, ratio=24, coarse_steps=365,   # doctest: +SKIP
    ...                      aggregation={"P": "sum", "T": "mean"}, handover={"S": "S"})
    """

    # A composite's options are its own, not a single model's (no nmul, no dynamic list of its own).
    Config: ClassVar[type[MultiTimescaleConfig]] = MultiTimescaleConfig  # type: ignore[assignment]

    def __init__(self, *models: Any, **named: Any) -> None:
        config = None
        if models and not isinstance(models[0], PhysicsModel):
            config, models = models[0], models[1:]
        members, options = _split_members(tuple(models), named)
        if set(members) != {COARSE, FINE}:
            raise SpecError(f"MultiTimescale takes two models, coarse= and fine=; got {sorted(members) or 'none'}")
        config = self.validate_config(config, options)
        coarse, fine = members[COARSE], members[FINE]
        _check_aggregation(config, coarse)
        handover = _check_handover(config, coarse, fine)
        _check_shared(config, coarse, fine)
        specs = [
            _own_spec(coarse.parameter_spec, config.shared, FINE).prefixed(COARSE),
            _own_spec(fine.parameter_spec, config.shared, COARSE).prefixed(FINE),
        ]
        if coarse.nmul != fine.nmul:
            raise ConfigError(f"coarse and fine models must have the same nmul, got {coarse.nmul} and {fine.nmul}")
        members = {COARSE: coarse, FINE: fine}
        super().__init__(
            members,
            config,
            forcings=_union([coarse.signature.forcings, fine.signature.forcings]),
            attributes=_union([coarse.signature.attributes, fine.signature.attributes]),
            parameters=ParameterSpec.concat(specs),
            states=tuple(replace(s, name=f"{n}.{s.name}") for n, m in members.items() for s in m.signature.states),
            outputs=fine.signature.outputs,
            slots=tuple(s.renamed(f"{n}.{s.name}") for n, m in members.items() for s in m.signature.slots),
            mass_balance=None,
            warmup_modes=("inline",),
        )
        self.warmup_mode = "inline"
        self._handover = handover

    @classmethod
    def from_config(cls, config: Any = None, **context: Any) -> MultiTimescale:
        """Build both members from their component configs (``coarse`` and ``fine``)."""
        from dmg.core.config import resolve_component  # the config layer sits above the models

        config = cls.validate_config(config)
        members = {}
        for scale in (COARSE, FINE):
            spec = getattr(config, scale)
            if spec is None:
                raise ConfigError(f"model.physics.{scale}: give the {scale} model ({{name: ..., options}})")
            member_cls, member_cfg = resolve_component("dmg.physics", spec, f"model.physics.{scale}")
            members[scale] = member_cls.from_config(member_cfg)
        try:
            return cls(config, **members, **context)
        except ConfigError as exc:
            raise ConfigError(f"model.physics.{exc}") from None

    # ------------------------------------------------------------------ layout
    @property
    def coarse(self) -> PhysicsModel:
        """The coarse model."""
        return self.members[COARSE]

    @property
    def fine(self) -> PhysicsModel:
        """The fine model."""
        return self.members[FINE]

    @property
    def required_warmup(self) -> int:
        """Fine steps of the coarse span: the least warm-up a series needs (its outputs there are NaN)."""
        return self.config.ratio * self.config.coarse_steps

    # ------------------------------------------------------------- the pieces
    def coarse_forcings(self, forcings: Mapping[str, torch.Tensor]) -> TensorDict:
        """The coarse model's forcings, ``[coarse_steps, unit]``, from fine ones ``[time, unit]``."""
        span = self.required_warmup
        return {
            name: aggregate(forcings[name][:span], self.config.ratio, self.config.aggregation[name])
            for name in self.coarse.forcing_names
        }

    def member_params(self, params: Mapping[str, torch.Tensor], scale: Scale) -> TensorDict:
        """Physical parameters of member ``scale`` from the composite's ``params``.

        Time-varying values (given over the whole series at the fine step) become block means over
        the coarse span for the coarse model and their fine-span values for the fine model; shared
        parameters are rescaled from the supplying model's bounds.
        """
        model = self.members[scale]
        other: Scale = FINE if scale == COARSE else COARSE
        out: TensorDict = {}
        for p in model.parameter_spec:
            if self.config.shared.get(p.name, scale) == scale:
                out[p.name] = self._span(params[f"{scale}.{p.name}"], p.name, scale)
            else:
                source = self.members[other].parameter_spec[p.name]
                value = self._span(params[f"{other}.{p.name}"], p.name, scale)
                out[p.name] = p.scale(source.unscale(value))
        return out

    def _span(self, value: torch.Tensor, name: str, scale: Scale) -> torch.Tensor:
        """``value`` of parameter ``name`` over the span of ``scale`` (static values as they are)."""
        spec = self.members[scale].parameter_spec
        if not spec.is_series(name, value):
            return value
        span = self.required_warmup
        if scale == FINE:
            return value[span:]
        return aggregate(value[:span], self.config.ratio, "mean")

    def handover(self, coarse_state: Mapping[str, torch.Tensor], fine_state: Mapping[str, torch.Tensor]) -> TensorDict:
        """The fine model's initial state: ``fine_state`` with the mapped states taken from ``coarse_state``."""
        out = dict(fine_state)
        for target, rule in self._handover.items():
            value = coarse_state[rule.state]
            if self.config.detach_handover:
                value = value.detach()
            out[target] = value * rule.scale + rule.offset if (rule.scale, rule.offset) != (1.0, 0.0) else value
        return out

    # ---------------------------------------------------------------- the run
    def run_members(
        self, inputs: Any, state: TensorDict, processes: Processes, save: frozenset[str] | None, run: Any
    ) -> tuple[TensorDict, TensorDict]:
        span = self.required_warmup
        if inputs.n_time <= span:
            raise InputError(
                f"MultiTimescale needs more than its coarse span of {span} steps (coarse_steps "
                f"{self.config.coarse_steps} x ratio {self.config.ratio}); got a series of {inputs.n_time}"
            )
        coarse, fine = self.coarse, self.fine
        coarse_inputs = replace(
            inputs.for_member(
                coarse,
                self.coarse_forcings(inputs.forcings),
                self.member_params(inputs.params, COARSE),
                inputs.attributes,
            ),
            n_time=self.config.coarse_steps,
        )
        # handed over without gradient, the coarse states need no graph: the coarse run is then gradient-free
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.detach_handover):
            _, coarse_final = run(
                coarse,
                coarse_inputs,
                self.member_state(state, COARSE),
                processes.only(coarse.signature.slot_names, f"{COARSE}."),
                frozenset(),
            )
        fine_window = inputs.window(span, inputs.n_time)
        fine_inputs = replace(
            inputs.for_member(fine, fine_window.forcings, self.member_params(inputs.params, FINE), inputs.attributes),
            n_time=fine_window.n_time,
        )
        start = self.handover(coarse_final, self.member_state(state, FINE))
        outputs, fine_final = run(fine, fine_inputs, start, processes.only(fine.signature.slot_names, f"{FINE}."), save)
        final = {f"{COARSE}.{k}": v for k, v in coarse_final.items()}
        final.update({f"{FINE}.{k}": v for k, v in fine_final.items()})
        return {k: _pad_front(v, span) for k, v in outputs.items()}, final

    def extra_repr(self) -> str:
        c = self.config
        return f"ratio={c.ratio}, coarse_steps={c.coarse_steps}, nmul={self.nmul}"


def _pad_front(value: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` NaN steps before a ``[time, unit, ...]`` series; ``[unit]`` summaries pass unchanged."""
    if value.dim() < 2:
        return value
    return torch.cat([value.new_full((n, *value.shape[1:]), float("nan")), value])


def _own_spec(spec: ParameterSpec, shared: Mapping[str, Scale], supplier: Scale) -> ParameterSpec:
    """``spec`` without the parameters the other scale (``supplier``) supplies."""
    return spec.subset([n for n in spec.names if shared.get(n) != supplier])


def _check_aggregation(config: MultiTimescaleConfig, coarse: PhysicsModel) -> None:
    for name in config.aggregation:
        if name not in coarse.forcing_names:
            raise ConfigError(
                f"aggregation.{name}: the coarse model has no forcing {name!r}; it reads {list(coarse.forcing_names)}"
            )
    missing = [n for n in coarse.forcing_names if n not in config.aggregation]
    if missing:
        raise ConfigError(
            f"aggregation: say how each coarse forcing aggregates ('sum', 'mean', 'min' or 'max'); missing {missing}"
        )


def _check_handover(config: MultiTimescaleConfig, coarse: PhysicsModel, fine: PhysicsModel) -> dict[str, HandoverRule]:
    rules = {}
    for target, rule in config.handover.items():
        if target not in fine.state_names:
            raise ConfigError(
                f"handover.{target}: the fine model has no state {target!r}; states: {list(fine.state_names)}"
            )
        if rule.state not in coarse.state_names:
            raise ConfigError(
                f"handover.{target}: the coarse model has no state {rule.state!r}; states: {list(coarse.state_names)}"
            )
        rules[target] = rule
    return rules


def _check_shared(config: MultiTimescaleConfig, coarse: PhysicsModel, fine: PhysicsModel) -> None:
    cs, fs = coarse.parameter_spec, fine.parameter_spec
    for name in config.shared:
        absent = [scale for scale, spec in ((COARSE, cs), (FINE, fs)) if name not in spec]
        if absent:
            raise ConfigError(
                f"shared.{name}: the {' and '.join(absent)} model declares no parameter {name!r}; "
                "a shared parameter must be declared by both"
            )
        if cs.is_dynamic(name) != fs.is_dynamic(name):
            raise ConfigError(
                f"shared.{name}: {name!r} is time-varying in one model only; make it dynamic in both or in neither"
            )
        if cs[name].per_component != fs[name].per_component:
            raise ConfigError(f"shared.{name}: {name!r} is per component in one model only")
