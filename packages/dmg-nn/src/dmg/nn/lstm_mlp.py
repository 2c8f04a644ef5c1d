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
    n_inputs
        Time-varying features of ``x``.
    n_static
        Static attributes of ``c``.
    n_outputs
        ``(n_dynamic, n_static_out)``.
    lstm, mlp
        Options of the members, see :class:`LSTMMLPConfig`.
    """

    input_kind = "sequence+static"
    output_kind = "split"
    Config = LSTMMLPConfig

    def __init__(
        self,
        n_inputs: int,
        n_static: int,
        n_outputs: tuple[int, int],
        *,
        lstm: LSTMConfig | Mapping[str, Any] | None = None,
        mlp: MLPLayersConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n_inputs = positive_size(who, "n_inputs", n_inputs)
        self.n_static = positive_size(who, "n_static", n_static)
        self.n_dynamic_out, self.n_static_out = split_output(who, n_outputs)
        lstm_cfg = LSTMConfig.model_validate(lstm or {})
        mlp_cfg = MLPLayersConfig.model_validate(mlp or {})
        self.lstm = LSTM(n_inputs, self.n_dynamic_out, **lstm_cfg.model_dump()) if self.n_dynamic_out else None
        self.mlp = MLP(n_static, self.n_static_out, **mlp_cfg.model_dump()) if self.n_static_out else None

    @classmethod
    def from_config(
        cls,
        config: LSTMMLPConfig | Mapping[str, Any] | None,
        *,
        n_inputs: int,
        n_outputs: int | tuple[int, int],
        n_static: int = 0,
    ) -> LSTMMLP:
        """Build from :class:`LSTMMLPConfig`; ``n_outputs`` is ``(n_dynamic, n_static_out)``."""
        cfg = cls.validate_config(config)
        return cls(n_inputs, n_static, n_outputs, lstm=cfg.lstm, mlp=cfg.mlp)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` ``[time, unit, n_inputs]`` and ``c`` ``[unit, n_static]`` to ``(dynamic, static)``."""
        check_sequence_static(type(self).__name__, x, c, self.n_inputs, self.n_static)
        dynamic = self.lstm(x) if self.lstm is not None else x.new_zeros(*x.shape[:2], 0)
        static = self.mlp(c) if self.mlp is not None else c.new_zeros(c.shape[0], 0)
        return dynamic, static
