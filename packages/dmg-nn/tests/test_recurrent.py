"""LSTM, EALSTM and LSTMMLP against independent per-step reference computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dmg.core.errors import ShapeError, SpecError
from dmg.nn import EALSTM, LSTM, LSTMMLP


def reference_lstm(x: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """A one-layer LSTM written step by step with torch.nn.LSTMCell, zero initial state."""
    hidden = w_hh.shape[1]
    cell = nn.LSTMCell(x.shape[-1], hidden).to(x.dtype)
    with torch.no_grad():
        cell.weight_ih.copy_(w_ih)
        cell.weight_hh.copy_(w_hh)
        cell.bias_ih.copy_(b_ih)
        cell.bias_hh.copy_(b_hh)
    h = x.new_zeros(x.shape[1], hidden)
    c = torch.zeros_like(h)
    out = []
    for x_t in x:
        h, c = cell(x_t, (h, c))
        out.append(h)
    return torch.stack(out)


def lstm_weights(net: LSTM) -> tuple[torch.Tensor, ...]:
    lstm = net.lstm
    return lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0


@pytest.mark.parametrize("input_layer", [True, False])
def test_lstm_matches_a_step_by_step_reference(input_layer: bool) -> None:
    torch.manual_seed(0)
    net = LSTM(n_inputs=3, n_outputs=2, hidden_size=6, input_layer=input_layer, recurrent_dropout=0.0).double().eval()
    x = torch.randn(15, 4, 3, dtype=torch.float64)
    h = torch.relu(net.input_layer[0](x)) if input_layer else x
    expected = net.head(reference_lstm(h, *lstm_weights(net)))
    torch.testing.assert_close(net(x), expected, rtol=1e-10, atol=1e-10)


def test_recurrent_dropout_drops_hidden_weights_once_per_pass() -> None:
    """While training, the output equals an LSTM whose W_hh carries one dropout mask for every step."""
    torch.manual_seed(0)
    net = LSTM(n_inputs=3, n_outputs=2, hidden_size=8, input_layer=False, recurrent_dropout=0.4).double().train()
    x = torch.randn(12, 5, 3, dtype=torch.float64)
    w_ih, w_hh, b_ih, b_hh = lstm_weights(net)
    torch.manual_seed(42)
    dropped = F.dropout(w_hh, 0.4)
    torch.manual_seed(42)
    out = net(x)
    torch.testing.assert_close(out, net.head(reference_lstm(x, w_ih, dropped, b_ih, b_hh)), rtol=1e-10, atol=1e-10)
    assert bool((dropped == 0).any()), "the mask dropped nothing; the test would not tell the paths apart"
    assert not torch.allclose(out, net.eval()(x)), "training output equals the no-dropout output"


def test_recurrent_dropout_leaves_weights_and_evaluation_untouched() -> None:
    torch.manual_seed(0)
    net = LSTM(n_inputs=3, n_outputs=2, hidden_size=8, recurrent_dropout=0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(10, 4, 3)
    net.train()(x).sum().backward()
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed during a training forward pass"
    reference = LSTM(n_inputs=3, n_outputs=2, hidden_size=8, recurrent_dropout=0.0)
    reference.load_state_dict(net.state_dict())
    torch.testing.assert_close(net.eval()(x), reference.eval()(x))


def ealstm_as_lstm(net: EALSTM, gate_bias: torch.Tensor) -> nn.LSTM:
    """The torch.nn.LSTM that equals ``net`` when its input gate is ``sigmoid(gate_bias)`` for every unit."""
    hidden, n_in = net.hidden_size, net.n_inputs
    lstm = nn.LSTM(n_in, hidden).double()
    with torch.no_grad():
        # torch.nn.LSTM orders the gates (input, forget, cell, output); EALSTM projects (forget, cell, output).
        lstm.weight_ih_l0.copy_(torch.cat([torch.zeros(hidden, n_in, dtype=torch.float64), net.input_proj.weight]))
        lstm.weight_hh_l0.copy_(torch.cat([torch.zeros(hidden, hidden, dtype=torch.float64), net.recurrent.weight]))
        lstm.bias_ih_l0.copy_(torch.cat([gate_bias, net.input_proj.bias]))
        lstm.bias_hh_l0.zero_()
    return lstm


def test_ealstm_with_a_constant_input_gate_is_an_lstm() -> None:
    torch.manual_seed(0)
    net = EALSTM(n_inputs=3, n_static=2, n_outputs=4, hidden_size=5).double().eval()
    gate_bias = torch.randn(5, dtype=torch.float64)
    with torch.no_grad():
        net.input_gate.weight.zero_()
        net.input_gate.bias.copy_(gate_bias)
    x = torch.randn(20, 6, 3, dtype=torch.float64)
    c = torch.randn(6, 2, dtype=torch.float64)
    hidden, _ = ealstm_as_lstm(net, gate_bias)(x)
    torch.testing.assert_close(net(x, c), net.head(hidden), rtol=1e-10, atol=1e-10)


def test_ealstm_attributes_scale_what_enters_memory() -> None:
    """A closed input gate (very negative bias) keeps the cell at zero, so the output is the head's bias."""
    torch.manual_seed(0)
    net = EALSTM(n_inputs=3, n_static=2, n_outputs=1, hidden_size=4).eval()
    with torch.no_grad():
        net.input_gate.weight.zero_()
        net.input_gate.bias.fill_(-1e4)
    out = net(torch.randn(8, 3, 3), torch.randn(3, 2))
    torch.testing.assert_close(out, net.head.bias.expand_as(out))


