"""Every network of the zoo against the shared test kit of :mod:`dmg.nn.testing`."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from dmg.nn import EALSTM, KAN, LSTM, LSTMMLP, MLP, TCN, Transformer
from dmg.nn.testing import LEARN, NetworkTestKit, synthetic_task


class TestLSTM(NetworkTestKit):
    network = LSTM
    config: ClassVar[dict[str, Any]] = {"hidden_size": 16, "recurrent_dropout": 0.3, "dropout": 0.1}
    compile = True


class TestStackedLSTMWithoutInputLayer(NetworkTestKit):
    network = LSTM
    config: ClassVar[dict[str, Any]] = {
        "hidden_size": 12,
        "num_layers": 2,
        "input_layer": False,
        "input_dropout": 0.1,
        "dropout": 0.1,
    }


class TestMLP(NetworkTestKit):
    network = MLP
    config: ClassVar[dict[str, Any]] = {"hidden_sizes": [32, 32]}
    compile = True


class TestMLPOnSequences(NetworkTestKit):
    network = MLP
    config: ClassVar[dict[str, Any]] = {"hidden_sizes": [32], "activation": "tanh", "input_kind": "sequence"}


class TestLSTMMLP(NetworkTestKit):
    network = LSTMMLP
    config: ClassVar[dict[str, Any]] = {
        "lstm": {"hidden_size": 16, "recurrent_dropout": 0.2},
        "mlp": {"hidden_sizes": [32]},
    }


class TestEALSTM(NetworkTestKit):
    network = EALSTM
    config: ClassVar[dict[str, Any]] = {"hidden_size": 16}


class TestTransformer(NetworkTestKit):
    network = Transformer
    config: ClassVar[dict[str, Any]] = {
        "d_model": 16,
        "n_heads": 2,
        "num_layers": 2,
        "dim_feedforward": 32,
        "dropout": 0.0,
    }
    learn_lr = 5e-3


class TestWindowedTransformer(NetworkTestKit):
    network = Transformer
    config: ClassVar[dict[str, Any]] = {
        "d_model": 16,
        "n_heads": 2,
        "num_layers": 1,
        "dim_feedforward": 32,
        "context_window": 8,
    }
    learn_lr = 5e-3


class TestTCN(NetworkTestKit):
    network = TCN
    config: ClassVar[dict[str, Any]] = {"hidden_size": 16, "num_levels": 3}


class TestKAN(NetworkTestKit):
    network = KAN
    config: ClassVar[dict[str, Any]] = {"hidden_sizes": [8], "grid_size": 5}


class TestRBFKANOnSequences(NetworkTestKit):
    network = KAN
    config: ClassVar[dict[str, Any]] = {"hidden_sizes": [8], "basis": "rbf", "grid_size": 6, "input_kind": "sequence"}


def test_the_sequence_task_needs_memory() -> None:
    """The best pointwise predictor of the memory task explains only 1 - 0.8² of its variance.

    Given ``x_t``, the target's expectation is linear in ``x_t``; so least squares on the current
    step's features is the best any pointwise model can do, and it stays far above the 0.1 the
    sequence networks must reach.
    """
    (x,), (y,) = synthetic_task(LSTM(n_inputs=2, n_outputs=1, hidden_size=4), LEARN)
    features = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1).reshape(-1, 3)
    coef = torch.linalg.lstsq(features, y.reshape(-1, 1)).solution
    residual = float(((features @ coef - y.reshape(-1, 1)) ** 2).mean() / y.var())
    assert residual > 0.5
