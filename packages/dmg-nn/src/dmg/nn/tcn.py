"""The causal temporal convolutional network (:class:`TCN`): stacked dilated causal convolutions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from dmg.core.components import NetworkConfig
from dmg.nn.base import (
    Activation,
    Network,
    activation_layer,
    check_sequence,
    dropout_layer,
    positive_size,
    single_output,
)


class TCNConfig(NetworkConfig):
    """Options of :class:`TCN`."""

    hidden_size: int = Field(64, ge=1, description="Channels of every convolution.")
    num_levels: int = Field(4, ge=1, description="Residual blocks; block k uses dilation 2**k.")
    kernel_size: int = Field(3, ge=2, description="Taps of each convolution.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability after each convolution.")
    activation: Activation = Field("relu", description="Activation after each convolution.")
    output_activation: Activation = Field("identity", description="Activation applied to the outputs.")


class CausalConv1d(nn.Conv1d):
    """``Conv1d`` over ``[unit, channels, time]`` padded on the left only, so output ``t`` sees inputs ``<= t``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.dilation[0] * (self.kernel_size[0] - 1)
        return super().forward(F.pad(x, (left, 0)))


class TemporalBlock(nn.Module):
    """Two dilated causal convolutions with activation and dropout, plus a residual connection."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float, act: str) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(n_in, n_out, kernel_size, dilation=dilation)
        self.conv2 = CausalConv1d(n_out, n_out, kernel_size, dilation=dilation)
        self.act1, self.act2, self.act_out = activation_layer(act), activation_layer(act), activation_layer(act)
        self.drop1, self.drop2 = dropout_layer(dropout), dropout_layer(dropout)
        self.skip = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop1(self.act1(self.conv1(x)))
        h = self.drop2(self.act2(self.conv2(h)))
        return self.act_out(h + self.skip(x))


class TCN(Network):
    """Temporal convolutional network on ``[time, unit, features]`` sequences.

    ``num_levels`` residual blocks of two causal convolutions each, block ``k`` dilated by
    ``2**k``, then a linear head per step.  The output at step ``t`` depends on inputs at
    steps ``t - receptive_field + 1 .. t`` only; each convolution pads its input with zeros
    before the first step.

    Parameters
    ----------
    config
        A :class:`TCNConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Features per step.
    n_outputs
        Outputs per step.
    n_static
        Unused (the TCN reads no static attributes); accepted as every network's sizing context.
    **options
        Options of :class:`TCNConfig` (``hidden_size``, ``num_levels``, ``kernel_size``, ``dropout``,
        ``activation``, ``output_activation``).

    Examples
    --------
    >>> net = TCN(n_inputs=5, n_outputs=3, hidden_size=16, num_levels=3)
    >>> net(torch.zeros(30, 4, 5)).shape
    torch.Size([30, 4, 3])
    >>> net.receptive_field
    29
    """

    input_kind = "sequence"
    output_kind = "single"
    Config = TCNConfig
    config: TCNConfig

    def __init__(
        self,
        config: TCNConfig | Mapping[str, Any] | None = None,
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
        hidden = cfg.hidden_size
        self.blocks = nn.Sequential(
            *(
                TemporalBlock(
                    self.n_inputs if k == 0 else hidden, hidden, cfg.kernel_size, 2**k, cfg.dropout, cfg.activation
                )
                for k in range(cfg.num_levels)
            )
        )
        self.head = nn.Linear(hidden, self.n_outputs)
        self.output_activation = activation_layer(cfg.output_activation)

    @property
    def kernel_size(self) -> int:
        """Taps of each convolution (``config.kernel_size``)."""
        return self.config.kernel_size

    @property
    def num_levels(self) -> int:
        """Number of residual blocks (``config.num_levels``)."""
        return self.config.num_levels

    @property
    def receptive_field(self) -> int:
        """Number of steps (the current one included) an output depends on."""
        return 1 + 2 * (self.config.kernel_size - 1) * (2**self.config.num_levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` to ``[time, unit, n_outputs]``."""
        check_sequence(type(self).__name__, x, self.n_inputs)
        h = self.blocks(x.permute(1, 2, 0))  # [unit, channels, time]
        return self.output_activation(self.head(h.permute(2, 0, 1)))

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, receptive_field={self.receptive_field}"
