"""Differentiable models around the examples learn: known parameters recovered, a wrong process relearned."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmg.core import Coupling, DeltaModel, ParameterLearning, ProcessReplacement
from dmg.core.couplings import CouplingContext
from dmg.examples import LinearReservoir, synthetic


class StaticMLP(nn.Module):
    """Unit attributes ``[unit, A]`` -> raw parameters ``[unit, C]``."""

    input_kind = "static"

    def __init__(self, n_in: int, n_out: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))

    def forward(self, attributes: torch.Tensor) -> torch.Tensor:
        return self.net(attributes)


class PointwiseMLP(nn.Module):
    """Process-slot inputs ``[..., F]`` divided by fixed typical magnitudes -> ``[..., 1]``."""

    def __init__(self, typical: list[float], hidden: int = 16) -> None:
        super().__init__()
        self.register_buffer("typical", torch.tensor(typical))
        self.net = nn.Sequential(nn.Linear(len(typical), hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / self.typical)


class KnownParameters(Coupling):
    """Supplies fixed physical parameters (here: the true ones), so only the slot network learns."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        super().__init__(network=None)
        self.params = params

    def before(self, ctx: CouplingContext) -> None:
        ctx.params.update(self.params)


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are tiny: intra-op threads only add overhead (and load-dependent slowness)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train(model: DeltaModel, batch, target: str, steps: int, lr: float) -> list[float]:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(batch)[target] - batch.targets[target]).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def noise_variance(data: synthetic.SyntheticData, name: str) -> float:
    return float((data.targets[name] - data.clean_targets[name]).pow(2).mean())


def test_parameter_learning_recovers_linear_reservoir_parameters():
    data = synthetic.linear_reservoir_data(n_units=64, n_time=300, warmup=60, noise=0.05, seed=0)
    batch = data.to_batch()
    physics = LinearReservoir()
    coupling = ParameterLearning()
    torch.manual_seed(0)
    model = DeltaModel(StaticMLP(len(data.attribute_names), coupling.n_outputs(physics)), physics, coupling)

    losses = train(model, batch, "Q", steps=150, lr=0.04)

    noise = noise_variance(data, "Q")
    assert losses[0] > 20 * noise, "the untrained model should be far from the data"
    assert losses[-1] < 1.5 * noise, f"loss {losses[-1]:.4g} vs noise variance {noise:.4g}"
    ctx = CouplingContext(batch=batch, networks=model.networks, phy_model=physics)
    coupling.before(ctx)
    for name in ("k", "c"):
        learned = ctx.params[name].detach()
        relative_error = ((learned - data.true_params[name]).abs() / data.true_params[name]).median()
        assert float(relative_error) < 0.05, f"median relative error of {name}: {float(relative_error):.3f}"


def supply_and_wetness_limited(inputs):
    """The 'true' evaporation (mm/day): the default law is wrong for it, ET = PET * S / (S + 25 mm)."""
    return inputs["PET"] * inputs["S"] / (inputs["S"] + 25.0)


def test_process_replacement_learns_evaporation_the_default_gets_wrong():
    data = synthetic.linear_reservoir_data(
        n_units=32, n_time=260, warmup=60, noise=0.05, seed=1, evaporation=supply_and_wetness_limited
    )
    batch = data.to_batch()
    physics = LinearReservoir()
    with torch.no_grad():
        default = physics(batch.forcings, data.true_params, warmup=batch.warmup)
    default_loss = float((default["Q"] - batch.targets["Q"]).pow(2).mean())
    torch.manual_seed(0)
    model = DeltaModel(
        {"et": PointwiseMLP([50.0, 5.0])},
        physics,
        [KnownParameters(data.true_params), ProcessReplacement(slot="evaporation", network="et")],
    )

    losses = train(model, batch, "Q", steps=160, lr=0.1)

    noise = noise_variance(data, "Q")
    assert default_loss > 20 * noise, "the default evaporation should be clearly wrong for these data"
    assert losses[-1] < 1.5 * noise, f"loss {losses[-1]:.4g} vs noise variance {noise:.4g}"
    with torch.no_grad():
        learned_et = model(batch)["ET"]
        true_et = physics(
            batch.forcings,
            data.true_params,
            warmup=batch.warmup,
            processes={"evaporation": supply_and_wetness_limited},
        )["ET"]
    et_error = float((learned_et - true_et).abs().mean() / true_et.mean())
    assert et_error < 0.1, f"mean absolute ET error is {et_error:.1%} of mean ET"
