"""The entity-aware LSTM (:class:`EALSTM`): static attributes set the input gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.nn.base import (
    Activation,
    Network,
    activation_layer,
    check_sequence_static,
    dropout_layer,
    positive_size,
    single_output,
)


class EALSTMConfig(NetworkConfig):
    """Options of :class:`EALSTM`."""

    hidden_size: int = Field(256, ge=1, description="Size of the hidden and cell states.")
    initial_forget_bias: float = Field(
        3.0, description="Initial bias of the forget gate; a positive value starts with long memory."
    )
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability on the inputs x.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability before the head.")
    output_activation: Activation = Field("identity", description="Activation applied to the outputs.")


class EALSTM(Network):
    """Entity-aware LSTM: the static attributes ``c`` alone set the input gate.

    Per unit, ``i = sigmoid(W_i c + b_i)`` is fixed over time; the forget gate ``f``, cell
    input ``g`` and output gate ``o`` come from ``x_t`` and ``h_{t-1}``::

        c_t = sigmoid(f_t) * c_{t-1} + i * tanh(g_t)
        h_t = sigmoid(o_t) * tanh(c_t)

    so the attributes decide how much of each step's input enters memory.  The input
    projections of all steps are computed at once; only the recurrent product runs per step.

    Parameters
    ----------
    n_inputs
        Time-varying features of ``x``.
    n_static
        Static attributes of ``c``.
    n_outputs
        Outputs per step.
    hidden_size, initial_forget_bias, input_dropout, dropout, output_activation
        See :class:`EALSTMConfig`.
    """

    input_kind = "sequence+static"
    output_kind = "single"
    Config = EALSTMConfig

    def __init__(
        self,
        n_inputs: int,
        n_static: int,
        n_outputs: int,
        *,
        hidden_size: int = 256,
        initial_forget_bias: float = 3.0,
        input_dropout: float = 0.0,
        dropout: float = 0.0,
        output_activation: str = "identity",
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_static = positive_size(who, "n_static", n_static)
        self.n_outputs = single_output(who, n_outputs)
        self.hidden_size = hidden_size
        self.input_dropout = dropout_layer(input_dropout)
        self.input_gate = nn.Linear(n_static, hidden_size)
        self.input_proj = nn.Linear(n_inputs, 3 * hidden_size)  # forget, cell input, output
        self.recurrent = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.dropout = dropout_layer(dropout)
        self.head = nn.Linear(hidden_size, self.n_outputs)
        self.output_activation = activation_layer(output_activation)
        with torch.no_grad():
            self.input_proj.bias[:hidden_size].fill_(initial_forget_bias)

    @classmethod
    def from_config(
        cls,
        config: EALSTMConfig | Mapping[str, Any] | None,
        *,
        n_inputs: int,
        n_outputs: int | tuple[int, int],
        n_static: int = 0,
    ) -> EALSTM:
        """Build from :class:`EALSTMConfig`."""
        return cls(n_inputs, n_static, n_outputs, **cls.validate_config(config).model_dump())  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` and ``c`` ``[unit, n_static]`` to ``[time, unit, n_outputs]``."""
        check_sequence_static(type(self).__name__, x, c, self.n_inputs, self.n_static)
        i = torch.sigmoid(self.input_gate(c))
        projected = self.input_proj(self.input_dropout(x))
        weight = self.recurrent.weight.t()
        h = x.new_zeros(x.shape[1], self.hidden_size)
        cell = torch.zeros_like(h)
        hidden = []
        for x_t in projected.unbind(0):
            f, g, o = torch.addmm(x_t, h, weight).chunk(3, dim=-1)
            cell = torch.sigmoid(f) * cell + i * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(cell)
            hidden.append(h)
        out = torch.stack(hidden)
        return self.output_activation(self.head(self.dropout(out)))

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_static={self.n_static}, n_outputs={self.n_outputs}"
