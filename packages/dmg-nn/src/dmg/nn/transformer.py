"""The causal :class:`Transformer` encoder: each step attends only to itself and earlier steps."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.nn.base import Activation, Network, activation_layer, check_sequence, positive_size, single_output


class TransformerConfig(NetworkConfig):
    """Options of :class:`Transformer`."""

    d_model: int = Field(64, ge=1, description="Width of the token embeddings; a multiple of n_heads.")
    n_heads: int = Field(4, ge=1, description="Attention heads per layer.")
    num_layers: int = Field(2, ge=1, description="Number of encoder layers.")
    dim_feedforward: int = Field(128, ge=1, description="Width of the feed-forward block in each layer.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout probability inside the encoder layers.")
    activation: Literal["relu", "gelu"] = Field("gelu", description="Activation of the feed-forward blocks.")
    context_window: int | None = Field(
        None,
        ge=1,
        description="Steps each position attends to (itself and the window-1 before it) per layer; "
        "null: every earlier step.",
    )
    output_activation: Activation = Field("identity", description="Activation applied to the outputs.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        return self


def sinusoidal_encoding(n_time: int, d_model: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Sinusoidal position encoding ``[n_time, d_model]``: sines on even channels, cosines on odd ones.

    Channel pair ``k`` oscillates with period ``2π · 10000^(2k / d_model)`` steps.
    """
    position = torch.arange(n_time, dtype=torch.float64, device=device).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64, device=device) * (-math.log(10000.0) / d_model)
    )
    encoding = torch.zeros(n_time, d_model, dtype=torch.float64, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return encoding.to(dtype)


def causal_mask(n_time: int, window: int | None = None, *, device: torch.device | None = None) -> torch.Tensor:
    """Boolean ``[n_time, n_time]`` attention mask, ``True`` where query ``t`` may *not* see key ``s``.

    Keys after the query are hidden; with ``window``, so are keys ``window`` or more steps before it.
    """
    t = torch.arange(n_time, device=device)
    lag = t.unsqueeze(1) - t.unsqueeze(0)  # query - key
    hidden = lag < 0
    if window is not None:
        hidden = hidden | (lag >= window)
    return hidden


class Transformer(Network):
    """Causal Transformer encoder on ``[time, unit, features]`` sequences.

    ``x -> Linear -> + sinusoidal position -> pre-norm encoder layers with a causal mask ->
    LayerNorm -> Linear -> activation``.  The output at step ``t`` depends only on inputs
    at steps ``<= t`` (within ``num_layers * (context_window - 1)`` steps back when a window is set).

    Parameters
    ----------
    n_inputs
        Features per step.
    n_outputs
        Outputs per step.
    d_model, n_heads, num_layers, dim_feedforward, dropout, activation, context_window, output_activation
        See :class:`TransformerConfig`.
    """

    input_kind = "sequence"
    output_kind = "single"
    Config = TransformerConfig

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        activation: str = "gelu",
        context_window: int | None = None,
        output_activation: str = "identity",
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_outputs = single_output(who, n_outputs)
        self.d_model = d_model
        self.context_window = context_window
        self.embed = nn.Linear(n_inputs, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward, dropout, activation=activation, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, self.n_outputs)
        self.output_activation = activation_layer(output_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` to ``[time, unit, n_outputs]``."""
        check_sequence(type(self).__name__, x, self.n_inputs)
        n_time = x.shape[0]
        h = self.embed(x) + sinusoidal_encoding(n_time, self.d_model, dtype=x.dtype, device=x.device).unsqueeze(1)
        mask = causal_mask(n_time, self.context_window, device=x.device)
        h = self.encoder(h, mask=mask)
        return self.output_activation(self.head(h))

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, context_window={self.context_window}"
