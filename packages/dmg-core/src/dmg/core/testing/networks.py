"""Small networks for tests of couplings and of running models: deterministic, seeded, cheap."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StaticLinear"]


class StaticLinear(nn.Module):
    """Raw parameters from static attributes only: one linear layer, the same in a window run and step by step.

    Parameters
    ----------
    n_outputs
        Raw output channels (e.g. ``ParameterLearning().n_outputs(physics)``).
    n_attributes
        Static attributes it reads.
    seed
        Seed of its initial weights.
    """

    input_kind = "static"
    output_kind = "single"

    def __init__(self, n_outputs: int, n_attributes: int = 2, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(n_attributes, n_outputs)
        with torch.no_grad():
            bound = 1.0 / n_attributes**0.5
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, static: torch.Tensor) -> torch.Tensor:
        """``[unit, n_outputs]`` from ``static`` ``[unit, n_attributes]``."""
        return self.linear(static)
