"""dmg-core's own network, ``dense``."""

from __future__ import annotations

import pytest
import torch

from dmg.core import registry
from dmg.core.dense import Dense
from dmg.core.errors import ConfigError, ShapeError, SpecError


def test_registered_and_built_from_its_config():
    assert registry.get("dmg.nn", "dense") is Dense
    net = Dense.from_config({"hidden_sizes": [8, 4]}, n_inputs=5, n_outputs=3, n_static=2)
    assert net.input_kind == "static" and net(torch.zeros(7, 2)).shape == (7, 3)


def test_sequence_input_maps_each_step():
    net = Dense(n_inputs=4, n_outputs=2, input_kind="sequence", hidden_sizes=[])
    assert net(torch.zeros(10, 3, 4)).shape == (10, 3, 2)
    with pytest.raises(ShapeError, match="4 input features"):
        net(torch.zeros(10, 3, 5))


def test_bad_options_and_sizes_are_refused():
    with pytest.raises(ConfigError, match="activation"):
        Dense(n_inputs=2, n_outputs=1, activation="swish")
    with pytest.raises(SpecError, match="positive"):
        Dense(n_inputs=2, n_outputs=0)
