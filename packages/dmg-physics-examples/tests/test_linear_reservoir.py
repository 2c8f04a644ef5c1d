"""LinearReservoir: reference solutions, the evaporation law, the process slot and the config."""

from __future__ import annotations

import math

import pydantic
import pytest
import torch
from torch import nn

from dmg.core import Batch, ConfigError, Coupling, DeltaModel, ProcessReplacement
from dmg.examples import LinearReservoir

F64 = torch.float64


def constant(value: float, n_time: int, n_units: int = 2) -> torch.Tensor:
    return torch.full((n_time, n_units), value, dtype=F64)


def test_recession_without_rain_or_evaporation_is_geometric():
    n_time, k, s0 = 30, 0.2, 50.0
    model = LinearReservoir(initial_storage=s0)
    out = model({"P": constant(0.0, n_time), "PET": constant(0.0, n_time)}, {"k": torch.full((2, 1), k, dtype=F64)})
    t = torch.arange(n_time, dtype=F64)[:, None]
    assert torch.allclose(out["Q"], k * s0 * (1 - k) ** t, rtol=1e-12)
    assert torch.allclose(out.state["S"], torch.full((2, 1), s0 * (1 - k) ** n_time, dtype=F64))
    assert torch.equal(out["ET"], torch.zeros_like(out["ET"]))


def test_one_step_matches_the_equations():
    s0, p, pet, k, c = 10.0, 5.0, 2.0, 0.1, 0.8
    model = LinearReservoir(initial_storage=s0)
    out = model(
        {"P": constant(p, 1, 1), "PET": constant(pet, 1, 1)},
        {"k": torch.tensor([[k]], dtype=F64), "c": torch.tensor([[c]], dtype=F64)},
    )
    et = s0 * (1 - math.exp(-c * pet / s0))
    q = k * (s0 - et + p)
    assert out["ET"].item() == pytest.approx(et, rel=1e-12)
    assert out["Q"].item() == pytest.approx(q, rel=1e-12)
    assert out.state["S"].item() == pytest.approx(s0 - et + p - q, rel=1e-12)


def test_evaporation_meets_demand_when_wet_and_never_exceeds_the_store():
    demand = torch.tensor([3.0, 3.0, 3.0, 3.0], dtype=F64)
    storage = torch.tensor([1e4, 10.0, 0.5, 0.0], dtype=F64, requires_grad=True)
    et = LinearReservoir.supply_limited_evaporation(storage, demand)
    assert et[0].item() == pytest.approx(3.0, rel=1e-3)
    assert bool((et <= storage).all()) and bool((et >= 0).all())
    assert et[3].item() == 0.0
    (grad,) = torch.autograd.grad(et.sum(), storage)
    assert bool(torch.isfinite(grad).all())


def test_a_filled_evaporation_slot_replaces_the_default_and_is_capped_at_the_store():
    model = LinearReservoir(initial_storage=5.0)
    forcings = {"P": constant(0.0, 3), "PET": constant(4.0, 3)}
    params = {"k": torch.full((2, 1), 0.1, dtype=F64)}
    seen = {}

    def fixed_two_mm(inputs):
        seen.update(inputs)
        return torch.full_like(inputs["S"], 2.0)

    out = model(forcings, params, processes={"evaporation": fixed_two_mm})
    assert set(seen) == {"S", "PET"}
    assert torch.allclose(out["ET"][0], torch.full((2,), 2.0, dtype=F64))
    stores = [5.0]
    for _ in range(3):
        stores.append((stores[-1] - min(2.0, stores[-1])) * 0.9)
    assert torch.allclose(out["ET"][:, 0], torch.tensor([min(2.0, s) for s in stores[:3]], dtype=F64))
    assert model({"P": constant(0.0, 3), "PET": constant(4.0, 3)}, params)["ET"][0, 0].item() != 2.0


class FixedK(Coupling):
    def before(self, ctx):
        ctx.params["k"] = torch.full((ctx.batch.n_units, ctx.phy_model.nmul), 0.1, dtype=F64)


class RecordingNet(nn.Module):
    """Returns raw 0 (a bounded value of softplus(0) = ln 2 mm/day) and keeps what it was given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.zeros(*x.shape[:-1], 1, dtype=x.dtype)


def test_process_replacement_network_gets_store_and_demand_per_component():
    model = LinearReservoir(nmul=3, initial_storage=20.0)
    net = RecordingNet()
    replacement = ProcessReplacement(slot="evaporation", network="et")
    delta = DeltaModel({"et": net}, model, [FixedK(network=None), replacement])
    batch = Batch(forcings={"P": constant(2.0, 5, 4), "PET": constant(3.0, 5, 4)})
    out = delta(batch)
    assert replacement.n_inputs(model) == 2
    assert len(net.seen) == 5 and net.seen[0].shape == (4, 3, 2)
    assert torch.equal(net.seen[0][..., 0], torch.full((4, 3), 20.0, dtype=F64))  # S
    assert torch.equal(net.seen[0][..., 1], torch.full((4, 3), 3.0, dtype=F64))  # PET, broadcast
    assert torch.allclose(out["ET"], torch.full((5, 4), math.log(2.0), dtype=F64))


def test_config_builds_the_model_and_rejects_bad_options():
    model = LinearReservoir.from_config(LinearReservoir.Config(initial_storage=42.0, nmul=2))
    state = model.initial_state(3)
    assert torch.equal(state["S"], torch.full((3, 2), 42.0))
    assert model.states[0].initial == 42.0 and LinearReservoir.states[0].initial == 10.0
    with pytest.raises(pydantic.ValidationError, match="initial_storage"):
        LinearReservoir.Config(initial_storage=-1.0)
    with pytest.raises(pydantic.ValidationError, match="storage_init"):
        LinearReservoir.Config(storage_init=1.0)
    with pytest.raises(ConfigError, match="initial_storage"):
        LinearReservoir(initial_storage=-1.0)
