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
which costs float32 round-off of order 1e-7 relative.

Each call runs the hydrodl2 model over exactly the series it is given, from the given state, with
hydrodl2's own warm-up off: warm-up belongs to the dmg engine, as for every physics model. In
``spinup`` mode the engine runs a gradient-free call over the warm-up steps (with
``warmup_params`` when given) and then the main call from the state it reached; in ``inline``
mode (always for the 2.0 family) one call over all steps, whose warm-up steps the engine drops.
The state is handed to hydrodl2 without its gradient (hydrodl2 detaches loaded states).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field

from dmg.core import InputError, Parameter, SeriesModel, State, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.signature import NO_PROCESSES, Processes, TensorDict, WarmupMode
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

INLINE_ONLY: tuple[WarmupMode, ...] = ("inline",)
"""Warm-up modes of the 2.0 family (split inputs): inline only, as published."""
SPINUP_OR_INLINE: tuple[WarmupMode, ...] = ("spinup", "inline")
"""Warm-up modes of the other models, the published default first."""

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
        None, description="Warm-up mode; default 'spinup', and 'inline' (the only mode) for the 2.0 family."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Further entries of the hydrodl2 model config (e.g. 'elev_threshold')."
    )


def _build(model_class: type, config: Hydrodl2Config, device: torch.device) -> Any:
    """A fresh hydrodl2 model for one call: its warm-up off, states loaded from the caller, routing on."""
    options = dict(config.options)
    options.update(
        nmul=config.nmul,
        warmup=0,
        warmup_states=False,
        routing=True,
        dy_drop=0.0,
        cache_states=True,
        dynamic_params={model_class.__name__: [f"par{n}" for n in config.dynamic]},
    )
    options.setdefault("variables", ["prcp", "tmean", "pet"])
    return model_class(options, device=device)


class Hydrodl2Model(SeriesModel):
    """One hydrodl2 model behind the :class:`~dmg.core.PhysicsModel` interface.

    Parameters
    ----------
    config
        A :class:`Hydrodl2Config`, or a mapping of its options.
    **options
        Options of :class:`Hydrodl2Config` as keywords: ``model`` (name of the hydrodl2 model
        class, resolved by ``hydrodl2.load_model``), ``options`` (further entries of the hydrodl2
        model config; ``nmul``, ``dynamic_params``, ``warmup``, ``warmup_states``, ``routing`` and
        ``cache_states`` are set by the adapter), ``nmul``, ``dynamic`` (dmg spelling:
        ``"BETA"``, not ``"parBETA"``) and ``warmup_mode``.

    Raises
    ------
    ImportError
        If hydrodl2 is not installed (the message says how to install it).
    """

    Config = Hydrodl2Config

    def __init__(self, config: Hydrodl2Config | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        hydrodl2 = import_hydrodl2()
        model_class = hydrodl2.load_model(config.model)
        probe = _build(model_class, config, torch.device("cpu"))
        split_inputs = type(probe).__name__.startswith(SPLIT_INPUT_MODELS)
        parameters = tuple(
            Parameter(parameter_name(n), float(lo), float(hi)) for n, (lo, hi) in probe.parameter_bounds.items()
        ) + tuple(
            Parameter(n, float(lo), float(hi), per_component=False)
            for n, (lo, hi) in probe.routing_parameter_bounds.items()
        )
        names = [FORCING_NAMES.get(v, v) for v in probe.variables]
        attributes = tuple(_declare(n, f"attribute {k!r}") for k, n in ATTRIBUTE_NAMES.items()) if split_inputs else ()
        initial = float(probe.initial_state_value)
        super().__init__(
            config,
            forcings=tuple(_declare(n, f"forcing {v!r}") for n, v in zip(names, probe.variables)),
            attributes=attributes,
            parameters=parameters,
            states=tuple(
                State(STATE_NAMES.get(s, s), "mm", f"hydrodl2 state {s!r}", initial=initial) for s in probe.state_names
            ),
            outputs=tuple(_declare(OUTPUT_NAMES.get(f, f), f"flux {f!r}") for f in probe.flux_names),
            warmup_modes=INLINE_ONLY if split_inputs else SPINUP_OR_INLINE,
        )
        self.model_class = model_class
        self.split_inputs = split_inputs
        self._forcing_order = tuple(probe.variables)
        self._state_order = tuple(probe.state_names)

    # ------------------------------------------------------------------ run
    def simulate(
        self,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        state: TensorDict,
        processes: Processes = NO_PROCESSES,
        save: frozenset[str] | None = None,
    ) -> tuple[TensorDict, TensorDict]:
        """Run the hydrodl2 model over the whole series given, from ``state``.

        Parameters
        ----------
        forcings
            ``P`` (mm/day), ``T`` (°C), ``PET`` (mm/day), ``[time, unit]`` float32.
        params
            Physical parameters in dmg names and shapes.
        attributes
            ``upstream_area`` (km²) and ``elevation`` (m), ``[unit]``, for the 2.0 family.
        state
            Stores (mm) ``[unit, nmul]`` at the start of the series: the declared initial values
            (those hydrodl2 starts from) unless carried over from a previous call.
        processes
            Unused: the adapter declares no process slot.

        Returns
        -------
        tuple[dict, dict]
            Outputs in dmg names (``[time, unit]`` series, ``BFI`` ``[unit]``) and the final stores.
        """
        first = next(iter(forcings.values()))
        if first.dtype != torch.float32:
            raise InputError(f"{self.config.model} (hydrodl2) computes in float32; got forcings of dtype {first.dtype}")
        n_time, n_units = first.shape
        model = _build(self.model_class, self.config, first.device)
        # hydrodl2 starts from loaded states when it caches them; its own initial stores equal the
        # declared initial values, so loading the given state is the same for a fresh start
        model.load_states(tuple(state[STATE_NAMES.get(s, s)] for s in self._state_order))
        x_dict = {"x_phy": torch.stack([forcings[FORCING_NAMES.get(v, v)] for v in self._forcing_order], dim=-1)}
        if self.split_inputs:
            x_dict.update({k: attributes[v] for k, v in ATTRIBUTE_NAMES.items()})
            raw: Any = self._split_raw(params, n_time, n_units)
        else:
            raw = self._series_raw(params, n_time)
        fluxes = model(x_dict, raw)
        outputs = {OUTPUT_NAMES.get(k, k): v.squeeze(-1) if v.dim() == 3 else v for k, v in fluxes.items()}
        final_state = {
            STATE_NAMES.get(name, name): (value[-1] if value.dim() == 3 else value)
            for name, value in zip(self._state_order, model.get_states())
        }
        return outputs, final_state

    def _unit(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return self.parameter_spec[name].unscale(value)

    def _series_raw(self, params: TensorDict, n_time: int) -> torch.Tensor:
        """``[time, unit, n_params * nmul + n_routing]`` logits in the published channel layout."""
        spec = self.parameter_spec
        columns = []
        for p in spec:
            series = self._as_series(p, params[p.name], n_time)
            columns.append(series if p.per_component else series.unsqueeze(-1))
        u = torch.cat([self._unit(p.name, c) for p, c in zip(spec, columns)], dim=-1)
        return torch.logit(u.clamp(_UNIT_EPS, 1.0 - _UNIT_EPS))

    def _as_series(self, p: Parameter, value: torch.Tensor, n_time: int) -> torch.Tensor:
        if self.parameter_spec.is_series(p.name, value):
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

    def extra_repr(self) -> str:
        return f"model={self.config.model!r}, {super().extra_repr()}"
