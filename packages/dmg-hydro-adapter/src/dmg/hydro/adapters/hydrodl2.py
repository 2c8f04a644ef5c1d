"""Run the models of an installed ``hydrodl2`` package as dmg physics models.

``hydrodl2`` (https://github.com/mhpi/hydrodl2) distributes the published δHBV models under a
licence for non-commercial use only; it is an optional dependency of this package
(``pip install dmg-hydro-adapter[hydrodl2]``) and is imported only when an adapter is built.
The adapter is meant for side-by-side comparisons with :mod:`dmg.hydro.hbv`.

:class:`Hydrodl2Model` presents one hydrodl2 model (``"Hbv"``, ``"Hbv_1_1p"``, ``"Hbv_2"``, ...)
through the :class:`~dmg.core.PhysicsModel` interface, with dmg names:

* forcings ``P``, ``T``, ``PET`` (hydrodl2's ``prcp``, ``tmean``, ``pet``); attributes
  ``upstream_area`` and ``elevation`` (``ac_all``, ``elev_all``) for the 2.0 family;
* parameters without the ``par`` prefix (``BETA``, ``FC``, ...) plus the shared routing
  parameters ``route_a`` and ``route_b``: the model includes its own routing;
* states ``SP``, ``MW``, ``SM``, ``SUZ``, ``SLZ``; outputs named as those of
  ``Chain(runoff=HBV(...), routing=GammaRouting())`` (``Q`` routed streamflow,
  ``Q_unrouted``, ``AET``, ``BFI``, ...); unknown names pass unchanged.

hydrodl2 models take raw network output, not physical values: the adapter converts physical
parameters back to the unit interval (and through the logit for models that apply a sigmoid),
which costs float32 round-off of order 1e-7 relative.  Warm-up follows hydrodl2: in
``spinup`` mode the spin-up pass sees the parameters of its last step, which the adapter fills
from ``warmup_params`` when given.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field

from dmg.core import ConfigError, InputError, Parameter, PhysicsModel, State, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.physics import TensorDict, WarmupMode
from dmg.hydro.hbv.models import HBV2
from dmg.hydro.hbv.reference import (
    PUBLISHED_ATTRIBUTES,
    PUBLISHED_FORCINGS,
    PUBLISHED_OUTPUTS,
    PUBLISHED_STATES,
    parameter_name,
)
from dmg.hydro.routing import GammaRouting

FORCING_NAMES = PUBLISHED_FORCINGS
ATTRIBUTE_NAMES = PUBLISHED_ATTRIBUTES
STATE_NAMES = PUBLISHED_STATES
OUTPUT_NAMES = PUBLISHED_OUTPUTS
"""hydrodl2 flux names -> dmg output names (others keep their name)."""

SPLIT_INPUT_MODELS = ("Hbv_2",)
"""Model families whose networks give ``(dynamic, static)`` values already in ``[0, 1]``."""

_UNIT_EPS = 1e-6
"""Unit-interval values are kept in ``[eps, 1 - eps]`` before the logit."""

_KNOWN_VARIABLES: dict[str, Variable] = {
    v.name: v for v in (*HBV2.forcings, *HBV2.attributes, *HBV2.outputs, *GammaRouting().outputs)
}
"""dmg declarations (units, descriptions, ranges) of the variables the adapter renames."""


def _declare(name: str, origin: str) -> Variable:
    return _KNOWN_VARIABLES.get(name, Variable(name, "", f"hydrodl2 {origin}"))


def import_hydrodl2() -> Any:
    """Import ``hydrodl2``, or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module("hydrodl2")
    except ImportError as exc:
        raise ImportError(
            "dmg.hydro.adapters.hydrodl2 needs the optional package 'hydrodl2' "
            "(non-commercial licence): pip install 'dmg-hydro-adapter[hydrodl2]'"
        ) from exc


