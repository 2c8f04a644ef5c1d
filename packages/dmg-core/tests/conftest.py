"""Small models, and a tiny run for the command line, shared by the dmg-core tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import Field
from torch import nn

from dmg.core import registry
from dmg.core.components import NetworkConfig
from dmg.core.data import ArrayDataset
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


# --------------------------------------------------------------------------- a tiny run for the CLI


class TinyNet(nn.Module):
    """A pointwise one-hidden-layer network on ``[time, unit, features]``."""

    input_kind = "sequence"
    output_kind = "single"

    class Config(NetworkConfig):
        hidden_size: int = Field(4, ge=1, description="Hidden width.")

    def __init__(self, n_inputs: int, n_outputs: int, hidden_size: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_inputs, hidden_size), nn.Tanh(), nn.Linear(hidden_size, n_outputs))

    @classmethod
    def from_config(cls, config, *, n_inputs, n_outputs, n_static=0):
        return cls(n_inputs, n_outputs, config.hidden_size)

    def forward(self, x):
        return self.net(x)


TINY_DAYS = 120
"""Days of the tiny dataset: 2000-01-01 to 2000-04-29."""


def tiny_dataset(n_units: int = 3, seed: int = 0) -> ArrayDataset:
    """Rain, evaporation and a made-up flow of a few units over :data:`TINY_DAYS` days."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + TINY_DAYS)
    p = (rng.random((n_units, TINY_DAYS)) < 0.4) * rng.exponential(4.0, (n_units, TINY_DAYS))
    pet = np.full((n_units, TINY_DAYS), 2.0)
    q = 0.3 * p + 0.1
    temp = rng.normal(5.0, 6.0, (n_units, TINY_DAYS))  # below zero on some days
    return ArrayDataset.from_dicts(
        {"P": p, "PET": pet, "T": temp, "Q": q},
        [f"u{i}" for i in range(n_units)],
        dates,
        attributes={"wetness": np.linspace(0.0, 1.0, n_units), "slope": np.linspace(-1.0, 1.0, n_units)},
    )


def tiny_config(dataset_path: str, root: str) -> dict:
    """A run config on :func:`tiny_dataset` that ``dmg validate`` checks in a fraction of a second."""
    return {
        "seed": 0,
        "data": {
            "dataset": {"name": "npz", "path": dataset_path},
            "roles": {
                "forcings": {"P": "P", "PET": "PET"},
                "nn_inputs": ["P", "PET"],
                "nn_static": ["wetness"],
                "targets": {"Q": "Q"},
                "transforms": {"P": "log1p"},
            },
            "warmup": 10,
            "train": {"start": "2000-01-11", "end": "2000-02-29"},
            "valid": {"start": "2000-03-01", "end": "2000-03-20"},
            "test": {"start": "2000-03-21", "end": "2000-04-29"},
        },
        "model": {
            "physics": {"name": "tiny_reservoir"},
            "nn": {"name": "tiny_net", "hidden_size": 4},
            "couplings": [{"name": "parameter_learning", "learn": ["k"]}],
        },
        "train": {
            "epochs": 1,
            "batch_size": 3,
            "window": 20,
            "iterations_per_epoch": 1,
            "optimizer": {"name": "adam", "lr": 0.01},
            "progress": False,
        },
        "evaluate": {"metrics": ["rmse"], "plots": False},
        "output": {"root": root, "predictions": "npz"},
    }


@dataclass
class TinyRun:
    """A folder holding the tiny dataset, and the config of a run on it."""

    folder: Path

    @property
    def dataset_path(self) -> Path:
        return self.folder / "data.npz"

    def config(self) -> dict:
        """A fresh copy of the valid config (the caller may change it)."""
        return tiny_config(str(self.dataset_path), str(self.folder / "runs"))

    def write(self, config: dict, name: str = "run.yaml") -> str:
        """``config`` as a YAML file in the folder; returns its path."""
        path = self.folder / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return str(path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Iterator[TinyRun]:
    """The tiny dataset written to a module-wide folder, with ``tiny_reservoir`` and ``tiny_net`` registered."""
    run = TinyRun(tmp_path_factory.mktemp("tiny_run"))
    tiny_dataset().save(run.dataset_path)
    registry.register("dmg.physics", "tiny_reservoir", ToyReservoir)
    registry.register("dmg.nn", "tiny_net", TinyNet)
    yield run
    registry.unregister("dmg.physics", "tiny_reservoir")
    registry.unregister("dmg.nn", "tiny_net")
