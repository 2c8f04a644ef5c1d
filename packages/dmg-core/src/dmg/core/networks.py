"""The network interface: what couplings and the config layer rely on in a network.

Any ``nn.Module`` registered under the ``dmg.nn`` entry-point group works when it has

* ``input_kind``: ``"sequence"`` — ``forward(x)`` with ``x`` ``[time, unit, features]``;
  ``"static"`` — ``forward(c)`` with ``c`` ``[unit, attributes]``; ``"sequence+static"`` —
  ``forward(x, c)``;
* ``output_kind``: ``"single"`` — one tensor (``[time, unit, outputs]`` for sequence inputs,
  ``[unit, outputs]`` for static ones); ``"split"`` — a pair ``(dynamic [time, unit, n_dyn],
  static [unit, n_static_out])``;
* ``Config``: a pydantic model (``extra="forbid"``) with every option, its default and description;
* ``from_config(config, *, n_inputs, n_outputs, n_static=0)``: sizes come from the run (the couplings
  that use the network and the data roles), never from the config. ``n_inputs`` is the number of
  time-varying features (of ``x``), ``n_static`` the number of static attributes (of ``c``).

:class:`Network` implements the convention for networks written on this base; the zoo in
``dmg-nn`` derives from it, and so may a downstream package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from dmg.core.components import Component, NetworkConfig
from dmg.core.errors import SpecError

InputKind = Literal["sequence", "static", "sequence+static"]
OutputKind = Literal["single", "split"]
NetworkOutputs = int | tuple[int, int]
"""Output channels of a network: ``C`` for a single output, ``(C_dynamic, C_static)`` for a split one."""


@dataclass(frozen=True)
class NetworkInputs:
    """Input widths a coupling needs of its network.

    Attributes
    ----------
    n_inputs
        Features of the time-varying (or pointwise) input.
    n_static
        Static attributes, for networks that also read them.
    """

    n_inputs: int
    n_static: int = 0


class Network(Component, nn.Module):
    """Base class of networks following the interface of this module.

    Subclasses set ``input_kind``, ``output_kind`` and ``Config`` and read their options from
    ``self.config``; sizes arrive as keywords (``n_inputs``, ``n_outputs``, ``n_static``).
    """

    input_kind: InputKind = "sequence"
    output_kind: ClassVar[OutputKind] = "single"
    Config: ClassVar[type[NetworkConfig]] = NetworkConfig

    @classmethod
    def from_config(
        cls,
        config: NetworkConfig | Mapping[str, Any] | None = None,
        *,
        n_inputs: int,
        n_outputs: NetworkOutputs,
        n_static: int = 0,
    ) -> Network:
        """Build the network from its ``Config`` and the sizes the run determines."""
        return cls(cls.validate_config(config), n_inputs=n_inputs, n_outputs=n_outputs, n_static=n_static)


def output_kind(network: Any) -> OutputKind:
    """``"single"`` or ``"split"`` for a network (instance or class); ``"single"`` when undeclared."""
    return getattr(network, "output_kind", "single")


def call_network(network: nn.Module, nn_inputs: torch.Tensor | None, static_inputs: torch.Tensor | None) -> Any:
    """Call ``network`` on the inputs its ``input_kind`` asks for (see the module docstring)."""
    kind = getattr(network, "input_kind", "sequence")
    if kind in ("sequence", "sequence+static") and nn_inputs is None:
        raise SpecError(f"{type(network).__name__} needs time-varying inputs but the batch has no nn_inputs")
    if kind in ("static", "sequence+static") and static_inputs is None:
        raise SpecError(f"{type(network).__name__} needs static inputs but the batch has no static_inputs")
    if kind == "sequence":
        return network(nn_inputs)
    if kind == "static":
        return network(static_inputs)
    if kind == "sequence+static":
        return network(nn_inputs, static_inputs)
    raise SpecError(f"{type(network).__name__}.input_kind is {kind!r}; use 'sequence', 'static' or 'sequence+static'")


def add_outputs(a: NetworkOutputs, b: NetworkOutputs) -> NetworkOutputs:
    """Channels of one network shared by two couplings: ``C`` sums, and so do split pairs part by part."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return (a[0] + b[0], a[1] + b[1])
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    raise SpecError(f"cannot share a network between couplings asking for {a} and {b} output channels")
