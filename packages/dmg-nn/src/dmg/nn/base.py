"""The helpers every network of the zoo shares, and its :class:`Network` base class.

:class:`Network` is :class:`dmg.core.networks.Network`, re-exported here; see
:mod:`dmg.core.networks` for the interface (``input_kind``, ``output_kind``, ``Config``,
``from_config(config, *, n_inputs, n_outputs, n_static=0)``).  Every network of the zoo follows
the component convention of :mod:`dmg.core.components`: its ``Config`` is the only source of its
options, and ``__init__(config=None, /, *, n_inputs, n_outputs, n_static=0, **options)`` takes
either a ``Config`` or the options as keywords, with the sizes as keyword-only context.  A
network that reads only ``c`` (``input_kind == "static"``) takes its input size from ``n_static``
when that is given, else from ``n_inputs``.

This module adds what the zoo shares: activations by name (:data:`Activation`), size checks
(:func:`positive_size`, :func:`single_output`, :func:`split_output`, :func:`static_input_size`),
input checks (:func:`check_sequence`, :func:`check_static`, :func:`check_features`,
:func:`check_sequence_static`) and :class:`PointwiseNetwork`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.core.errors import ConfigError, ShapeError, SpecError
from dmg.core.networks import InputKind, Network, OutputKind

__all__ = [
    "Activation",
    "InputKind",
    "Network",
    "OutputKind",
    "PointwiseNetwork",
    "activation_layer",
    "check_features",
    "check_sequence",
    "check_sequence_static",
    "check_static",
    "dropout_layer",
    "positive_size",
    "single_output",
    "split_output",
    "static_input_size",
]

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


class PointwiseNetwork(Network):
    """A network mapping the last dimension of ``[..., features]``: reads static attributes by
    default (``input_kind="static"``) or each time step of a sequence (``input_kind="sequence"``).

    Its ``Config`` has an ``input_kind`` option (``"static"`` or ``"sequence"``), which sets the
    instance's ``input_kind``.  ``__init__`` validates the options and the sizes; subclasses call
    it first and then build ``self.layers`` and ``self.output_activation``.

    Parameters
    ----------
    config
        A ``Config``, a mapping of options, or ``None`` (the options are then ``options``).
    n_inputs
        Input features (last dimension) when reading a sequence, or static attributes when
        ``n_static`` is not given.
    n_outputs
        Output features.
    n_static
        Static attributes: the input size when ``input_kind`` is ``"static"`` (0: use ``n_inputs``).
    **options
        Options of ``Config``.
    """

    input_kind: InputKind = "static"
    pointwise: ClassVar[bool] = True
    """Maps any ``[..., features]`` tensor row by row (so it also serves process slots)."""

    def __init__(
        self,
        config: NetworkConfig | Mapping[str, Any] | None = None,
        /,
        *,
        n_inputs: int,
        n_outputs: int,
        n_static: int = 0,
        **options: Any,
    ) -> None:
        super().__init__()
        self.config = self.validate_config(config, options)
        who = type(self).__name__
        self.input_kind = getattr(self.config, "input_kind", type(self).input_kind)
        if self.input_kind == "static":
            self.n_inputs = static_input_size(who, n_inputs, n_static)
        else:
            self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_outputs = single_output(who, n_outputs)

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
