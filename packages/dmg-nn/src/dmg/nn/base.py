"""The :class:`Network` base class and the helpers every network of the zoo shares.

The interface (what :func:`dmg.core.couplings.call_network` relies on):

* ``input_kind``: ``"sequence"`` — ``forward(x)`` with ``x`` ``[time, unit, features]``;
  ``"static"`` — ``forward(c)`` with ``c`` ``[unit, attributes]``; ``"sequence+static"`` —
  ``forward(x, c)``.
* ``output_kind``: ``"single"`` — one tensor (``[time, unit, outputs]`` for sequence inputs,
  ``[unit, outputs]`` for static ones); ``"split"`` — a pair ``(dynamic [time, unit, n_dyn],
  static [unit, n_static_out])``.
* ``Config``: a pydantic model (``extra="forbid"``) with every option, its default and description.
* ``from_config(config, *, n_inputs, n_outputs, n_static=0)``: input and output sizes come from
  the run, never from the config.  ``n_inputs`` is the number of time-varying features (of ``x``),
  ``n_static`` the number of static attributes (of ``c``).  A network that reads only ``c``
  (``input_kind == "static"``) takes its input size from ``n_static`` when that is given,
  else from ``n_inputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from pydantic import ValidationError
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.core.errors import ConfigError, ShapeError, SpecError

InputKind = Literal["sequence", "static", "sequence+static"]
OutputKind = Literal["single", "split"]

Activation = Literal["identity", "relu", "tanh", "sigmoid", "gelu", "silu", "elu", "leaky_relu", "softplus"]
"""Names of activation functions a config may choose."""

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
}


def activation_layer(name: str) -> nn.Module:
    """A new activation module called ``name`` (see :data:`Activation`)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}") from None


