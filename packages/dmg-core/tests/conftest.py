"""Small models shared by the dmg-core tests."""

from __future__ import annotations

import pytest
import torch

from dmg.core.testing.models import ToyReservoir, ToyScaling

Reservoir = ToyReservoir
Doubler = ToyScaling


def make_forcings(n_time: int, n_units: int, seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    wet = (torch.rand(n_time, n_units, generator=g) < 0.35).float()
    p = wet * -5.0 * torch.log(torch.rand(n_time, n_units, generator=g))  # exponential, mean 5 mm/day
    day = torch.arange(n_time, dtype=torch.float32)[:, None]
    pet = (2.5 + 2.0 * torch.sin(2 * torch.pi * day / 365.0)).expand(n_time, n_units).clone()
    return {"P": p.to(dtype), "PET": pet.to(dtype)}


@pytest.fixture
def reservoir_cls():
    return Reservoir


@pytest.fixture
def doubler_cls():
    return Doubler


@pytest.fixture
def forcings_factory():
    return make_forcings
