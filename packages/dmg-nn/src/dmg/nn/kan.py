"""The Kolmogorov–Arnold network (:class:`KAN`): learnable univariate functions on every edge.

A KAN layer maps ``x`` ``[..., n_in]`` to ``y`` ``[..., n_out]`` with

    y_j = sum_i ( w_ji * base(x_i) + sum_k a_jik * B_k(x_i) )

where ``base`` is a fixed activation (SiLU by default) and ``B_k`` a basis of univariate
functions on ``grid_range``: uniform B-splines of ``spline_order`` on ``grid_size`` intervals,
or Gaussian radial basis functions centred on ``grid_size`` points.  Outside ``grid_range`` the
B-splines vanish and only the ``base`` term remains, so inputs should be normalised.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from dmg.core.components import NetworkConfig
from dmg.core.errors import SpecError
from dmg.nn.base import (
    Activation,
    PointwiseNetwork,
    activation_layer,
)

Basis = Literal["bspline", "rbf"]


class KANConfig(NetworkConfig):
    """Options of :class:`KAN`."""

    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [32], description="Width of each hidden layer, in order; [] gives one KAN layer."
    )
    basis: Basis = Field("bspline", description="Univariate basis: 'bspline' (uniform B-splines) or 'rbf' (Gaussians).")
    grid_size: int = Field(
        8, ge=1, description="B-spline: intervals on grid_range; rbf: number of centres (at least 2)."
    )
    spline_order: int = Field(3, ge=0, description="Polynomial order of the B-splines (3: cubic).")
    grid_range: tuple[float, float] = Field(
        (-2.0, 2.0), description="Interval [low, high] the basis covers; inputs should mostly fall inside."
    )
    base_activation: Activation = Field("silu", description="Fixed activation of the residual term of each edge.")
    output_activation: Activation = Field("identity", description="Activation applied to the outputs.")
    input_kind: Literal["static", "sequence"] = Field(
        "static",
        description="What the network reads when it supplies parameters: 'static' attributes [unit, attributes] "
        "or the 'sequence' [time, unit, features], mapped step by step.",
    )

    @field_validator("grid_range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"grid_range must be [low, high] with low < high, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _enough_centres(self) -> KANConfig:
        if self.basis == "rbf" and self.grid_size < 2:
            raise ValueError(f"grid_size must be at least 2 for the rbf basis, got {self.grid_size}")
        return self


def _check_grid(who: str, size: int, minimum: int, low: float, high: float) -> None:
    if size < minimum:
        raise SpecError(f"{who}: grid_size must be at least {minimum}, got {size}")
    if not low < high:
        raise SpecError(f"{who}: grid_range must be [low, high] with low < high, got [{low}, {high}]")


class BSplineBasis(nn.Module):
    """Uniform B-splines of order ``order`` on ``n_intervals`` intervals of ``[low, high]``.

    There are ``n_intervals + order`` basis functions; on ``[low, high]`` they sum to one.
    Evaluated with the Cox–de Boor recursion on knots extended by ``order`` intervals on each side.
    """

    def __init__(self, n_intervals: int, order: int, low: float, high: float) -> None:
        super().__init__()
        _check_grid("BSplineBasis", n_intervals, 1, low, high)
        self.order = order
        self.n_basis = n_intervals + order
        step = (high - low) / n_intervals
        knots = low + step * torch.arange(-order, n_intervals + order + 1, dtype=torch.float64)
        self.register_buffer("knots", knots, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Basis values ``[..., n_basis]`` at ``x`` ``[...]``."""
        t = self.knots.to(x.dtype)
        x = x.unsqueeze(-1)
        basis = ((x >= t[:-1]) & (x < t[1:])).to(x.dtype)
        for p in range(1, self.order + 1):
            left = (x - t[: -(p + 1)]) / (t[p:-1] - t[: -(p + 1)]) * basis[..., :-1]
            right = (t[p + 1 :] - x) / (t[p + 1 :] - t[1:-p]) * basis[..., 1:]
            basis = left + right
        return basis


