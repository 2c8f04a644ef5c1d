"""The interface every network follows: registry names, configs, sizes from the run, clear errors."""

from __future__ import annotations

import pytest
import torch

import dmg.core
from dmg.core import Batch
from dmg.core.errors import ConfigError, ShapeError, SpecError
from dmg.core.networks import call_network
from dmg.core.registry import entries, get
from dmg.nn import KAN, LSTM, MLP, NETWORKS, TCN, Transformer
from dmg.nn.base import Network


def test_every_network_is_registered_under_its_name() -> None:
    for name, cls in NETWORKS.items():
        assert get("dmg.nn", name) is cls, f"dmg.nn entry point {name!r} does not load {cls.__name__}"


def test_the_package_registers_exactly_the_zoo() -> None:
    ours = {name for name, entry in entries("dmg.nn").items() if entry.distribution == "dmg-nn"}
    assert ours == set(NETWORKS)


@pytest.mark.parametrize("cls", NETWORKS.values(), ids=list(NETWORKS))
def test_every_network_builds_from_its_defaults(cls: type[Network]) -> None:
    n_outputs = (2, 3) if cls.output_kind == "split" else 3
    net = cls.from_config(cls.Config(), n_inputs=4, n_outputs=n_outputs, n_static=3)
    assert isinstance(net, Network) and type(net).output_kind == cls.output_kind


def test_a_config_mapping_is_validated_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"invalid configuration of LSTM: unknown key 'hidden_sise'"):
        LSTM.from_config({"hidden_sise": 8}, n_inputs=3, n_outputs=1)
    with pytest.raises(ConfigError, match=r"'lstm\.hidden_size': Input should be greater than or equal to 1"):
        NETWORKS["lstm_mlp"].from_config({"lstm": {"hidden_size": 0}}, n_inputs=3, n_outputs=(1, 1), n_static=2)
    with pytest.raises(ConfigError, match="LSTM takes a LSTMConfig, got a MLPConfig"):
        LSTM.from_config(MLP.Config(), n_inputs=3, n_outputs=1)


def test_an_unknown_option_is_a_config_error_naming_the_closest_key() -> None:
    with pytest.raises(dmg.core.ConfigError, match=r"unknown key 'hiden_size'; did you mean 'hidden_size'\?"):
        LSTM(n_inputs=2, n_outputs=1, hiden_size=8)
    with pytest.raises(
        dmg.core.ConfigError, match=r"unknown key 'lstm\.hiden_size'; did you mean 'lstm\.hidden_size'\?"
    ):
        NETWORKS["lstm_mlp"](n_inputs=2, n_outputs=(1, 1), n_static=2, lstm={"hiden_size": 8})
    with pytest.raises(dmg.core.ConfigError, match=r"unknown key 'hidden_size'; did you mean 'hidden_sizes'\?"):
        MLP(n_inputs=2, n_outputs=1, hidden_size=[8])


@pytest.mark.parametrize("cls", NETWORKS.values(), ids=list(NETWORKS))
def test_options_come_only_from_the_config(cls: type[Network]) -> None:
    """Keyword options, a Config and from_config build the same network; sizes are keyword-only."""
    n_outputs = (2, 3) if cls.output_kind == "split" else 3
    sizes = {"n_inputs": 4, "n_outputs": n_outputs, "n_static": 3}
    config = cls.Config()
    torch.manual_seed(0)
    from_keywords = cls(**config.model_dump(), **sizes)
    torch.manual_seed(0)
    from_instance = cls(config, **sizes)
    torch.manual_seed(0)
    from_config = cls.from_config(config, **sizes)
    for net in (from_keywords, from_instance, from_config):
        assert net.config == config
    for key, value in from_keywords.state_dict().items():
        assert torch.equal(value, from_instance.state_dict()[key]) and torch.equal(value, from_config.state_dict()[key])
    with pytest.raises(TypeError):
        cls(config, 4, n_outputs, 3)
    with pytest.raises(ConfigError, match=f"{cls.__name__} takes its options as keywords"):
        cls(4, **sizes)


def test_keyword_options_override_a_config() -> None:
    net = LSTM(LSTM.Config(hidden_size=8, num_layers=2), n_inputs=3, n_outputs=1, hidden_size=6)
    assert (net.config.hidden_size, net.config.num_layers) == (6, 2)
    assert net.lstm.hidden_size == 6 and net.lstm.num_layers == 2


def test_sizes_come_from_the_run() -> None:
    net = LSTM.from_config({"hidden_size": 8}, n_inputs=5, n_outputs=7)
    assert (net.n_inputs, net.n_outputs) == (5, 7)
    with pytest.raises(SpecError, match="LSTM: n_inputs must be a positive integer, got 0"):
        LSTM.from_config({}, n_inputs=0, n_outputs=1)
    with pytest.raises(SpecError, match="LSTM returns one output tensor"):
        LSTM.from_config({}, n_inputs=3, n_outputs=(1, 2))


@pytest.mark.parametrize("cls", [MLP, KAN])
def test_static_networks_read_their_input_size_from_n_static(cls: type[Network]) -> None:
    cfg = {"hidden_sizes": [4]}
    assert cls.from_config(cfg, n_inputs=6, n_outputs=2, n_static=3).n_inputs == 3
    assert cls.from_config(cfg, n_inputs=6, n_outputs=2).n_inputs == 6
    on_sequence = cls.from_config({**cfg, "input_kind": "sequence"}, n_inputs=6, n_outputs=2, n_static=3)
    assert on_sequence.n_inputs == 6 and on_sequence.input_kind == "sequence"


def test_call_network_feeds_each_kind_its_inputs() -> None:
    batch = Batch(forcings={"P": torch.zeros(7, 4)}, nn_inputs=torch.randn(7, 4, 5), static_inputs=torch.randn(4, 2))
    x, c = batch.nn_inputs, batch.static_inputs
    static_mlp = MLP(n_inputs=2, n_outputs=3, hidden_sizes=[4])
    sequence_mlp = MLP(n_inputs=5, n_outputs=3, hidden_sizes=[4], input_kind="sequence")
    assert call_network(static_mlp, x, c).shape == (4, 3)
    assert call_network(sequence_mlp, x, c).shape == (7, 4, 3)
    pair = NETWORKS["lstm_mlp"](n_inputs=5, n_static=2, n_outputs=(1, 2), lstm={"hidden_size": 4})
    dynamic, static = call_network(pair, x, c)
    assert dynamic.shape == (7, 4, 1) and static.shape == (4, 2)


@pytest.mark.parametrize(
    ("net", "bad", "message"),
    [
        (
            LSTM(n_inputs=3, n_outputs=1, hidden_size=4),
            torch.zeros(5, 2, 4),
            r"LSTM expects x of shape \[time, unit, 3\]",
        ),
        (LSTM(n_inputs=3, n_outputs=1, hidden_size=4), torch.zeros(2, 3), r"got \(2, 3\)"),
        (Transformer(n_inputs=3, n_outputs=1, d_model=4, n_heads=2), torch.zeros(5, 2, 2), r"Transformer expects x"),
        (
            TCN(n_inputs=3, n_outputs=1, hidden_size=4),
            torch.zeros(0, 2, 3),
            r"TCN expects x of shape \[time, unit, 3\]",
        ),
        (MLP(n_inputs=3, n_outputs=1), torch.zeros(4, 2), r"MLP expects inputs of shape \[\.\.\., 3\], got \(4, 2\)"),
    ],
)
def test_wrong_inputs_are_named(net: Network, bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        net(bad)
