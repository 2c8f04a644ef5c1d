"""Every network of the zoo trains inside a dmg.core.DeltaModel on a small reservoir model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dmg.core import (
    Batch,
    CouplingContext,
    DeltaModel,
    Parameter,
    ParameterLearning,
    Processes,
    ProcessReplacement,
    ProcessSlot,
    State,
    StepModel,
    Variable,
)
from dmg.core.registry import get
from dmg.nn import NETWORKS

N_TIME, N_UNITS, WARMUP = 50, 12, 10


class Reservoir(StepModel):
    """A linear reservoir: a fraction ``a`` of rain enters the store, a fraction ``k`` of the store leaves."""

    forcings = (Variable("P", "mm/day", "rain", typical_range=(0.0, 10.0)),)
    physical_parameters = (
        Parameter("k", 0.05, 0.8, "1/day", "outflow rate", default=0.3),
        Parameter("a", 0.2, 1.0, "-", "fraction of rain entering the store", default=0.6),
    )
    states = (State("S", "mm", "storage", initial=2.0),)
    outputs = (Variable("Q", "mm/day", "outflow"),)
    slots = (ProcessSlot("rate", inputs=("S",), unit="1/day", low=0.0, high=1.0, description="outflow rate"),)

    def step(self, state, forcing_t, params_t, processes: Processes):
        s = state["S"] + params_t["a"] * forcing_t["P"]
        q = processes.compute("rate", params_t["k"], S=s) * s
        return {"S": s - q}, {"Q": q}


def true_k(c: torch.Tensor) -> torch.Tensor:
    """The outflow rate of each unit, 1/day, from its attributes ``c`` ``[unit, 2]``."""
    return 0.1 + 0.5 * torch.sigmoid(3 * c[:, 0])


def make_batch() -> Batch:
    """Rain, two attributes ``c`` in [-1, 1], and the outflow of the true parameters
    ``k = true_k(c)`` and ``a = 0.6`` (its default)."""
    g = torch.Generator().manual_seed(0)
    rain = torch.rand(N_TIME, N_UNITS, generator=g) * 10 * (torch.rand(N_TIME, N_UNITS, generator=g) < 0.4)
    c = 2 * torch.rand(N_UNITS, 2, generator=g) - 1
    with torch.no_grad():
        q = Reservoir()({"P": rain}, {"k": true_k(c).unsqueeze(-1)}, warmup=WARMUP)["Q"]
    nn_inputs = torch.cat([(rain.unsqueeze(-1) - 4) / 4, c.expand(N_TIME, N_UNITS, 2)], dim=-1)
    return Batch(forcings={"P": rain}, nn_inputs=nn_inputs, static_inputs=c, targets={"Q": q}, warmup=WARMUP)


CONFIGS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 16, "recurrent_dropout": 0.0},
    "mlp": {"hidden_sizes": [16]},
    "lstm_mlp": {"lstm": {"hidden_size": 16, "recurrent_dropout": 0.0}, "mlp": {"hidden_sizes": [16]}},
    "ealstm": {"hidden_size": 16},
    "transformer": {"d_model": 16, "n_heads": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.0},
    "tcn": {"hidden_size": 16, "num_levels": 3},
    "kan": {"hidden_sizes": [8], "grid_size": 5},
}


def train(model: DeltaModel, batch: Batch, steps: int, lr: float) -> tuple[float, float]:
    """Adam on the MSE of Q; return the loss before and after."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps + 1):
        optimizer.zero_grad()
        loss = ((model(batch)["Q"] - batch.targets["Q"]) ** 2).mean()
        losses.append(float(loss.detach()))
        loss.backward()
        optimizer.step()
    return losses[0], losses[-1]


def test_configs_cover_the_zoo() -> None:
    assert set(CONFIGS) == set(NETWORKS)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_network_learns_parameters_in_a_delta_model(name: str) -> None:
    cls = get("dmg.nn", name)
    config = cls.Config.model_validate(CONFIGS[name])
    reads_sequence = getattr(config, "input_kind", cls.input_kind) != "static"
    # sequence networks supply `a` as a time series, static ones supply static parameters only
    phy = Reservoir(dynamic=("a",) if reads_sequence else ())
    coupling = ParameterLearning()
    batch = make_batch()
    torch.manual_seed(0)
    net = cls.from_config(
        config,
        n_inputs=batch.nn_inputs.shape[-1],
        n_outputs=coupling.n_outputs(phy, split=cls.output_kind == "split"),
        n_static=batch.static_inputs.shape[-1],
    )
    model = DeltaModel(net, phy, coupling)
    before, after = train(model, batch, steps=40, lr=0.02)
    assert after < 0.05 * before, f"{name}: loss {before:.4f} -> {after:.4f}"
    ctx = CouplingContext(batch=batch, networks=model.networks, phy_model=phy)
    with torch.no_grad():
        coupling.before(ctx)
    error = float((ctx.params["k"].squeeze(-1) - true_k(batch.static_inputs)).abs().max())
    assert error < 0.08, f"{name}: learned k is off by up to {error:.3f} 1/day"


@pytest.mark.parametrize("name", ["mlp", "kan"])
def test_pointwise_network_learns_a_process_slot(name: str) -> None:
    cls = get("dmg.nn", name)
    phy = Reservoir()
    coupling = ProcessReplacement(slot="rate", static_context=True)
    batch = make_batch()
    torch.manual_seed(0)
    net = cls.from_config(CONFIGS[name], n_inputs=coupling.n_inputs(phy, n_static=2), n_outputs=1, n_static=0)
    model = DeltaModel(net, phy, coupling)
    before, after = train(model, batch, steps=40, lr=0.02)
    assert after < 0.1 * before, f"{name}: loss {before:.4f} -> {after:.4f}"
