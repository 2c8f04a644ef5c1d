"""The :class:`LSTM`: input layer, a fused ``torch.nn.LSTM``, and a linear head."""

from __future__ import annotations

import warnings
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
    config
        An :class:`LSTMConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Features per step.
    n_outputs
        Outputs per step.
    n_static
        Unused (the LSTM reads no static attributes); accepted as every network's sizing context.
    **options
        Options of :class:`LSTMConfig` (``hidden_size``, ``num_layers``, ``input_layer``,
        ``input_dropout``, ``recurrent_dropout``, ``dropout``, ``output_activation``).

    Examples
    --------
    >>> net = LSTM(n_inputs=5, n_outputs=3, hidden_size=16)
    >>> net(torch.zeros(30, 4, 5)).shape
    torch.Size([30, 4, 3])
    """

    input_kind = "sequence"
    output_kind = "single"
    Config = LSTMConfig
    config: LSTMConfig

    def __init__(
        self,
        config: LSTMConfig | Mapping[str, Any] | None = None,
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
        self.input_dropout = dropout_layer(cfg.input_dropout)
        self.input_layer = (
            nn.Sequential(nn.Linear(self.n_inputs, hidden), nn.ReLU()) if cfg.input_layer else nn.Identity()
        )
        self.lstm = nn.LSTM(
            hidden if cfg.input_layer else self.n_inputs,
            hidden,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = dropout_layer(cfg.dropout)
        self.head = nn.Linear(hidden, self.n_outputs)
        self.output_activation = activation_layer(cfg.output_activation)

    @property
    def recurrent_dropout(self) -> float:
        """DropConnect probability on the hidden-to-hidden weights (``config.recurrent_dropout``)."""
        return self.config.recurrent_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[time, unit, n_inputs]`` to ``[time, unit, n_outputs]``."""
        check_sequence(type(self).__name__, x, self.n_inputs)
        h = self.input_layer(self.input_dropout(x))
        h = self.recurrence(h)
        return self.output_activation(self.head(self.dropout(h)))

    def stream(
        self, x: torch.Tensor, static: torch.Tensor | None, state: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Continue over ``x`` ``[k, unit, n_inputs]`` from ``state`` (``h`` and ``c``, ``[layers, unit,
        hidden]``; empty: zeros, as at the first step of ``forward``), in evaluation mode.

        Returns the ``[k, unit, n_outputs]`` outputs and the new state: the steps of a window run in
        pieces give the window's outputs (:mod:`dmg.core.stepping`). ``static`` is unused.
        """
        check_sequence(type(self).__name__, x, self.n_inputs)
        carried = (state["h"].to(x), state["c"].to(x)) if state else None
        h, (h_n, c_n) = self.lstm(self.input_layer(self.input_dropout(x)), carried)
        return self.output_activation(self.head(self.dropout(h))), {"h": h_n, "c": c_n}

    def recurrence(self, h: torch.Tensor) -> torch.Tensor:
        """Run the LSTM layers on ``h`` ``[time, unit, size]``, with DropConnect while training."""
        p_drop = self.config.recurrent_dropout
        if not (self.training and p_drop > 0):
            return self.lstm(h)[0]
        weights = {
            name: F.dropout(p, p_drop) if name.startswith("weight_hh") else p
            for name, p in self.lstm.named_parameters()
        }
        if not h.is_cuda:
            return torch.func.functional_call(self.lstm, weights, (h,))[0]
        with warnings.catch_warnings():
            # The dropped weights are new tensors, so cuDNN cannot use the module's flat weight buffer.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return torch.func.functional_call(self.lstm, weights, (h,))[0]

    def extra_repr(self) -> str:
        return (
            f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, recurrent_dropout={self.config.recurrent_dropout}"
        )
