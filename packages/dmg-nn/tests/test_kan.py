"""KAN: the B-spline and RBF bases against known values, and the layer's formula."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from dmg.core.errors import ConfigError, SpecError
from dmg.nn import KAN
from dmg.nn.kan import BSplineBasis, KANLayer, RBFBasis


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_bsplines_sum_to_one_on_the_grid(order: int) -> None:
    basis = BSplineBasis(n_intervals=5, order=order, low=-1.0, high=2.0)
    x = torch.linspace(-1.0, 2.0 - 1e-9, 301, dtype=torch.float64)
    values = basis(x)
    assert values.shape == (301, 5 + order)
    torch.testing.assert_close(values.sum(-1), torch.ones(301, dtype=torch.float64))
    assert bool((values >= 0).all())


def test_cubic_bspline_values_at_a_knot() -> None:
    """At a knot, the three cubic B-splines that overlap it take 1/6, 2/3, 1/6."""
    basis = BSplineBasis(n_intervals=4, order=3, low=0.0, high=4.0)
    values = basis(torch.tensor([2.0], dtype=torch.float64))[0]
    nonzero = values[values > 1e-12]
    torch.testing.assert_close(nonzero, torch.tensor([1 / 6, 2 / 3, 1 / 6], dtype=torch.float64))


def test_linear_bspline_is_a_hat_function() -> None:
    basis = BSplineBasis(n_intervals=2, order=1, low=0.0, high=2.0)
    x = torch.tensor([0.0, 0.25, 1.0, 1.5], dtype=torch.float64)
    # basis k peaks at knot k - 1 + low: hats centred on 0, 1, 2
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(basis(x), expected)


def test_bsplines_vanish_far_outside_the_grid() -> None:
    basis = BSplineBasis(n_intervals=4, order=3, low=-1.0, high=1.0)
    assert torch.equal(basis(torch.tensor([-10.0, 10.0])), torch.zeros(2, 7))


def test_rbf_basis_values() -> None:
    basis = RBFBasis(n_centres=3, low=0.0, high=2.0)
    values = basis(torch.tensor([1.0, 1.5], dtype=torch.float64))
    expected = torch.exp(-torch.tensor([[1.0, 0.0, 1.0], [2.25, 0.25, 0.25]], dtype=torch.float64))
    torch.testing.assert_close(values, expected)


def test_kan_layer_formula() -> None:
    """y_j = sum_i (w_ji silu(x_i) + sum_k a_jik B_k(x_i)) + b_j."""
    torch.manual_seed(0)
    layer = KANLayer(3, 2, BSplineBasis(4, 3, -2.0, 2.0), "silu").double()
    x = torch.rand(5, 3, dtype=torch.float64) * 3 - 1.5
    basis = layer.basis(x)  # [5, 3, 7]
    a = layer.spline_weight.reshape(2, 3, 7)
    expected = torch.einsum("nik,jik->nj", basis, a) + torch.nn.functional.silu(x) @ layer.base.weight.t()
    torch.testing.assert_close(layer(x), expected + layer.base.bias)


def test_kan_with_unit_spline_weights_counts_its_inputs() -> None:
    """Splines summing to one on the grid: unit coefficients and no base term give n_inputs."""
    layer = KANLayer(4, 1, BSplineBasis(3, 2, -1.0, 1.0), "silu")
    with torch.no_grad():
        layer.spline_weight.fill_(1.0)
        layer.base.weight.zero_()
        layer.base.bias.zero_()
    torch.testing.assert_close(layer(torch.rand(6, 4) * 1.8 - 0.9), torch.full((6, 1), 4.0))


def test_kan_config_validation() -> None:
    with pytest.raises(ValidationError, match="low < high"):
        KAN.Config(grid_range=(1.0, -1.0))
    with pytest.raises(ValidationError, match="at least 2 for the rbf basis"):
        KAN.Config(basis="rbf", grid_size=1)
    with pytest.raises(ConfigError, match="grid_size must be at least 2 for the rbf basis"):
        KAN(n_inputs=2, n_outputs=1, basis="rbf", grid_size=1)
    with pytest.raises(SpecError, match="grid_size must be at least 2"):
        RBFBasis(n_centres=1, low=-2.0, high=2.0)
