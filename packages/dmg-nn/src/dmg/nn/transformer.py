"""The causal :class:`Transformer` encoder: each step attends only to itself and earlier steps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

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
    config
        A :class:`TransformerConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Features per step.
    n_outputs
        Outputs per step.
    n_static
        Unused (the Transformer reads no static attributes); accepted as every network's sizing context.
    **options
        Options of :class:`TransformerConfig` (``d_model``, ``n_heads``, ``num_layers``,
        ``dim_feedforward``, ``dropout``, ``activation``, ``context_window``, ``output_activation``).

    Examples
    --------
    >>> net = Transformer(n_inputs=5, n_outputs=3, d_model=16, n_heads=2)
    >>> net(torch.zeros(30, 4, 5)).shape
    torch.Size([30, 4, 3])
    """

    input_kind = "sequence"
    output_kind = "single"
    Config = TransformerConfig
    config: TransformerConfig

    def __init__(
        self,
        config: TransformerConfig | Mapping[str, Any] | None = None,
        /,
        *,
        n_inputs: int,
        n_outputs: int,
        n_static: int = 0,
        **options: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = self.validate_config(config, options)
        who = type(self).__name__
        self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_outputs = single_output(who, n_outputs)
        self.embed = nn.Linear(self.n_inputs, cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.n_heads, cfg.dim_feedforward, cfg.dropout, activation=cfg.activation, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, cfg.num_layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(cfg.d_model, self.n_outputs)
        self.output_activation = activation_layer(cfg.output_activation)

    @property
    def d_model(self) -> int:
        """Width of the token embeddings (``config.d_model``)."""
        return self.config.d_model

    @property
    def context_window(self) -> int | None:
        """Steps each position attends to per layer, or ``None`` for every earlier step (``config.context_window``)."""
        return self.config.context_window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` to ``[time, unit, n_outputs]``."""
        check_sequence(type(self).__name__, x, self.n_inputs)
        n_time = x.shape[0]
        position = sinusoidal_encoding(n_time, self.config.d_model, dtype=x.dtype, device=x.device)
        h = self.embed(x) + position.unsqueeze(1)
        mask = causal_mask(n_time, self.config.context_window, device=x.device)
        h = self.encoder(h, mask=mask)
        return self.output_activation(self.head(h))

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, context_window={self.config.context_window}"
