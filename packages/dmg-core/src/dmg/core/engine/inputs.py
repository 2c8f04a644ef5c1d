"""Checked inputs of one simulation: :class:`Inputs` and the checks that build it.

Shapes and names are always checked (metadata only, no device synchronisation). Values —
NaN or infinite forcings, parameters, attributes and states — are checked according to the
engine's ``check_inputs`` option: ``"always"``, ``"shapes"`` (never), or ``"auto"`` (when the tensors
live on the CPU, where the check needs no host synchronisation; on an accelerator the data
pipeline has already checked the data and the trainer catches non-finite losses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import torch

from dmg.core.errors import InputError, ShapeError, SpecError
from dmg.core.signature import TensorDict

if TYPE_CHECKING:
    from dmg.core.physics import PhysicsModel

CheckInputs = Literal["auto", "always", "shapes"]


@dataclass(frozen=True)
class Inputs:
    """A model's checked inputs over one series.

    Attributes
    ----------
    forcings
        name -> ``[time, unit]``, every declared forcing.
    params
        Physical parameters, every declared one (defaults filled in).
    attributes
        name -> ``[unit]``, every declared attribute.
    n_time, n_units
        Length of the series and number of units.
    series
        Names of the parameters given as time series (dynamic ones with a time axis).
    """

    forcings: TensorDict
    params: TensorDict
    attributes: TensorDict
    n_time: int
    n_units: int
    series: frozenset[str]

    def window(self, start: int, stop: int) -> Inputs:
        """Steps ``[start, stop)``."""
        return replace(
            self,
            forcings={k: v[start:stop] for k, v in self.forcings.items()},
            params={k: v[start:stop] if k in self.series else v for k, v in self.params.items()},
            n_time=stop - start,
        )

    def with_params(self, model: PhysicsModel, params: Mapping[str, torch.Tensor], check_inputs: CheckInputs) -> Inputs:
        """The same series with other parameters for ``model`` (checked like the first ones)."""
        like = next(iter(self.params.values()))
        full = params_with_defaults(model, params, self.n_time, self.n_units, like)
        if checks_values(check_inputs, like):
            check_finite({f"warm-up parameter {k!r}": v for k, v in full.items()})
        spec = model.parameter_spec
        return replace(self, params=full, series=frozenset(n for n in spec.names if spec.is_series(n, full[n])))

    def for_member(
        self,
        model: PhysicsModel,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        needed: tuple[str, ...] | None = None,
    ) -> Inputs:
        """The inputs of a composite's member ``model`` (already checked as the composite's); ``needed``:
        the forcings it needs (default: all it declares)."""
        spec = model.parameter_spec
        return Inputs(
            forcings={n: forcings[n] for n in (model.forcing_names if needed is None else needed)},
            params={n: params[n] for n in spec.names},
            attributes={n: attributes[n] for n in model.attribute_names},
            n_time=self.n_time,
            n_units=self.n_units,
            series=frozenset(n for n in spec.names if spec.is_series(n, params[n])),
        )


def prepare(
    model: PhysicsModel,
    forcings: torch.Tensor | Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
    attributes: Mapping[str, torch.Tensor] | None,
    check_inputs: CheckInputs,
) -> Inputs:
    """Check ``model``'s inputs and return them as :class:`Inputs`; errors name the variable and position."""
    forcing_map = _forcings(model, forcings)
    spec = model.parameter_spec
    like = next(iter(forcing_map.values()), None)
    if like is None:
        like = next((v for k, v in params.items() if k in spec.dynamic), None)
        if like is None:
            raise SpecError(f"{type(model).__name__} has no forcing or time-varying parameter to set the series length")
    n_time, n_units = int(like.shape[0]), int(like.shape[1])
    full = params_with_defaults(model, params, n_time, n_units, like)
    attrs = _attributes(model, attributes, n_units)
    inputs = Inputs(
        forcings=forcing_map,
        params=full,
        attributes=attrs,
        n_time=n_time,
        n_units=n_units,
        series=frozenset(n for n in spec.names if spec.is_series(n, full[n])),
    )
    if checks_values(check_inputs, like):
        check_finite({f"forcing {k!r}": v for k, v in forcing_map.items()}, ("time", "unit"))
        check_finite({f"parameter {k!r}": v for k, v in full.items()})
        check_finite({f"attribute {k!r}": v for k, v in attrs.items()}, ("unit",))
    return inputs


