"""SoilCarbon: first-order decay, the Q10 response, steady state, conservation and the slot."""

from __future__ import annotations

import math

import pydantic
import pytest
import torch

from dmg.core import ConfigError
from dmg.examples import SoilCarbon

F64 = torch.float64
PARAMS = {"k_fast": 0.01, "k_slow": 2e-4, "transfer": 0.3, "Q10": 2.0}


def params(n_units: int = 1, **changes: float) -> dict[str, torch.Tensor]:
    return {k: torch.full((n_units, 1), v, dtype=F64) for k, v in {**PARAMS, **changes}.items()}


def forcings(litter: float, temperature: float, n_time: int, n_units: int = 1) -> dict[str, torch.Tensor]:
    return {
        "litter": torch.full((n_time, n_units), litter, dtype=F64),
        "T": torch.full((n_time, n_units), temperature, dtype=F64),
    }


def test_pools_decay_first_order_at_the_reference_temperature():
    model = SoilCarbon(initial_fast=100.0, initial_slow=0.0)
    n_time = 50
    out = model(forcings(0.0, 15.0, n_time), params())
    fast = 100.0 * math.exp(-PARAMS["k_fast"] * n_time)
    assert out.state["C_fast"].item() == pytest.approx(fast, rel=1e-12)
    days = torch.arange(n_time, dtype=F64)[:, None]
    decayed = 100.0 * torch.exp(-PARAMS["k_fast"] * days) * (1 - math.exp(-PARAMS["k_fast"]))
    slow_decay = out["Rh"] - (1 - PARAMS["transfer"]) * decayed
    assert torch.allclose(out["Rh"][:1], (1 - PARAMS["transfer"]) * decayed[:1], rtol=1e-12)  # slow pool empty
    assert bool((slow_decay[1:] > 0).all())  # then the slow pool, fed by transfer, respires too


@pytest.mark.parametrize(("warming", "factor"), [(0.0, 1.0), (10.0, 2.0), (-10.0, 0.5), (20.0, 4.0)])
def test_q10_multiplies_decay_rates_per_ten_degrees(warming, factor):
    model = SoilCarbon(initial_fast=100.0, initial_slow=1000.0, reference_temperature=12.0)
    assert model.q10_response(torch.tensor(12.0 + warming), torch.tensor(2.0)).item() == pytest.approx(factor)
    out = model(forcings(0.0, 12.0 + warming, 1), params())
    k_fast, k_slow = PARAMS["k_fast"] * factor, PARAMS["k_slow"] * factor
    expected = (1 - PARAMS["transfer"]) * 100.0 * (1 - math.exp(-k_fast)) + 1000.0 * (1 - math.exp(-k_slow))
    assert out["Rh"].item() == pytest.approx(expected, rel=1e-12)


def test_steady_state_stays_put_and_respires_the_litter():
    model = SoilCarbon()
    p = params(n_units=3, Q10=2.5)
    litter = torch.tensor([[0.5], [1.0], [2.0]], dtype=F64)
    temperature = 20.0
    modifier = model.q10_response(torch.tensor(temperature, dtype=F64), p["Q10"])
    start = model.steady_state(litter, p, modifier)
    f = {"litter": litter.T.expand(200, 3), "T": torch.full((200, 3), temperature, dtype=F64)}
    out = model(f, p, state=start)
    for name in ("C_fast", "C_slow"):
        assert torch.allclose(out.state[name], start[name], rtol=1e-10)
    assert torch.allclose(out["Rh"], f["litter"], rtol=1e-10)


def test_carbon_is_conserved_with_varying_forcing():
    model = SoilCarbon(nmul=3)
    g = torch.Generator().manual_seed(3)
    f = {
        "litter": 3 * torch.rand(365, 4, generator=g, dtype=F64),
        "T": -5 + 35 * torch.rand(365, 4, generator=g, dtype=F64),
    }
    p = {k: v.expand(4, 3).clone() for k, v in params(1).items()}
    start = model.initial_state(4, dtype=F64)
    out = model(f, p)
    stored = sum(out.state[n].mean(-1) - start[n].mean(-1) for n in ("C_fast", "C_slow"))
    assert torch.allclose(f["litter"].sum(0) - out["Rh"].sum(0), stored, rtol=1e-10, atol=1e-9)


def test_temperature_response_slot_replaces_q10():
    model = SoilCarbon()
    f = forcings(1.0, 25.0, 10)
    flat = model(f, params(), processes={"temperature_response": lambda inputs: torch.ones_like(inputs["T"])})
    at_reference = model(forcings(1.0, 15.0, 10), params())
    assert torch.allclose(flat["Rh"], at_reference["Rh"], rtol=1e-12)


def test_config_sets_reference_temperature_and_pools():
    model = SoilCarbon.from_config(SoilCarbon.Config(reference_temperature=10.0, initial_fast=50.0, initial_slow=500.0))
    assert model.config.reference_temperature == 10.0
    state = model.initial_state(1)
    assert state["C_fast"].item() == 50.0 and state["C_slow"].item() == 500.0
    with pytest.raises(pydantic.ValidationError, match="initial_slow"):
        SoilCarbon.Config(initial_slow=-1.0)
    with pytest.raises(ConfigError, match="initial_fast"):
        SoilCarbon(initial_fast=-5.0)
