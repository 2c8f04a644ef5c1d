"""dmg.nn: the network zoo of dmg, every network behind one interface.

Each network declares ``input_kind`` (``"sequence"``, ``"static"`` or ``"sequence+static"``),
``output_kind`` (``"single"`` or ``"split"``), a pydantic ``Config`` and
``from_config(config, *, n_inputs, n_outputs, n_static=0)``: the interface of
:class:`dmg.core.networks.Network`, their base class (re-exported as :class:`dmg.nn.Network`).
Options come only from the ``Config``: build a network with keyword options and keyword-only
sizes, ``LSTM(n_inputs=5, n_outputs=3, hidden_size=16)``, or from a ``Config``,
``LSTM(LSTM.Config(hidden_size=16), n_inputs=5, n_outputs=3)``::

    LSTM          sequence -> sequence (fused torch.nn.LSTM, δHBV input layer)
    MLP           pointwise on the last dimension (static attributes by default)
    LSTMMLP       (sequence, static) -> (dynamic sequence, static): δHBV 2.0 pairing
    EALSTM        entity-aware LSTM, static attributes gate the input
    Transformer   causal Transformer encoder
    TCN           causal dilated temporal convolutions
    KAN           Kolmogorov–Arnold network, pointwise on the last dimension

They are registered under the ``dmg.nn`` entry-point group (``lstm``, ``mlp``, ``lstm_mlp``,
``ealstm``, ``transformer``, ``tcn``, ``kan``).
"""

from dmg.nn.__about__ import __version__
from dmg.nn._interface import SUPPORTED_CORE_INTERFACE as SUPPORTED_CORE_INTERFACE
from dmg.nn.base import Network
from dmg.nn.ealstm import EALSTM, EALSTMConfig
from dmg.nn.kan import KAN, KANConfig
from dmg.nn.lstm import LSTM, LSTMConfig
from dmg.nn.lstm_mlp import LSTMMLP, LSTMMLPConfig
from dmg.nn.mlp import MLP, MLPConfig, MLPLayersConfig
from dmg.nn.tcn import TCN, TCNConfig
from dmg.nn.transformer import Transformer, TransformerConfig
from dmg.nn.zoo import NETWORKS

__all__ = [
    "EALSTM",
    "EALSTMConfig",
    "KAN",
    "KANConfig",
    "LSTM",
    "LSTMConfig",
    "LSTMMLP",
    "LSTMMLPConfig",
    "MLP",
    "MLPConfig",
    "MLPLayersConfig",
    "NETWORKS",
    "Network",
    "TCN",
    "TCNConfig",
    "Transformer",
    "TransformerConfig",
    "__version__",
]