def params_with_defaults(
    model: PhysicsModel, params: Mapping[str, torch.Tensor], n_time: int, n_units: int, like: torch.Tensor
) -> TensorDict:
    """``params`` with declared defaults filled in; raise if unknown, missing or misshapen."""
    spec = model.parameter_spec
    full = {k: v for k, v in spec.defaults(n_units, dtype=like.dtype, device=like.device).items() if k not in params}
    full.update(params)
    spec.validate(full, n_time, n_units)
    return full


def checks_values(check_inputs: CheckInputs, like: torch.Tensor) -> bool:
    """Whether values are checked under ``check_inputs`` for tensors like ``like``."""
    return check_inputs == "always" or (check_inputs == "auto" and like.device.type == "cpu")


def check_state(
    model: PhysicsModel, state: Mapping[str, torch.Tensor], n_units: int, check_inputs: CheckInputs
) -> TensorDict:
    """``state`` restricted to the model's states; raise if one is missing, misshapen or not finite."""
    shapes = model.state_shapes(n_units)
    out = {}
    for name, shape in shapes.items():
        if name not in state:
            raise InputError(f"state is missing {name!r}; {type(model).__name__} carries {list(shapes)}")
        value = state[name]
        if tuple(value.shape) != shape:
            raise ShapeError(f"state {name!r} must be [unit, nmul] = {shape}, got {tuple(value.shape)}")
        out[name] = value
    if out and checks_values(check_inputs, next(iter(out.values()))):
        check_finite({f"state {k!r}": v for k, v in out.items()}, ("unit",))
    return out


def check_finite(named: Mapping[str, torch.Tensor], dims: tuple[str, ...] = ()) -> None:
    """Raise :class:`InputError` naming the first tensor with a non-finite value and where it is.

    A sum per tensor decides (NaN and inf propagate through sums; a sum that overflows only triggers
    the exact look-up, which then finds nothing); positions are only looked up when something is wrong.
    """
    sums = [v.sum() for v in named.values() if v.is_floating_point() and v.numel()]
    if not sums or bool(torch.isfinite(torch.stack(sums)).all()):
        return
    for what, value in named.items():
        bad = ~torch.isfinite(value)
        if bool(bad.any()):
            first = [int(i) for i in bad.nonzero()[0]]
            names = list(dims) + [f"dim {d}" for d in range(len(dims), len(first))]
            where = ", ".join(f"{n} index {i}" for n, i in zip(names, first))
            raise InputError(f"{what} has {int(bad.sum())} non-finite values (NaN or inf), first at {where}")


def _forcings(model: PhysicsModel, forcings: torch.Tensor | Mapping[str, torch.Tensor]) -> TensorDict:
    names = model.forcing_names
    if isinstance(forcings, torch.Tensor):
        if forcings.dim() != 3 or forcings.shape[-1] != len(names):
            raise ShapeError(
                f"{type(model).__name__} forcings must be [time, unit, {len(names)}] "
                f"with variables {list(names)}, got shape {tuple(forcings.shape)}"
            )
        forcing_map = dict(zip(names, forcings.unbind(-1)))
    else:
        missing = [n for n in names if n not in forcings]
        if missing:
            raise InputError(
                f"{type(model).__name__} is missing forcings {missing}; it needs {list(names)}, got {sorted(forcings)}"
            )
        forcing_map = {n: forcings[n] for n in names}
    shapes = {n: tuple(v.shape) for n, v in forcing_map.items()}
    if len(set(shapes.values())) > 1 or any(len(s) != 2 for s in shapes.values()):
        raise ShapeError(f"forcings must all be [time, unit] of one shape, got {shapes}")
    return forcing_map


def _attributes(model: PhysicsModel, attributes: Mapping[str, torch.Tensor] | None, n_units: int) -> TensorDict:
    attributes = dict(attributes or {})
    missing = [n for n in model.attribute_names if n not in attributes]
    if missing:
        raise InputError(f"{type(model).__name__} needs attributes {missing} ([unit] each)")
    out = {}
    for name in model.attribute_names:
        value = attributes[name]
        if tuple(value.shape) != (n_units,):
            raise ShapeError(f"attribute {name!r} must be [unit] = ({n_units},), got {tuple(value.shape)}")
        out[name] = value
    return out
