""":class:`Dense`: the one network dmg-core ships, so a project that installs only dmg-core can train.

A small multilayer perceptron acting pointwise on the last dimension, registered as ``dense`` under
the ``dmg.nn`` entry-point group. The network zoo (LSTM, MLP, EA-LSTM, Transformer, TCN, KAN) is
in dmg-nn (``pip install dmg-nn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.core.errors import ShapeError, SpecError
from dmg.core.networks import InputKind, Network

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class DenseConfig(NetworkConfig):
    """Options of :class:`Dense`."""

    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [32], description="Width of each hidden layer, in order; [] gives a linear map."
    )
    activation: Literal["tanh", "relu", "sigmoid"] = Field("tanh", description="Activation after each hidden layer.")
    input_kind: Literal["static", "sequence"] = Field(
        "static",
        description="What the network reads: 'static' attributes [unit, attributes] or the 'sequence' "
        "[time, unit, features], mapped step by step.",
    )


class Dense(Network):
    """Multilayer perceptron mapping ``[..., n_inputs]`` to ``[..., n_outputs]``.

    Parameters
    ----------
    config
        A :class:`DenseConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Time-varying input features (the input size when ``input_kind`` is ``"sequence"``).
    n_outputs
        Output features.
    n_static
        Static attributes (the input size when ``input_kind`` is ``"static"``; 0: use ``n_inputs``).
    **options
        Options of :class:`DenseConfig`.

    Examples
    --------
    >>> net = Dense(n_inputs=4, n_outputs=2, hidden_sizes=[8])
    >>> net(torch.zeros(10, 4)).shape
    torch.Size([10, 2])
    """

    input_kind: InputKind = "static"
    pointwise = True
    Config = DenseConfig
    config: DenseConfig

    def __init__(
        self,
        config: DenseConfig | Mapping[str, Any] | None = None,
        /,
        *,
        n_inputs: int,
        n_outputs: int,
        n_static: int = 0,
        **options: Any,
    ) -> None:
        super().__init__()
        self.config = self.validate_config(config, options)
        self.input_kind = self.config.input_kind
        size = n_static if self.input_kind == "static" and n_static else n_inputs
        if not isinstance(n_outputs, int) or size < 1 or n_outputs < 1:
            raise SpecError(f"Dense needs positive input and output sizes, got {size} and {n_outputs!r}")
        layers: list[nn.Module] = []
        width = size
        for hidden in self.config.hidden_sizes:
            layers += [nn.Linear(width, hidden), _ACTIVATIONS[self.config.activation]()]
            width = hidden
        layers.append(nn.Linear(width, n_outputs))
        self.layers = nn.Sequential(*layers)
        self.n_inputs, self.n_outputs = size, n_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[..., n_inputs]`` to ``[..., n_outputs]``."""
        if x.shape[-1] != self.n_inputs:
            raise ShapeError(f"Dense expects {self.n_inputs} input features, got shape {tuple(x.shape)}")
        return self.layers(x)
