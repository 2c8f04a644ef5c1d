"""Physical parameters and the mapping from raw network output to physical values.

A :class:`ParameterSpec` is the single description of what a physics model needs from a
network: which parameters, their bounds and units, which are time-varying ("dynamic"),
how many parallel components (``nmul``) each unit runs, and how raw network channels
are laid out.  Every model and every coupling uses this one implementation.

Shapes of physical parameter values (the ``params`` mapping that physics models take):

=====================  ===========================  =========================
kind                   static                       dynamic
=====================  ===========================  =========================
per component          ``[unit, nmul]``             ``[time, unit, nmul]``
shared by components   ``[unit]``                   ``[time, unit]``
=====================  ===========================  =========================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from dmg.core.errors import ShapeError, SpecError, is_dotted_name

Transform = Literal["sigmoid", "identity", "clamp"]
"""How raw values become unit-interval values ``u``: ``sigmoid(raw)``, ``raw`` as given
(already in ``[0, 1]``), or ``clamp(raw, 0, 1)``."""

Layout = Literal["parameter_major", "component_major"]
"""Channel order of per-component parameters in a raw tensor.

``parameter_major`` is the published layout: ``channel = i_param * nmul + i_component``.
``component_major`` is ``channel = i_component * n_params + i_param``.  Shared parameters
always follow the per-component block, one channel each, in declaration order."""


@dataclass(frozen=True)
class Parameter:
    """One physical parameter.

    Parameters
    ----------
    name
        Identifier used in configs, params mappings and outputs.
    low, high
        Physical bounds; ``u`` in ``[0, 1]`` maps to ``low + u * (high - low)``.
    unit
        Physical unit, e.g. ``"mm"`` or ``"1/day"``; ``""`` for dimensionless.
    description
        One line for documentation tables.
    default
        Physical value used when no network supplies the parameter (``None``: must be supplied).
    per_component
        ``True`` if each of the ``nmul`` parallel components has its own value, ``False``
        if one value per unit is shared by all components (e.g. routing parameters).
    """

    name: str
    low: float
    high: float
    unit: str = ""
    description: str = ""
    default: float | None = None
    per_component: bool = True

    def __post_init__(self) -> None:
        if not is_dotted_name(self.name):
            raise SpecError(f"parameter name {self.name!r} is not a valid identifier")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high < self.low:
            raise SpecError(
                f"parameter {self.name!r}: bounds must be finite with low <= high, got low={self.low}, high={self.high}"
            )
        if self.default is not None and not (self.low <= self.default <= self.high):
            raise SpecError(
                f"parameter {self.name!r}: default {self.default} lies outside "
                f"[{self.low}, {self.high}] {self.unit}".rstrip()
            )

    def scale(self, u: torch.Tensor) -> torch.Tensor:
        """Map unit-interval values to physical values, ``low + u * (high - low)``."""
        return self.low + u * (self.high - self.low)

    def unscale(self, value: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`scale` (``u`` from a physical value)."""
        width = self.high - self.low
        return (value - self.low) / width if width > 0 else torch.zeros_like(value)


