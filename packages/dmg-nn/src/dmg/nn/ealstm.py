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
    config
        An :class:`EALSTMConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Time-varying features of ``x``.
    n_outputs
        Outputs per step.
    n_static
        Static attributes of ``c`` (required: at least one).
    **options
        Options of :class:`EALSTMConfig` (``hidden_size``, ``initial_forget_bias``, ``input_dropout``,
        ``dropout``, ``output_activation``).

    Examples
    --------
    >>> net = EALSTM(n_inputs=5, n_static=3, n_outputs=2, hidden_size=16)
    >>> net(torch.zeros(30, 8, 5), torch.zeros(8, 3)).shape
    torch.Size([30, 8, 2])
    """

    input_kind = "sequence+static"
    output_kind = "single"
    Config = EALSTMConfig
    config: EALSTMConfig

    def __init__(
        self,
        config: EALSTMConfig | Mapping[str, Any] | None = None,
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
        self.n_static = positive_size(who, "n_static", n_static)
        self.n_outputs = single_output(who, n_outputs)
        hidden = cfg.hidden_size
        self.input_dropout = dropout_layer(cfg.input_dropout)
        self.input_gate = nn.Linear(self.n_static, hidden)
        self.input_proj = nn.Linear(self.n_inputs, 3 * hidden)  # forget, cell input, output
        self.recurrent = nn.Linear(hidden, 3 * hidden, bias=False)
        self.dropout = dropout_layer(cfg.dropout)
        self.head = nn.Linear(hidden, self.n_outputs)
        self.output_activation = activation_layer(cfg.output_activation)
        with torch.no_grad():
            self.input_proj.bias[:hidden].fill_(cfg.initial_forget_bias)

    @property
    def hidden_size(self) -> int:
        """Size of the hidden and cell states (``config.hidden_size``)."""
        return self.config.hidden_size

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` and ``c`` ``[unit, n_static]`` to ``[time, unit, n_outputs]``."""
        check_sequence_static(type(self).__name__, x, c, self.n_inputs, self.n_static)
        i = torch.sigmoid(self.input_gate(c))
        projected = self.input_proj(self.input_dropout(x))
        weight = self.recurrent.weight.t()
        h = x.new_zeros(x.shape[1], self.config.hidden_size)
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