class Hydrodl2Config(PhysicsConfig):
    """Options of :class:`Hydrodl2Model`."""

    model: str = Field("Hbv", description="hydrodl2 model class, e.g. 'Hbv', 'Hbv_1_1p', 'Hbv_2'.")
    warmup_mode: Literal["spinup", "inline"] | None = Field(
        None, description="Warm-up mode; default 'inline' for the 2.0 family, else 'spinup'."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Further entries of the hydrodl2 model config (e.g. 'elev_threshold')."
    )


class Hydrodl2Model(PhysicsModel):
    """One hydrodl2 model behind the :class:`~dmg.core.PhysicsModel` interface.

    Parameters
    ----------
    model
        Name of the hydrodl2 model class (``hydrodl2.load_model`` resolves it).
    options
        Further entries of the hydrodl2 model config; ``nmul``, ``dynamic_params``,
        ``warmup``, ``warmup_states`` and ``routing`` are set by the adapter.
    **physics_options
        Options of :class:`~dmg.core.PhysicsModel` (``nmul``, ``dynamic``, ``warmup_mode``);
        ``dynamic`` names use dmg spelling (``"BETA"``, not ``"parBETA"``).
    """

    Config = Hydrodl2Config

    def __init__(self, *, model: str = "Hbv", options: Mapping[str, Any] | None = None, **physics_options: Any) -> None:
        hydrodl2 = import_hydrodl2()
        self.model_name = model
        self.model_class = hydrodl2.load_model(model)
        self.options = dict(options or {})
        nmul = int(physics_options.get("nmul", 1))
        dynamic = tuple(physics_options.get("dynamic", ()))
        probe = self._build(nmul, dynamic, warmup=0, spinup=False, device=torch.device("cpu"))
        self.split_inputs = type(probe).__name__.startswith(SPLIT_INPUT_MODELS)
        bounds = list(probe.parameter_bounds.items())
        routing = list(probe.routing_parameter_bounds.items())
        self._declared = [Parameter(parameter_name(n), float(lo), float(hi)) for n, (lo, hi) in bounds] + [
            Parameter(n, float(lo), float(hi), per_component=False) for n, (lo, hi) in routing
        ]
        self._forcing_order = tuple(probe.variables)
        names = [FORCING_NAMES.get(v, v) for v in probe.variables]
        self.forcings = tuple(_declare(n, f"forcing {v!r}") for n, v in zip(names, probe.variables))
        if self.split_inputs:
            self.attributes = tuple(_declare(n, f"attribute {k!r}") for k, n in ATTRIBUTE_NAMES.items())
        self._state_order = tuple(probe.state_names)
        self.states = tuple(
            State(STATE_NAMES.get(s, s), "mm", f"hydrodl2 state {s!r}", initial=float(probe.initial_state_value))
            for s in probe.state_names
        )
        self.outputs = tuple(_declare(OUTPUT_NAMES.get(f, f), f"flux {f!r}") for f in probe.flux_names)
        if physics_options.get("warmup_mode") is None:
            physics_options["warmup_mode"] = "inline" if self.split_inputs else "spinup"
        if self.split_inputs and physics_options["warmup_mode"] != "inline":
            raise ConfigError(
                f"warmup_mode: {model} runs its warm-up inline only, got {physics_options['warmup_mode']!r}"
            )
        super().__init__(**physics_options)

    def declare_parameters(self, dynamic: tuple[str, ...]) -> tuple[Parameter, ...]:
        """The wrapped model's parameters (``par`` prefix removed), then ``route_a``, ``route_b``."""
        return tuple(self._declared)

    def _build(
        self,
        nmul: int,
        dynamic: tuple[str, ...],
        *,
        warmup: int,
        spinup: bool,
        device: torch.device,
        cache_states: bool = False,
    ) -> Any:
        config = dict(self.options)
        config.update(
            nmul=nmul,
            warmup=warmup,
            warmup_states=spinup,
            routing=True,
            dy_drop=0.0,
            cache_states=cache_states,
            dynamic_params={self.model_class.__name__: [f"par{n}" for n in dynamic]},
        )
        config.setdefault("variables", ["prcp", "tmean", "pet"])
        return self.model_class(config, device=device)

    # ------------------------------------------------------------------ run
    def simulate(
        self,
        forcings,
        params,
        attributes,
        state,
        *,
        warmup: int,
        warmup_mode: WarmupMode,
        warmup_params: TensorDict | None = None,
    ) -> tuple[TensorDict, TensorDict, int]:
        """Run the hydrodl2 model; it drops the warm-up steps itself."""
        if self.split_inputs and warmup and warmup_mode != "inline":
            raise ConfigError(f"warmup_mode: {self.model_name} runs its warm-up inline only, got {warmup_mode!r}")
        first = next(iter(forcings.values()))
        if first.dtype != torch.float32:
            raise InputError(f"{self.model_name} (hydrodl2) computes in float32; got forcings of dtype {first.dtype}")
        n_time, n_units = first.shape
        spec = self.parameter_spec
        model = self._build(
            spec.nmul,
            tuple(n for n in spec.names if n in spec.dynamic),
            warmup=warmup,
            spinup=warmup_mode == "spinup",
            device=first.device,
            cache_states=state is not None,
        )
        if state is not None:
            model.load_states(tuple(state[STATE_NAMES.get(s, s)] for s in self._state_order))
        x_dict = {"x_phy": torch.stack([forcings[FORCING_NAMES.get(v, v)] for v in self._forcing_order], dim=-1)}
        if self.split_inputs:
            x_dict.update({k: attributes[v] for k, v in ATTRIBUTE_NAMES.items()})
            raw: Any = self._split_raw(params, n_time, n_units)
        else:
            spin = warmup_params if (warmup and warmup_mode == "spinup" and warmup_params is not None) else None
            raw = self._series_raw(params, spin, warmup, n_time)
        fluxes = model(x_dict, raw)
        outputs = {OUTPUT_NAMES.get(k, k): v.squeeze(-1) if v.dim() == 3 else v for k, v in fluxes.items()}
        final = model.get_states()
        final_state = {
            STATE_NAMES.get(name, name): (value[-1] if value.dim() == 3 else value)
            for name, value in zip(self._state_order, final)
        }
        return outputs, final_state, 0

    def _unit(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return self.parameter_spec[name].unscale(value)

    def _series_raw(self, params: TensorDict, spin: TensorDict | None, warmup: int, n_time: int) -> torch.Tensor:
        """``[time, unit, n_params * nmul + n_routing]`` logits in the published channel layout."""
        spec = self.parameter_spec
        columns = []
        for p in spec:
            series = self._as_series(p, params[p.name], n_time)
            if spin is not None:
                series = torch.cat([self._as_series(p, spin[p.name], n_time)[:warmup], series[warmup:]])
            columns.append(series if p.per_component else series.unsqueeze(-1))
        u = torch.cat([self._unit(p.name, c) for p, c in zip(spec, columns)], dim=-1)
        return torch.logit(u.clamp(_UNIT_EPS, 1.0 - _UNIT_EPS))

    def _as_series(self, p: Parameter, value: torch.Tensor, n_time: int) -> torch.Tensor:
        if self.is_series(p, value):
            return value
        return value.expand(n_time, *value.shape)

    def _split_raw(self, params: TensorDict, n_time: int, n_units: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(dynamic [time, unit, n_dyn * nmul], static [unit, n_static * nmul + n_routing])`` in ``[0, 1]``."""
        spec = self.parameter_spec
        dynamic = [self._unit(p.name, self._as_series(p, params[p.name], n_time)) for p in spec.dynamic_parameters]
        static = [
            self._unit(p.name, params[p.name] if p.per_component else params[p.name].unsqueeze(-1))
            for p in spec.static_parameters
        ]
        like = static[0]
        dynamic_raw = torch.cat(dynamic, dim=-1) if dynamic else like.new_zeros(n_time, n_units, 0)
        return dynamic_raw, torch.cat(static, dim=-1)