class RBFBasis(nn.Module):
    """Gaussian radial basis functions ``exp(-((x - c_k) / h)^2)`` on ``n_centres`` evenly spaced centres.

    The width ``h`` is the spacing of the centres.
    """

    def __init__(self, n_centres: int, low: float, high: float) -> None:
        super().__init__()
        _check_grid("RBFBasis", n_centres, 2, low, high)
        self.n_basis = n_centres
        self.width = (high - low) / (n_centres - 1)
        self.register_buffer("centres", torch.linspace(low, high, n_centres, dtype=torch.float64), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Basis values ``[..., n_basis]`` at ``x`` ``[...]``."""
        return torch.exp(-(((x.unsqueeze(-1) - self.centres.to(x.dtype)) / self.width) ** 2))


class KANLayer(nn.Module):
    """One Kolmogorov–Arnold layer ``[..., n_in] -> [..., n_out]`` (see the module docstring)."""

    def __init__(self, n_in: int, n_out: int, basis: nn.Module, base_activation: str) -> None:
        super().__init__()
        self.basis = basis
        self.base_activation = activation_layer(base_activation)
        self.base = nn.Linear(n_in, n_out)
        n_basis = basis.n_basis
        self.spline_weight = nn.Parameter(torch.randn(n_out, n_in * n_basis) * (0.1 / n_in**0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spline = self.basis(x).flatten(-2) @ self.spline_weight.t()
        return self.base(self.base_activation(x)) + spline


class KAN(PointwiseNetwork):
    """Kolmogorov–Arnold network mapping ``[..., n_inputs]`` to ``[..., n_outputs]`` pointwise.

    A stack of :class:`KANLayer` of widths ``n_inputs -> *hidden_sizes -> n_outputs``.
    Like :class:`~dmg.nn.MLP`, it maps static attributes (the default ``input_kind``), each
    step of a sequence, or process-slot inputs alike.

    Parameters
    ----------
    config
        A :class:`KANConfig`, a mapping of its options, or ``None`` (the options are then ``options``).
    n_inputs
        Input features (last dimension) when reading a sequence, or static attributes when
        ``n_static`` is not given.
    n_outputs
        Output features.
    n_static
        Static attributes: the input size when ``input_kind`` is ``"static"`` (0: use ``n_inputs``).
    **options
        Options of :class:`KANConfig` (``hidden_sizes``, ``basis``, ``grid_size``, ``spline_order``,
        ``grid_range``, ``base_activation``, ``output_activation``, ``input_kind``).

    Examples
    --------
    >>> net = KAN(n_inputs=4, n_outputs=2, hidden_sizes=[8], grid_size=5)
    >>> net(torch.zeros(10, 4)).shape
    torch.Size([10, 2])
    """

    input_kind = "static"
    output_kind = "single"
    pointwise = True
    Config = KANConfig
    config: KANConfig

    def __init__(
        self,
        config: KANConfig | Mapping[str, Any] | None = None,
        /,
        *,
        n_inputs: int,
        n_outputs: int,
        n_static: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(config, n_inputs=n_inputs, n_outputs=n_outputs, n_static=n_static, **options)
        cfg = self.config
        widths = [self.n_inputs, *cfg.hidden_sizes, self.n_outputs]
        low, high = cfg.grid_range

        def make_basis() -> nn.Module:
            if cfg.basis == "bspline":
                return BSplineBasis(cfg.grid_size, cfg.spline_order, low, high)
            if cfg.basis == "rbf":
                return RBFBasis(cfg.grid_size, low, high)
            raise SpecError(f"{type(self).__name__}: unknown basis {cfg.basis!r}; use 'bspline' or 'rbf'")

        self.layers = nn.Sequential(
            *(KANLayer(n_in, n_out, make_basis(), cfg.base_activation) for n_in, n_out in itertools.pairwise(widths))
        )
        self.output_activation = activation_layer(cfg.output_activation)
