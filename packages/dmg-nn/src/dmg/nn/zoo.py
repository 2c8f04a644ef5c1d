"""The networks of the zoo by their registry name (the ``dmg.nn`` entry points of this package)."""

from __future__ import annotations

from dmg.nn.base import Network
from dmg.nn.ealstm import EALSTM
from dmg.nn.kan import KAN
from dmg.nn.lstm import LSTM
from dmg.nn.lstm_mlp import LSTMMLP
from dmg.nn.mlp import MLP
from dmg.nn.tcn import TCN
from dmg.nn.transformer import Transformer

NETWORKS: dict[str, type[Network]] = {
    "lstm": LSTM,
    "mlp": MLP,
    "lstm_mlp": LSTMMLP,
    "ealstm": EALSTM,
    "transformer": Transformer,
    "tcn": TCN,
    "kan": KAN,
}
"""Registry name -> network class, in the order the documentation lists them."""
