"""The :class:`LSTM`: input layer, a fused ``torch.nn.LSTM``, and a linear head."""

from __future__ import annotations

import warnings

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


class LSTMConfig(NetworkConfig):
    """Options of :class:`LSTM`."""

    hidden_size: int = Field(256, ge=1, description="Size of the LSTM hidden state (and of the input layer).")
    num_layers: int = Field(1, ge=1, description="Number of stacked LSTM layers.")
    input_layer: bool = Field(
        True, description="Map the inputs to hidden_size with a linear layer and ReLU before the LSTM."
    )
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability on the inputs.")
    recurrent_dropout: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="DropConnect probability on the hidden-to-hidden weights while training: one mask per "
        "forward pass, shared by every step (the δHBV setting is 0.5).",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout probability between stacked layers and before the head."
    )
    output_activation: Activation = Field("identity", description="Activation applied to the outputs.")


class LSTM(Network):
    """Long short-term memory network on ``[time, unit, features]`` sequences.

    ``x -> dropout -> [Linear + ReLU] -> torch.nn.LSTM -> dropout -> Linear -> activation``.
    The recurrence runs in PyTorch's fused LSTM kernels (cuDNN on GPU); there is no Python
    loop over time.  The state starts from zeros at the first step of each call.

    Parameters
    ----------
    n_inputs
        Features per step.
    n_outputs
        Outputs per step.
    hidden_size, num_layers, input_layer, input_dropout, recurrent_dropout, dropout, output_activation
        See :class:`LSTMConfig`.

    Examples
    --------
    >>> net = LSTM(n_inputs=5, n_outputs=3, hidden_size=16)
    >>> net(torch.zeros(30, 4, 5)).shape
    torch.Size([30, 4, 3])
    """

    input_kind = "sequence"
    output_kind = "single"
    Config = LSTMConfig

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        *,
        hidden_size: int = 256,
        num_layers: int = 1,
        input_layer: bool = True,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.5,
        dropout: float = 0.0,
        output_activation: str = "identity",
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_outputs = single_output(who, n_outputs)
        self.recurrent_dropout = float(recurrent_dropout)
        self.input_dropout = dropout_layer(input_dropout)
        self.input_layer = nn.Sequential(nn.Linear(n_inputs, hidden_size), nn.ReLU()) if input_layer else nn.Identity()
        self.lstm = nn.LSTM(
            hidden_size if input_layer else n_inputs,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = dropout_layer(dropout)
        self.head = nn.Linear(hidden_size, self.n_outputs)
        self.output_activation = activation_layer(output_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` to ``[time, unit, n_outputs]``."""
        check_sequence(type(self).__name__, x, self.n_inputs)
        h = self.input_layer(self.input_dropout(x))
        h = self.recurrence(h)
        return self.output_activation(self.head(self.dropout(h)))

    def recurrence(self, h: torch.Tensor) -> torch.Tensor:
        """Run the LSTM layers on ``h`` ``[time, unit, size]``, with DropConnect while training."""
        if not (self.training and self.recurrent_dropout > 0):
            return self.lstm(h)[0]
        weights = {
            name: F.dropout(p, self.recurrent_dropout) if name.startswith("weight_hh") else p
            for name, p in self.lstm.named_parameters()
        }
        if not h.is_cuda:
            return torch.func.functional_call(self.lstm, weights, (h,))[0]
        with warnings.catch_warnings():
            # The dropped weights are new tensors, so cuDNN cannot use the module's flat weight buffer.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return torch.func.functional_call(self.lstm, weights, (h,))[0]

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, recurrent_dropout={self.recurrent_dropout}"