def dropout_layer(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or ``nn.Identity`` when ``p == 0`` so that no-dropout costs nothing."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Network(nn.Module):
    """Base class of the zoo's networks; see the module docstring for the interface.

    Subclasses set ``input_kind``, ``output_kind``, ``Config`` and implement ``from_config``.
    ``pointwise`` networks map the last dimension of any ``[..., features]`` tensor (so they also
    serve process slots and output corrections).
    """

    input_kind: InputKind = "sequence"
    output_kind: ClassVar[OutputKind] = "single"
    pointwise: ClassVar[bool] = False
    Config: ClassVar[type[NetworkConfig]] = NetworkConfig

    @classmethod
    def from_config(
        cls,
        config: NetworkConfig | Mapping[str, Any],
        *,
        n_inputs: int,
        n_outputs: int | tuple[int, int],
        n_static: int = 0,
    ) -> Network:
        """Build the network from its ``Config`` and the sizes the run determines.

        The default suits sequence networks, ``cls(n_inputs, n_outputs, **options)``; networks
        that also read static attributes override it.
        """
        return cls(n_inputs, n_outputs, **cls.validate_config(config).model_dump())

    @classmethod
    def validate_config(cls, config: NetworkConfig | Mapping[str, Any] | None) -> Any:
        """``config`` as an instance of ``cls.Config``; a mapping is validated, naming keys at fault."""
        if config is None:
            return cls.Config()
        if isinstance(config, cls.Config):
            return config
        if isinstance(config, NetworkConfig):
            raise ConfigError(f"{cls.__name__} takes a {cls.Config.__name__}, got a {type(config).__name__}")
        try:
            return cls.Config.model_validate(dict(config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid {cls.__name__} config: {problems}") from exc


class PointwiseNetwork(Network):
    """A network mapping the last dimension of ``[..., features]``: reads static attributes by
    default (``input_kind="static"``) or each time step of a sequence (``input_kind="sequence"``).

    Subclasses build ``self.layers`` and ``self.output_activation`` in ``__init__``.
    """

    input_kind: InputKind = "static"
    pointwise: ClassVar[bool] = True

    @classmethod
    def from_config(
        cls,
        config: NetworkConfig | Mapping[str, Any] | None,
        *,
        n_inputs: int,
        n_outputs: int | tuple[int, int],
        n_static: int = 0,
    ) -> Network:
        """Build from ``Config``; with ``input_kind='static'`` the input size is ``n_static`` if given."""
        cfg = cls.validate_config(config)
        size = static_input_size(cls.__name__, n_inputs, n_static) if cfg.input_kind == "static" else n_inputs
        return cls(size, n_outputs, **cfg.model_dump())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[..., n_inputs]`` to ``[..., n_outputs]``."""
        check_features(type(self).__name__, x, self.n_inputs)
        return self.output_activation(self.layers(x))

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, input_kind={self.input_kind!r}"


# ------------------------------------------------------------------ sizes
def positive_size(who: str, name: str, value: object) -> int:
    """``value`` as a positive int, or a :class:`SpecError` naming ``who`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{who}: {name} must be a positive integer, got {value!r}")
    return value


def single_output(who: str, n_outputs: object) -> int:
    """The output size of a ``single``-output network; a pair is an error."""
    if isinstance(n_outputs, tuple | list):
        raise SpecError(
            f"{who} returns one output tensor, so n_outputs must be an int, got {tuple(n_outputs)}; "
            "use a network with output_kind 'split' (e.g. LSTMMLP) for (dynamic, static) outputs"
        )
    return positive_size(who, "n_outputs", n_outputs)


def split_output(who: str, n_outputs: object) -> tuple[int, int]:
    """The ``(n_dynamic, n_static)`` output sizes of a ``split``-output network."""
    if not isinstance(n_outputs, tuple | list) or len(n_outputs) != 2:
        raise SpecError(
            f"{who} returns (dynamic, static) outputs, so n_outputs must be a pair (n_dynamic, n_static), "
            f"got {n_outputs!r}"
        )
    n_dyn, n_sta = n_outputs
    for name, value in (("n_outputs[0] (dynamic)", n_dyn), ("n_outputs[1] (static)", n_sta)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(f"{who}: {name} must be a non-negative integer, got {value!r}")
    if n_dyn == 0 and n_sta == 0:
        raise SpecError(f"{who}: n_outputs is (0, 0); at least one part must have outputs")
    return n_dyn, n_sta


def static_input_size(who: str, n_inputs: int, n_static: int) -> int:
    """Input size of a network reading only static attributes: ``n_static`` if given, else ``n_inputs``."""
    return positive_size(who, "n_static" if n_static else "n_inputs", n_static or n_inputs)


# ----------------------------------------------------------------- inputs
def check_sequence(who: str, x: torch.Tensor, n_features: int, name: str = "x") -> None:
    """Raise :class:`ShapeError` unless ``x`` is ``[time, unit, n_features]`` with ``time >= 1``."""
    if x.dim() != 3 or x.shape[-1] != n_features or x.shape[0] < 1:
        raise ShapeError(f"{who} expects {name} of shape [time, unit, {n_features}] (time-major), got {tuple(x.shape)}")


def check_static(who: str, c: torch.Tensor, n_attributes: int, name: str = "c") -> None:
    """Raise :class:`ShapeError` unless ``c`` is ``[unit, n_attributes]``."""
    if c.dim() != 2 or c.shape[-1] != n_attributes:
        raise ShapeError(f"{who} expects {name} of shape [unit, {n_attributes}], got {tuple(c.shape)}")


def check_features(who: str, x: torch.Tensor, n_features: int) -> None:
    """Raise :class:`ShapeError` unless the last dimension of ``x`` has ``n_features`` entries."""
    if x.dim() < 1 or x.shape[-1] != n_features:
        raise ShapeError(f"{who} expects inputs of shape [..., {n_features}], got {tuple(x.shape)}")


def check_sequence_static(who: str, x: torch.Tensor, c: torch.Tensor, n_features: int, n_attributes: int) -> None:
    """Check ``x`` ``[time, unit, n_features]`` and ``c`` ``[unit, n_attributes]`` with the same units."""
    check_sequence(who, x, n_features)
    check_static(who, c, n_attributes)
    if x.shape[1] != c.shape[0]:
        raise ShapeError(f"{who}: x {tuple(x.shape)} has {x.shape[1]} units but c {tuple(c.shape)} has {c.shape[0]}")
