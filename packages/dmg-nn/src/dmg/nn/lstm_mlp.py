"""The :class:`LSTMMLP` pair: an LSTM for time-varying outputs and an MLP for static ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field

from dmg.core.components import NetworkConfig
from dmg.nn.base import Network, check_sequence_static, positive_size, split_output
from dmg.nn.lstm import LSTM, LSTMConfig
from dmg.nn.mlp import MLP, MLPLayersConfig


class LSTMMLPConfig(NetworkConfig):
    """Options of :class:`LSTMMLP`: one block per member network."""

    lstm: LSTMConfig = Field(default_factory=LSTMConfig, description="The LSTM that maps x to the dynamic outputs.")
    mlp: MLPLayersConfig = Field(
        default_factory=MLPLayersConfig, description="The MLP that maps c to the static outputs."
    )


class LSTMMLP(Network):
    """An :class:`~dmg.nn.LSTM` on ``x`` for dynamic outputs and an :class:`~dmg.nn.MLP` on ``c`` for static ones.

    ``forward(x, c)`` returns ``(dynamic [time, unit, n_dynamic], static [unit, n_static_out])``, the
    split layout :class:`dmg.core.ParameterLearning` reads as time-varying and static parameters
    (the δHBV 2.0 arrangement).  A part with zero outputs has no network and returns an empty tensor.

    Parameters
    ----------
    config
        An :class:`LSTMMLPConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Time-varying features of ``x``.
    n_outputs
        ``(n_dynamic, n_static_out)``.
    n_static
        Static attributes of ``c`` (required: at least one).
    **options
        Options of :class:`LSTMMLPConfig`: ``lstm`` and ``mlp``, each a mapping of its member's options.

    Examples
    --------
    >>> net = LSTMMLP(n_inputs=5, n_static=3, n_outputs=(2, 4), lstm={"hidden_size": 16})
    >>> dynamic, static = net(torch.zeros(30, 8, 5), torch.zeros(8, 3))
    >>> dynamic.shape, static.shape
    (torch.Size([30, 8, 2]), torch.Size([8, 4]))
    """

    input_kind = "sequence+static"
    output_kind = "split"
    Config = LSTMMLPConfig
    config: LSTMMLPConfig

    def __init__(
        self,
        config: LSTMMLPConfig | Mapping[str, Any] | None = None,
        /,
        *,
        n_inputs: int,
        n_outputs: tuple[int, int],
        n_static: int = 0,
        **options: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = self.validate_config(config, options)
        who = type(self).__name__
        self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_static = positive_size(who, "n_static", n_static)
        self.n_dynamic_out, self.n_static_out = split_output(who, n_outputs)
        self.lstm = LSTM(cfg.lstm, n_inputs=self.n_inputs, n_outputs=self.n_dynamic_out) if self.n_dynamic_out else None
        self.mlp = MLP(cfg.mlp, n_inputs=self.n_static, n_outputs=self.n_static_out) if self.n_static_out else None

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` ``[time, unit, n_inputs]`` and ``c`` ``[unit, n_static]`` to ``(dynamic, static)``."""
        check_sequence_static(type(self).__name__, x, c, self.n_inputs, self.n_static)
        dynamic = self.lstm(x) if self.lstm is not None else x.new_zeros(*x.shape[:2], 0)
        static = self.mlp(c) if self.mlp is not None else c.new_zeros(c.shape[0], 0)
        return dynamic, static

    def stream(
        self, x: torch.Tensor, c: torch.Tensor, state: Mapping[str, torch.Tensor]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        """Continue over ``x`` ``[k, unit, n_inputs]`` from the LSTM's carried ``state`` (see
        :meth:`LSTM.stream`); returns ``(dynamic, static)`` for these ``k`` steps and the new state."""
        check_sequence_static(type(self).__name__, x, c, self.n_inputs, self.n_static)
        new_state: dict[str, torch.Tensor] = {}
        if self.lstm is not None:
            dynamic, new_state = self.lstm.stream(x, None, state)
        else:
            dynamic = x.new_zeros(*x.shape[:2], 0)
        static = self.mlp(c) if self.mlp is not None else c.new_zeros(c.shape[0], 0)
        return (dynamic, static), new_state
