"""Transformer and TCN: masks, position encoding and the exact span of inputs each output sees."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from dmg.nn import TCN, Transformer
from dmg.nn.transformer import causal_mask, sinusoidal_encoding


def dependence(net: torch.nn.Module, n_time: int, t: int, n_inputs: int = 2) -> torch.Tensor:
    """Boolean ``[n_time]``: whether output step ``t`` has a non-zero gradient w.r.t. input step ``s``."""
    x = torch.randn(n_time, 3, n_inputs, dtype=torch.float64, requires_grad=True)
    net(x)[t].sum().backward()
    return x.grad.abs().sum(dim=(1, 2)) > 0


def test_causal_mask_hides_the_future_and_steps_beyond_the_window() -> None:
    expected = torch.tensor(
        [
            [False, True, True, True],
            [False, False, True, True],
            [True, False, False, True],
            [True, True, False, False],
        ]
    )
    assert torch.equal(causal_mask(4, window=2), expected)
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).triu(1))


def test_sinusoidal_encoding_values() -> None:
    pe = sinusoidal_encoding(50, 6, dtype=torch.float64, device=torch.device("cpu"))
    t = torch.arange(50, dtype=torch.float64)
    torch.testing.assert_close(pe[:, 0], torch.sin(t))
    torch.testing.assert_close(pe[:, 1], torch.cos(t))
    torch.testing.assert_close(pe[:, 4], torch.sin(t / 10000 ** (4 / 6)))
    odd = sinusoidal_encoding(5, 5, dtype=torch.float32, device=torch.device("cpu"))
    assert odd.shape == (5, 5) and odd.dtype == torch.float32


@pytest.mark.parametrize(("window", "num_layers"), [(None, 1), (4, 1), (3, 2)])
def test_transformer_sees_exactly_its_context(window: int | None, num_layers: int) -> None:
    torch.manual_seed(0)
    net = (
        Transformer(
            n_inputs=2,
            n_outputs=1,
            d_model=8,
            n_heads=2,
            num_layers=num_layers,
            dim_feedforward=16,
            dropout=0.0,
            context_window=window,
        )
        .double()
        .eval()
    )
    n_time, t = 16, 12
    span = n_time if window is None else num_layers * (window - 1) + 1
    expected = torch.zeros(n_time, dtype=torch.bool)
    expected[max(0, t - span + 1) : t + 1] = True
    assert torch.equal(dependence(net, n_time, t), expected)


def test_transformer_position_encoding_distinguishes_steps() -> None:
    """Equal inputs at every step still give step-dependent outputs (the encoding tells them apart)."""
    torch.manual_seed(0)
    net = Transformer(n_inputs=2, n_outputs=1, d_model=8, n_heads=2, num_layers=1, dropout=0.0).eval()
    out = net(torch.ones(6, 2, 2))
    assert not torch.allclose(out[1:], out[:1].expand(5, 2, 1))


def test_transformer_config_checks_heads() -> None:
    with pytest.raises(ValidationError, match=r"d_model \(10\) must be a multiple of n_heads \(4\)"):
        Transformer.Config(d_model=10, n_heads=4)


@pytest.mark.parametrize(("kernel_size", "num_levels"), [(2, 3), (3, 2)])
def test_tcn_receptive_field_is_exact(kernel_size: int, num_levels: int) -> None:
    torch.manual_seed(0)
    net = (
        TCN(n_inputs=2, n_outputs=1, hidden_size=6, num_levels=num_levels, kernel_size=kernel_size, activation="tanh")
        .double()
        .eval()
    )
    field = net.receptive_field
    assert field == 1 + 2 * (kernel_size - 1) * (2**num_levels - 1)
    n_time, t = field + 10, field + 5
    expected = torch.zeros(n_time, dtype=torch.bool)
    expected[t - field + 1 : t + 1] = True
    assert torch.equal(dependence(net, n_time, t), expected)


def test_transformer_handles_long_series() -> None:
    net = Transformer(n_inputs=3, n_outputs=2, d_model=8, n_heads=2, num_layers=1).eval()
    with torch.no_grad():
        out = net(torch.randn(730, 2, 3))
    assert out.shape == (730, 2, 2) and bool(torch.isfinite(out).all())
