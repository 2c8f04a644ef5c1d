"""The :class:`MLP`: a multilayer perceptron acting pointwise on the last dimension."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.nn.base import (
    Activation,
    PointwiseNetwork,
    activation_layer,
)


class MLPLayersConfig(NetworkConfig):
    """The layers of a multilayer perceptron (shared by :class:`MLP` and :class:`~dmg.nn.LSTMMLP`)."""

    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [256, 256],
        description="Width of each hidden layer, in order; [] gives a linear map.",
    )
    activation: Activation = Field("relu", description="Activation after each hidden layer.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability after each hidden layer.")
    output_activation: Activation = Field("identity", description="Activation applied to the outputs.")


class MLPConfig(MLPLayersConfig):
    """Options of :class:`MLP`."""

    input_kind: Literal["static", "sequence"] = Field(
        "static",
        description="What the network reads when it supplies parameters: 'static' attributes [unit, attributes] "
        "or the 'sequence' [time, unit, features], mapped step by step.",
    )


def mlp_layers(
    n_inputs: int,
    n_outputs: int,
    hidden_sizes: Sequence[int],
    activation_name: str,
    dropout: float,
) -> nn.Sequential:
    """``Linear -> activation -> dropout`` per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), activation_layer(activation_name)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class MLP(PointwiseNetwork):
    """Multilayer perceptron mapping ``[..., n_inputs]`` to ``[..., n_outputs]``.

    Being pointwise, it maps static attributes ``[unit, attributes]`` (the default
    ``input_kind``), each step of a sequence ``[time, unit, features]``, or the
    ``[unit, nmul, inputs]`` values of a process slot alike.

    Parameters
    ----------
    config
        An :class:`MLPConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Input features (last dimension) when reading a sequence, or static attributes when
        ``n_static`` is not given.
    n_outputs
        Output features.
    n_static
        Static attributes: the input size when ``input_kind`` is ``"static"`` (0: use ``n_inputs``).
    **options
        Options of :class:`MLPConfig` (``hidden_sizes``, ``activation``, ``dropout``,
        ``output_activation``, ``input_kind``).

    Examples
    --------
    >>> net = MLP(n_inputs=4, n_outputs=2, hidden_sizes=[8])
    >>> net(torch.zeros(10, 4)).shape
    torch.Size([10, 2])
    """

    input_kind = "static"
    output_kind = "single"
    pointwise = True
    Config = MLPConfig
    config: MLPConfig

    def __init__(
        self,
        config: MLPConfig | Mapping[str, Any] | None = None,
        /,
        *,
        n_inputs: int,
        n_outputs: int,
        n_static: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(config, n_inputs=n_inputs, n_outputs=n_outputs, n_static=n_static, **options)
        cfg = self.config
        self.layers = mlp_layers(self.n_inputs, self.n_outputs, cfg.hidden_sizes, cfg.activation, cfg.dropout)
        self.output_activation = activation_layer(cfg.output_activation)