def test_ealstm_forget_bias_is_initialised() -> None:
    net = EALSTM(n_inputs=3, n_static=2, n_outputs=1, hidden_size=4, initial_forget_bias=2.5)
    assert torch.equal(net.input_proj.bias[:4], torch.full((4,), 2.5))


def test_lstm_mlp_parts_are_its_members() -> None:
    torch.manual_seed(0)
    net = LSTMMLP(n_inputs=3, n_static=2, n_outputs=(4, 5), lstm={"hidden_size": 6}, mlp={"hidden_sizes": [7]}).eval()
    x, c = torch.randn(9, 3, 3), torch.randn(3, 2)
    dynamic, static = net(x, c)
    torch.testing.assert_close(dynamic, net.lstm(x))
    torch.testing.assert_close(static, net.mlp(c))
    assert net.mlp.layers[0].in_features == 2 and net.lstm.n_inputs == 3


def test_lstm_mlp_without_dynamic_outputs_builds_no_lstm() -> None:
    net = LSTMMLP(n_inputs=3, n_static=2, n_outputs=(0, 5), mlp={"hidden_sizes": [4]})
    dynamic, static = net(torch.randn(9, 3, 3), torch.randn(3, 2))
    assert net.lstm is None and dynamic.shape == (9, 3, 0) and static.shape == (3, 5)


@pytest.mark.parametrize("n_outputs", [3, (0, 0), (2, -1), (1, 2, 3)])
def test_lstm_mlp_rejects_bad_output_sizes(n_outputs) -> None:
    with pytest.raises(SpecError, match="LSTMMLP"):
        LSTMMLP.from_config({}, n_inputs=3, n_outputs=n_outputs, n_static=2)


def test_sequence_static_networks_need_static_attributes() -> None:
    with pytest.raises(SpecError, match="n_static must be a positive integer"):
        EALSTM.from_config({}, n_inputs=3, n_outputs=1)


@pytest.mark.parametrize(
    "net",
    [
        EALSTM(n_inputs=3, n_static=2, n_outputs=1, hidden_size=4),
        LSTMMLP(n_inputs=3, n_static=2, n_outputs=(1, 1)),
    ],
)
def test_units_of_x_and_c_must_agree(net) -> None:
    with pytest.raises(ShapeError, match="has 4 units but c"):
        net(torch.randn(5, 4, 3), torch.randn(3, 2))


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_stream_in_pieces_gives_the_window(num_layers: int) -> None:
    torch.manual_seed(0)
    net = LSTM(n_inputs=3, n_outputs=2, hidden_size=6, num_layers=num_layers).eval()
    x = torch.randn(20, 4, 3)
    with torch.no_grad():
        whole = net(x)
        first, state = net.stream(x[:7], None, {})
        rest, final = net.stream(x[7:], None, state)
    assert state["h"].shape == state["c"].shape == (num_layers, 4, 6)
    torch.testing.assert_close(torch.cat([first, rest]), whole, rtol=1e-6, atol=1e-6)
    assert set(final) == {"h", "c"}


def test_lstm_mlp_stream_in_pieces_gives_the_window() -> None:
    torch.manual_seed(0)
    net = LSTMMLP(n_inputs=3, n_outputs=(2, 4), n_static=5, lstm={"hidden_size": 6}, mlp={"hidden_sizes": [7]}).eval()
    x, c = torch.randn(12, 4, 3), torch.randn(4, 5)
    with torch.no_grad():
        dynamic, static = net(x, c)
        (first, static_first), state = net.stream(x[:5], c, {})
        (rest, _), _ = net.stream(x[5:], c, state)
    torch.testing.assert_close(torch.cat([first, rest]), dynamic, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(static_first, static)