@dataclass(frozen=True)
class ParameterSpec:
    """Ordered, immutable set of parameters with their static/dynamic split and ``nmul``.

    Parameters
    ----------
    parameters
        The parameters in declaration order (this order defines raw channel order).
    dynamic
        Names of time-varying parameters; every other parameter is static.
    nmul
        Number of parallel components each unit runs.
    layout
        Channel order of per-component parameters in raw tensors (see :data:`Layout`).
    """

    parameters: tuple[Parameter, ...]
    dynamic: frozenset[str] = field(default_factory=frozenset)
    nmul: int = 1
    layout: Layout = "parameter_major"

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "dynamic", frozenset(self.dynamic))
        names = [p.name for p in self.parameters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"duplicate parameter names: {duplicates}")
        unknown = sorted(self.dynamic - set(names))
        if unknown:
            raise SpecError(f"dynamic parameters {unknown} are not parameters of this model; known: {names}")
        if int(self.nmul) != self.nmul or self.nmul < 1:
            raise SpecError(f"nmul must be a positive integer, got {self.nmul!r}")
        if self.layout not in ("parameter_major", "component_major"):
            raise SpecError(f"unknown layout {self.layout!r}; use 'parameter_major' or 'component_major'")

    # ------------------------------------------------------------------ lookup
    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"unknown parameter {name!r}; known: {self.names}")

    @property
    def names(self) -> tuple[str, ...]:
        """All parameter names in declaration order."""
        return tuple(p.name for p in self.parameters)

    def is_dynamic(self, name: str) -> bool:
        """Whether parameter ``name`` is time-varying."""
        return name in self.dynamic

    def is_series(self, name: str, value: torch.Tensor) -> bool:
        """Whether ``value`` of parameter ``name`` is a time series (a dynamic one given with a time axis)."""
        return name in self.dynamic and value.dim() == (3 if self[name].per_component else 2)

    @property
    def static_parameters(self) -> tuple[Parameter, ...]:
        """Static parameters, per-component ones first, then shared, each in declaration order."""
        return self._ordered(p for p in self.parameters if p.name not in self.dynamic)

    @property
    def dynamic_parameters(self) -> tuple[Parameter, ...]:
        """Dynamic parameters, per-component ones first, then shared, each in declaration order."""
        return self._ordered(p for p in self.parameters if p.name in self.dynamic)

    @staticmethod
    def _ordered(params: Iterable[Parameter]) -> tuple[Parameter, ...]:
        params = tuple(params)
        return tuple(p for p in params if p.per_component) + tuple(p for p in params if not p.per_component)

    # ------------------------------------------------------------- derivation
    def subset(self, names: Iterable[str]) -> ParameterSpec:
        """A copy with only ``names`` (in this spec's order), e.g. the ones a network learns."""
        wanted = set(names)
        missing = sorted(wanted - set(self.names))
        if missing:
            raise SpecError(f"unknown parameters {missing}; known: {list(self.names)}")
        kept = tuple(p for p in self.parameters if p.name in wanted)
        return replace(self, parameters=kept, dynamic=self.dynamic & wanted)

    def prefixed(self, prefix: str) -> ParameterSpec:
        """A copy whose names are ``f"{prefix}.{name}"`` (used by composites)."""
        return replace(
            self,
            parameters=tuple(replace(p, name=f"{prefix}.{p.name}") for p in self.parameters),
            dynamic=frozenset(f"{prefix}.{n}" for n in self.dynamic),
        )

    @classmethod
    def concat(cls, specs: Sequence[ParameterSpec]) -> ParameterSpec:
        """Join specs in order; per-component parts must agree on ``nmul`` and ``layout``."""
        with_components = [s for s in specs if any(p.per_component for p in s)]
        nmuls = {s.nmul for s in with_components}
        if len(nmuls) > 1:
            raise SpecError(f"cannot join parameter specs with different nmul: {sorted(nmuls)}")
        layouts = {s.layout for s in with_components}
        if len(layouts) > 1:
            raise SpecError(f"cannot join parameter specs with different layouts: {sorted(layouts)}")
        return cls(
            parameters=tuple(p for s in specs for p in s.parameters),
            dynamic=frozenset().union(*(s.dynamic for s in specs)),
            nmul=nmuls.pop() if nmuls else 1,
            layout=layouts.pop() if layouts else "parameter_major",
        )

    # --------------------------------------------------------------- channels
    def n_channels(self, params: Sequence[Parameter] | None = None) -> int:
        """Raw channels needed for ``params`` (default: all): ``nmul`` per per-component one, 1 per shared."""
        params = self.parameters if params is None else params
        return sum(self.nmul if p.per_component else 1 for p in params)

    @property
    def n_static_channels(self) -> int:
        """Raw channels of the static part in the split layout."""
        return self.n_channels(self.static_parameters)

    @property
    def n_dynamic_channels(self) -> int:
        """Raw channels of the dynamic part in the split layout."""
        return self.n_channels(self.dynamic_parameters)

    def channel_names(self, params: Sequence[Parameter] | None = None) -> tuple[str, ...]:
        """Names of raw channels, e.g. ``"BETA[2]"`` for component 2, in layout order."""
        params = self._ordered(self.parameters if params is None else params)
        per = [p for p in params if p.per_component]
        shared = [p.name for p in params if not p.per_component]
        if self.layout == "parameter_major":
            comp = [f"{p.name}[{k}]" for p in per for k in range(self.nmul)]
        else:
            comp = [f"{p.name}[{k}]" for k in range(self.nmul) for p in per]
        return tuple(comp) + tuple(shared)

    # ------------------------------------------------------------ conversion
    def unpack(
        self,
        raw: torch.Tensor,
        params: Sequence[Parameter] | None = None,
        *,
        transform: Transform = "sigmoid",
        what: str = "raw parameters",
    ) -> dict[str, torch.Tensor]:
        """Split raw channels ``[..., C]`` into physical values, one entry per parameter.

        Per-component parameters get a trailing ``nmul`` dimension; shared ones do not.

        Parameters
        ----------
        raw
            Tensor whose last dimension holds the channels of ``params`` in layout order
            (per-component block first, then shared channels).
        params
            Which parameters ``raw`` holds (default: all, in :meth:`_ordered` order).
        transform
            How raw values become ``u`` in ``[0, 1]`` before scaling.
        what
            Name of the tensor in error messages.
        """
        params = self._ordered(self.parameters if params is None else params)
        self._check_channels(raw, params, what)
        return _physical(raw, self._reads(params, params, None), transform)

    def _check_channels(self, raw: torch.Tensor, params: Sequence[Parameter], what: str) -> None:
        expected = self.n_channels(params)
        if raw.shape[-1] != expected:
            raise ShapeError(
                f"{what} have {raw.shape[-1]} channels in the last dimension, expected {expected} "
                f"({len(params)} parameters, nmul={self.nmul}): {list(self.channel_names(params))}"
            )

    def from_raw(
        self,
        raw: torch.Tensor,
        *,
        transform: Transform = "sigmoid",
        static_step: int = -1,
        hold_dynamic: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Physical parameters from one raw series holding every channel, ``[time, unit, C]``.

        ``C`` covers all parameters in declaration order and layout (the published layout:
        per-component channels parameter-major, then shared channels).  Static parameters
        take the values at time index ``static_step``; dynamic ones the whole series.

        Parameters
        ----------
        raw
            Raw network output, ``[time, unit, n_channels]``.
        transform
            See :data:`Transform`.
        static_step
            Time index whose values static parameters take (default: the last step).
        hold_dynamic
            If ``True``, dynamic parameters are also held at ``static_step``, broadcast over time.
        """
        if raw.dim() != 3:
            raise ShapeError(f"raw parameters must be [time, unit, channels], got shape {tuple(raw.shape)}")
        # Transform only what is used: one step for static values, the dynamic channels' series; the
        # backward pass writes each used channel's gradient once into one tensor shaped like ``raw``.
        self._check_channels(raw, self._ordered(self.parameters), "raw parameters")
        n_time = raw.shape[0]
        everything = self._ordered(self.parameters)
        if hold_dynamic or not self.dynamic:
            at_step = _physical(raw, self._reads(everything, everything, static_step), transform)
            return {
                name: value.expand(n_time, *value.shape) if name in self.dynamic else value
                for name, value in at_step.items()
            }
        reads = self._reads(self.static_parameters, everything, static_step)
        reads += self._reads(self.dynamic_parameters, everything, None)
        return _physical(raw, reads, transform)

    def _reads(self, params: Sequence[Parameter], held: Sequence[Parameter], step: int | None) -> list[_Read]:
        """Where each of ``params`` sits in a raw tensor holding ``held`` (ordered), read at ``step``."""
        per = [p.name for p in held if p.per_component]
        shared = [p.name for p in held if not p.per_component]
        n_per = len(per)
        reads = []
        for p in self._ordered(params):
            if not p.per_component:
                channels: slice | int = n_per * self.nmul + shared.index(p.name)
            elif self.layout == "parameter_major":
                i = per.index(p.name)
                channels = slice(i * self.nmul, (i + 1) * self.nmul)
            else:
                channels = slice(per.index(p.name), n_per * self.nmul, n_per)
            reads.append(_Read(p, channels, step))
        return reads

    def channel_index(self, params: Sequence[Parameter]) -> list[int]:
        """Positions, in a raw tensor holding every parameter, of the channels of ``params``,
        in the order :meth:`unpack` reads them for those parameters."""
        everything = self._ordered(self.parameters)
        per_all = [p.name for p in everything if p.per_component]
        shared_all = [p.name for p in everything if not p.per_component]
        chosen = self._ordered(params)
        per = [per_all.index(p.name) for p in chosen if p.per_component]
        shared = [len(per_all) * self.nmul + shared_all.index(p.name) for p in chosen if not p.per_component]
        if self.layout == "parameter_major":
            block = [i * self.nmul + k for i in per for k in range(self.nmul)]
        else:
            block = [k * len(per_all) + i for k in range(self.nmul) for i in per]
        return block + shared

    def from_split(
        self,
        static_raw: torch.Tensor | None,
        dynamic_raw: torch.Tensor | None,
        *,
        transform: Transform = "sigmoid",
        dynamic_transform: Transform | None = None,
    ) -> dict[str, torch.Tensor]:
        """Physical parameters from separate static ``[unit, Cs]`` and dynamic ``[time, unit, Cd]`` raw tensors.

        Static channels hold :attr:`static_parameters`, dynamic channels
        :attr:`dynamic_parameters`, each in the spec's layout.
        """
        out: dict[str, torch.Tensor] = {}
        if self.static_parameters:
            if static_raw is None or static_raw.dim() != 2:
                raise ShapeError(
                    "static raw parameters must be [unit, channels], got "
                    f"{None if static_raw is None else tuple(static_raw.shape)}"
                )
            out.update(
                self.unpack(static_raw, self.static_parameters, transform=transform, what="static raw parameters")
            )
        if self.dynamic_parameters:
            if dynamic_raw is None or dynamic_raw.dim() != 3:
                raise ShapeError(
                    "dynamic raw parameters must be [time, unit, channels], got "
                    f"{None if dynamic_raw is None else tuple(dynamic_raw.shape)}"
                )
            out.update(
                self.unpack(
                    dynamic_raw,
                    self.dynamic_parameters,
                    transform=dynamic_transform or transform,
                    what="dynamic raw parameters",
                )
            )
        return out

    def defaults(
        self, n_units: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Static physical values from each parameter's ``default`` (those that have one)."""
        out = {}
        for p in self.parameters:
            if p.default is None:
                continue
            shape = (n_units, self.nmul) if p.per_component else (n_units,)
            out[p.name] = torch.full(shape, p.default, dtype=dtype, device=device)
        return out

    def validate(self, params: Mapping[str, torch.Tensor], n_time: int, n_units: int) -> None:
        """Check names and shapes of a physical ``params`` mapping; raise a clear error otherwise."""
        unknown = sorted(set(params) - set(self.names))
        if unknown:
            raise SpecError(f"unknown parameters {unknown}; this model takes {list(self.names)}")
        missing = [n for n in self.names if n not in params]
        if missing:
            raise SpecError(f"missing parameters {missing}: supply them from a network or give them defaults")
        for p in self.parameters:
            value = params[p.name]
            tail = (n_units, self.nmul) if p.per_component else (n_units,)
            allowed = [tail, (n_time, *tail)] if p.name in self.dynamic else [tail]
            if tuple(value.shape) not in allowed:
                kind = "dynamic" if p.name in self.dynamic else "static"
                raise ShapeError(
                    f"parameter {p.name!r} ({kind}) has shape {tuple(value.shape)}, expected "
                    + " or ".join(str(a) for a in allowed)
                )


@dataclass(frozen=True)
class _Read:
    """One parameter read from a raw tensor: its channels (a slice, or one channel for a shared
    parameter) and the time step read (``None``: every step)."""

    parameter: Parameter
    channels: slice | int
    step: int | None


def _physical(raw: torch.Tensor, reads: list[_Read], transform: Transform) -> dict[str, torch.Tensor]:
    """Physical values of every parameter of ``reads`` from ``raw`` (see :class:`_RawToPhysical`)."""
    if transform not in ("sigmoid", "identity", "clamp"):
        raise SpecError(f"unknown transform {transform!r}; use 'sigmoid', 'identity' or 'clamp'")
    values = _RawToPhysical.apply(raw, tuple(reads), transform)
    return {read.parameter.name: value for read, value in zip(reads, values)}


def _view(x: torch.Tensor, read: _Read) -> torch.Tensor:
    """The channels (and step) of ``read`` in ``x`` (a raw tensor or its gradient), as a view."""
    if read.step is not None:
        x = x[read.step]
    return x[..., read.channels]


class _RawToPhysical(torch.autograd.Function):
    """Raw channels to physical parameter values, with a lean backward.

    Forward reads each parameter's channels as a view and transforms only what is read (one step
    for static values). Backward allocates one zero tensor shaped like ``raw`` and writes each read
    channel's gradient into it once, instead of one full-size buffer per slicing operation.
    """

    @staticmethod
    def forward(ctx, raw, reads, transform):
        kept, outputs = [], []
        grad_needed = raw.requires_grad
        for read in reads:
            x = _view(raw, read).contiguous()  # a contiguous copy transforms many times faster than a strided view
            u = _to_unit_interval(x, transform)
            outputs.append(read.parameter.scale(u))
            if grad_needed:  # d(physical)/d(raw), so that backward is one product per parameter
                width = read.parameter.high - read.parameter.low
                if transform == "sigmoid":
                    kept.append((u - u * u).mul_(width))
                elif transform == "clamp":
                    kept.append(((x >= 0.0) & (x <= 1.0)).to(x.dtype).mul_(width))
                else:
                    kept.append(None)
            else:
                kept.append(None)
        ctx.reads, ctx.transform, ctx.kept = reads, transform, kept
        ctx.raw_shape, ctx.raw_dtype, ctx.raw_device = raw.shape, raw.dtype, raw.device
        ctx.set_materialize_grads(False)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        grad_raw = torch.zeros(ctx.raw_shape, dtype=ctx.raw_dtype, device=ctx.raw_device)
        for read, derivative, grad in zip(ctx.reads, ctx.kept, grads):
            if grad is None:
                continue
            target = _view(grad_raw, read)
            if derivative is None:  # identity: d(physical)/d(raw) is the width of the range
                torch.mul(grad, read.parameter.high - read.parameter.low, out=target)
            else:
                torch.mul(grad, derivative, out=target)
        return grad_raw, None, None


def _to_unit_interval(raw: torch.Tensor, transform: Transform) -> torch.Tensor:
    if transform == "sigmoid":
        return torch.sigmoid(raw)
    if transform == "identity":
        return raw
    if transform == "clamp":
        return raw.clamp(0.0, 1.0)
    raise SpecError(f"unknown transform {transform!r}; use 'sigmoid', 'identity' or 'clamp'")
