"""The hourly δHBV models: test kit, mass balance with the infiltration-excess stores, relation to the
daily step, configuration and state handover."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dmg.core import Chain, registry
from dmg.core.config import resolve_component
from dmg.core.testing import Case, PhysicsModelTestKit, check_gradcheck, check_mass_balance
from dmg.hydro.hbv import HBV2, HBV2Hourly, HBV21Hourly
from dmg.hydro.hbv.hourly_reference import load_hourly_reference
from dmg.hydro.hbv.parameters import CORE_PARAMETERS
from dmg.hydro.hbv.testing import realistic_case, realistic_hourly_case

REFERENCE = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "hbv_hourly_reference_hydrodl2_1.4.0.npz"
).resolve()
PUBLISHED_DYNAMIC = ["BETA", "K0", "BETAET"]
CORE = [p.name for p in CORE_PARAMETERS]
RATE_PARAMETERS = ("K0", "K1", "K2", "PERC", "CFMAX", "C", "RT")
"""Parameters per day: scaled to per hour, they make the daily step an hourly one."""


def storm_case(model, dtype: torch.dtype = torch.float64) -> Case:
    """Eight hours of two units: a storm beyond the infiltration capacity on a warm unit and
    snowfall then melt on a cold one."""
    case = realistic_hourly_case(model, n_time=8, n_units=2, seed=3, u_range=(0.2, 0.8), dtype=dtype)
    case.forcings["P"] = torch.tensor([[0.0, 2.0, 15.0, 40.0, 60.0, 3.0, 0.5, 0.0]] * 2, dtype=dtype).T
    case.forcings["T"] = torch.stack(
        [torch.full((8,), 18.0, dtype=dtype), torch.linspace(-3.0, 6.0, 8, dtype=dtype)], dim=1
    )
    return case


def snow_then_storm_case(model) -> Case:
    """Six hours of one unit in float64: snowfall, then a storm beyond the infiltration capacity
    that rains on the snow and melts it."""
    case = realistic_hourly_case(model, n_time=6, n_units=1, seed=3, u_range=(0.2, 0.8), dtype=torch.float64)
    case.forcings["P"] = torch.tensor([[3.0, 2.0, 15.0, 40.0, 60.0, 1.0]], dtype=torch.float64).T
    case.forcings["T"] = torch.tensor([[-4.0, -3.0, 4.0, 6.0, 8.0, 8.0]], dtype=torch.float64).T
    return case


class _HourlyKit(PhysicsModelTestKit):
    def make_case(self, model):
        return realistic_hourly_case(model)

    def test_gradcheck(self):
        """Float64 finite differences through snowfall, melt and a storm beyond the infiltration
        capacity, on one component with one time-varying parameter (every output with respect to
        every parameter: a small case keeps the Jacobian small)."""
        model = type(self.make_model())(nmul=1, dynamic=["K0"])
        check_gradcheck(model, snow_then_storm_case(model), self.engine)


class TestHBV2HourlyKit(_HourlyKit):
    def make_model(self):
        return HBV2Hourly(nmul=2, dynamic=PUBLISHED_DYNAMIC)


class TestHBV21HourlyKit(_HourlyKit):
    def make_model(self):
        return HBV21Hourly(nmul=2, dynamic=PUBLISHED_DYNAMIC)


# ------------------------------------------------------------------ declarations
def test_parameters_in_published_order():
    assert HBV2Hourly().parameter_spec.names == (*CORE, "BETAET", "C", "RT", "AC", "F0", "FMIN", "ALPHA")
    spec = HBV21Hourly().parameter_spec
    assert spec.names == (*CORE, "BETAET", "C", "RT", "AC", "F0", "ALPHA", "KS")
    assert (spec["K0"].high, HBV2Hourly().parameter_spec["K0"].high) == (12.0, 0.9)
    assert (spec["F0"].low, spec["F0"].high, spec["ALPHA"].high) == (120.0, 2880.0, 1.0)
    assert HBV2Hourly().parameter_spec["ALPHA"].high == 5.0


def test_states_outputs_and_units():
    assert HBV2Hourly().state_names == ("SP", "MW", "SM", "SUZ", "SLZ")
    assert HBV21Hourly().state_names == ("SP", "MW", "SM", "SUZ", "SLZ", "SIE1", "SIE2")
    assert all(s.initial == 0.001 for s in HBV21Hourly().states)
    model = HBV21Hourly()
    units = {v.name: v.unit for v in model.outputs}
    assert units["Q"] == units["IE"] == units["QIE"] == units["AET"] == "mm/h"
    assert {v.name: v.unit for v in model.forcings} == {"P": "mm/h", "T": "°C", "PET": "mm/h"}
    assert "QIE" not in HBV2Hourly().output_names
    assert model.mass_balance.storages[-2:] == ("SIE1", "SIE2")
    assert model.warmup_mode == "inline" and model.config.elevation_threshold


# ------------------------------------------------------------------- mass balance
@pytest.mark.parametrize("cls", [HBV2Hourly, HBV21Hourly])
def test_mass_balance_over_thirty_days(cls):
    model = cls(nmul=2, dynamic=PUBLISHED_DYNAMIC)
    case = realistic_hourly_case(model, n_time=30 * 24, n_units=5, seed=1)
    out = model(case.forcings, case.params, attributes=case.attributes)
    assert float(out["IE"].sum()) > 0.02 * float(case.forcings["P"].sum()), "no storm exceeded the capacity"
    check_mass_balance(model, case, rtol=1e-4)


@pytest.mark.parametrize("name", ["h2h_n4_dyn2_wu168", "h21h_n4_dyn3_wu168"])
def test_mass_balance_over_the_reference_period(name):
    if not REFERENCE.is_file():
        pytest.skip(f"reference outputs not found: {REFERENCE}")
    ref = load_hourly_reference(REFERENCE)[name]
    model = ref.runoff_model()
    params = {k: v for k, v in ref.params.items() if k in model.parameter_spec}
    attributes = {k: v for k, v in ref.attributes.items() if k in model.attribute_names}
    check_mass_balance(model, Case(ref.forcings, params, attributes), rtol=1e-4)


def test_the_cascade_stores_hold_the_infiltration_excess_in_the_balance():
    """Right after a storm the two stores hold water that the runoff has not yet seen; the balance
    closes with them and would be off by their content without them."""
    model = HBV21Hourly()
    case = storm_case(model, dtype=torch.float32)
    case.params["KS"] = torch.full_like(case.params["KS"], 1.0)  # two stores of 2/day: a delay of about a day
    out = model(case.forcings, case.params, attributes=case.attributes)
    held = out.state["SIE1"] + out.state["SIE2"]
    assert float(held.min()) > 1.0 and float(out["QIE"].sum(0).min()) < float(out["IE"].sum(0).min())
    check_mass_balance(model, case, rtol=1e-5)


# ------------------------------------------------------------ relation to the daily step
def test_without_infiltration_excess_the_hourly_step_is_the_daily_step_in_hours():
    """With a capacity that never binds (FMIN = 1, F0 at its top), 2.0 hourly is daily δHBV 2.0 run
    on hourly forcings with every per-day parameter scaled to per hour (up to float32 round-off and
    the start-of-step floors, which keep the upper zone at 1e-5 mm where the daily step empties it)."""
    hourly, daily = HBV2Hourly(nmul=2), HBV2(nmul=2)
    case = realistic_hourly_case(hourly, n_time=240, n_units=5, seed=2)
    params = {**case.params, "FMIN": torch.ones(5, 2), "F0": torch.full((5, 2), 2880.0)}
    out_h = hourly(case.forcings, params, attributes=case.attributes)
    per_hour = {k: v / 24 if k in RATE_PARAMETERS else v for k, v in params.items() if k in daily.parameter_spec}
    out_d = daily(case.forcings, per_hour, attributes=case.attributes)
    assert float(out_h["IE"].abs().max()) == 0.0
    for name in daily.output_names:
        scale = float(out_d[name].abs().max())
        assert torch.allclose(out_h[name], out_d[name], rtol=0, atol=1e-4 * scale + 2e-5), name


def test_storms_beyond_the_capacity_run_off_as_infiltration_excess():
    model = HBV2Hourly()
    case = storm_case(model, dtype=torch.float32)
    low = {**case.params, "F0": torch.full((2, 1), 120.0), "FMIN": torch.zeros(2, 1)}  # at most 5 mm/h
    out = model(case.forcings, low, attributes=case.attributes)
    rain = case.forcings["P"][:, 0]
    assert float(out["IE"][3, 0]) > 30.0  # 40 mm/h against a capacity of 5 mm/h
    assert float(out["IE"][0, 0]) == 0.0 and bool((out["IE"][:, 0] <= rain).all())
    assert torch.allclose(out["Q"], out["Q0"] + out["Q1"] + out["Q2"] + out["IE"], rtol=1e-6, atol=1e-6)


def test_the_cascade_delays_the_excess():
    model = HBV21Hourly()
    case = storm_case(model, dtype=torch.float32)
    slow = model(case.forcings, {**case.params, "KS": torch.full((2, 1), 0.1)}, attributes=case.attributes)
    fast = model(case.forcings, {**case.params, "KS": torch.full((2, 1), 10.0)}, attributes=case.attributes)
    assert torch.allclose(slow["IE"], fast["IE"])
    assert float(fast["QIE"].sum()) > 5 * float(slow["QIE"].sum()) > 0.0


# -------------------------------------------------------------- configuration, handover
def test_registered_and_built_from_a_run_config_section():
    for key, cls in [("hbv_2_hourly", HBV2Hourly), ("hbv_2_1_hourly", HBV21Hourly)]:
        assert registry.get("dmg.physics", key) is cls
    members = {
        "runoff": {"name": "hbv_2_1_hourly", "nmul": 4, "dynamic": PUBLISHED_DYNAMIC},
        "unit_routing": {"name": "hourly_gamma_routing", "flows": ["Q"], "streamflow": None, "baseflow": None},
        "gauges": {"name": "gauge_routing"},
    }
    cls, config = resolve_component("dmg.physics", {"name": "chain", "members": members}, "model.physics")
    chain = cls.from_config(config)
    assert isinstance(chain.members["runoff"], HBV21Hourly) and chain.warmup_mode == "inline"
    spec = chain.parameter_spec
    assert spec.n_dynamic_channels == 3 * 4
    assert spec.n_static_channels == 16 * 4 + 2 + 3
    assert set(chain.state_names) == {f"runoff.{s}" for s in HBV21Hourly().state_names}


def test_daily_states_start_an_hourly_run():
    """The final states of daily δHBV 2.0 are the initial states of the hourly models, under the same
    names (2.1 hourly adds its two cascade stores)."""
    daily = HBV2(nmul=2)
    spin = realistic_case(daily, n_time=60, n_units=3, seed=5)
    handed = daily(spin.forcings, spin.params, attributes=spin.attributes).state
    for model in (HBV2Hourly(nmul=2), HBV21Hourly(nmul=2)):
        case = realistic_hourly_case(model, n_time=48, n_units=3, seed=5)
        state = {**model.initial_state(3), **handed}
        out = model(case.forcings, case.params, attributes=case.attributes, state=state)
        cold = model(case.forcings, case.params, attributes=case.attributes)
        assert set(out.state) == set(model.state_names)
        assert not torch.allclose(out["Q2"], cold["Q2"])  # the spun-up lower zone drains from the first hour
        chain = Chain(runoff=model)
        chained = chain(
            case.forcings,
            case.params,
            attributes=case.attributes,
            state={f"runoff.{k}": v for k, v in state.items()},
        )
        assert torch.equal(chained["Q"], out["Q"])
