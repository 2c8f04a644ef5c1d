"""Inputs of the training-minibatch comparison, shared by both sides (imports only torch).

One δHBV 1.0 minibatch as published: an LSTM of 256 hidden units reading 3 forcings and 35 static
attributes per step supplies the parameters of HBV (16 components, dynamic BETA and BETAET) and of
the gamma routing, over 100 units and 365 days after a 365-day spin-up; the loss is the mean squared
error of routed streamflow.
"""

from __future__ import annotations

import math

import torch

UNITS = 100
DAYS = 365
WARMUP = 365
FEATURES = 38
HIDDEN = 256
NMUL = 16
REPEATS = 5


def make_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """Forcings ``P``, ``T``, ``PET`` ``[time, unit]`` (mm/day, °C), network inputs ``[time, unit, 38]`` and
    observations ``[days, unit]``."""
    g = torch.Generator().manual_seed(seed)
    n_time = WARMUP + DAYS
    day = torch.arange(n_time, dtype=torch.float32)[:, None]
    temperature = (
        8.0 + 14.0 * torch.sin(2 * math.pi * (day - 110.0) / 365.0) + 3.0 * torch.randn(n_time, UNITS, generator=g)
    )
    wet = torch.rand(n_time, UNITS, generator=g) < 0.35
    precipitation = wet * -8.0 * torch.log(torch.rand(n_time, UNITS, generator=g))
    pet = (2.5 + 2.0 * torch.sin(2 * math.pi * (day - 80.0) / 365.0)).clamp_min(0.1).expand(n_time, UNITS).clone()
    nn_inputs = torch.randn(n_time, UNITS, FEATURES, generator=g)
    observed = torch.rand(DAYS, UNITS, generator=g) * 3.0
    return {"P": precipitation, "T": temperature, "PET": pet, "nn_inputs": nn_inputs, "observed": observed}
