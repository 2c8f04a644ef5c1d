"""Physics checks of the HBV variants with the shared test kit, on realistic weather.

Realistic cases: a seasonal climate with snowy winters (daily mean temperature between about
-12 and 28 °C), wet days with exponential depths, and Hargreaves PET.  Mass balance is checked
over three synthetic years and over the reference period of the published outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dmg.core.engine import Engine, Recompute
from dmg.core.testing import Case, PhysicsModelTestKit, check_gradcheck, check_mass_balance
from dmg.hydro import HBV, HBV2, HBV11p
from dmg.hydro.hbv.reference import load_reference
from dmg.hydro.hbv.testing import realistic_case

REFERENCE = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "hbv_reference_hydrodl2_1.4.0.npz"
).resolve()


class _RealisticKit(PhysicsModelTestKit):
    def make_case(self, model):
        return realistic_case(model)

    def test_gradcheck(self):
        """Float64 finite differences on eight days of one unit (snow, melt and rain)."""
        model = self.make_model()
        check_gradcheck(
            model,
            realistic_case(model, n_time=8, n_units=1, seed=3, u_range=(0.2, 0.8), dtype=torch.float64),
            self.engine,
        )


class TestHBVKit(_RealisticKit):
    def make_model(self):
        return HBV(nmul=2, dynamic=["BETA", "BETAET"])


class TestHBVStaticKit(_RealisticKit):
    def make_model(self):
        return HBV(nmul=3)


class TestHBVRecomputeKit(_RealisticKit):
    """Every check under the recompute memory policy, compared with the eager engine."""

    engine = Engine(memory=Recompute(chunk_size=16))

    def make_model(self):
        return HBV(nmul=2, dynamic=["BETA", "BETAET"])


class TestHBV11pKit(_RealisticKit):
    def make_model(self):
        return HBV11p(nmul=3, dynamic=["BETA", "K0", "BETAET"])


class TestHBV2Kit(_RealisticKit):
    def make_model(self):
        return HBV2(nmul=2, dynamic=["BETA", "K0", "BETAET"])


class TestHBV2RecomputeKit(TestHBV2Kit):
    engine = Engine(memory=Recompute(chunk_size=16))


MODELS = {
    "hbv": lambda: HBV(nmul=2, dynamic=["BETA", "BETAET"]),
    "hbv_static": lambda: HBV(nmul=2),
    "hbv11p": lambda: HBV11p(nmul=2, dynamic=["BETA", "K0", "BETAET"]),
    "hbv2": lambda: HBV2(nmul=2, dynamic=["BETA", "K0", "BETAET"]),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_mass_balance_over_three_years(name):
    model = MODELS[name]()
    check_mass_balance(model, realistic_case(model, n_time=3 * 365, n_units=5, seed=1), rtol=1e-4)


@pytest.mark.parametrize("name", ["hbv_n3_wu60", "hbv11p", "hbv2_n2_dyn_wu60"])
def test_mass_balance_over_the_reference_period(name):
    if not REFERENCE.is_file():
        pytest.skip(f"reference outputs not found: {REFERENCE}")
    ref = load_reference(REFERENCE)[name]
    model = ref.model_class(**ref.options)
    params = {k: v for k, v in ref.params.items() if k in model.parameter_spec}
    check_mass_balance(model, Case(ref.forcings, params, ref.attributes), rtol=1e-4)


# ------------------------------------------------------------- gradient edges
def unit_leaves(model, case):
    spec = model.parameter_spec
    return {k: spec[k].unscale(v).detach().clone().requires_grad_(True) for k, v in case.params.items()}


def assert_finite_gradients(model, case, state=None):
    """Outputs are finite and every parameter (as u in [0, 1]) and forcing gets a finite gradient.

    One backward pass of the sum of all outputs suffices: a NaN or infinite partial derivative
    of any output makes the sum's gradient non-finite.
    """
    spec = model.parameter_spec
    u = unit_leaves(model, case)
    forcings = {k: v.detach().clone().requires_grad_(True) for k, v in case.forcings.items()}
    out = model(forcings, {k: spec[k].scale(v) for k, v in u.items()}, attributes=case.attributes, state=state)
    for output in model.output_names:
        assert torch.isfinite(out[output]).all(), f"{type(model).__name__}: output {output} not finite"
    total = sum(out[o].sum() for o in model.output_names)
    names = list(u) + list(forcings)
    grads = torch.autograd.grad(total, list(u.values()) + list(forcings.values()), allow_unused=True)
    for leaf, g in zip(names, grads):
        assert g is None or torch.isfinite(g).all(), f"{type(model).__name__}: gradient for {leaf} not finite"
    return {k: v.detach() for k, v in out.items()}, dict(zip(names, grads))


def edge_case(model, scenario: str) -> tuple[Case, dict | None]:
    case = realistic_case(model, n_time=60, n_units=3, seed=5)
    state = None
    n_units = 3
    if scenario == "dry_soil":
        case.forcings["P"] = torch.zeros_like(case.forcings["P"])
        case.forcings["T"] = case.forcings["T"].abs() + 15.0
        state = model.initial_state(n_units)
        state["SM"] = torch.zeros_like(state["SM"])  # an exactly empty soil
        state["SLZ"] = torch.zeros_like(state["SLZ"])
    elif scenario == "no_precipitation":
        case.forcings["P"] = torch.zeros_like(case.forcings["P"])
    elif scenario == "all_snow":
        case.forcings["T"] = torch.full_like(case.forcings["T"], -12.0)
        case.forcings["P"] = case.forcings["P"] + 1.0
    elif scenario in ("lower_bounds", "upper_bounds"):
        for name, value in case.params.items():
            p = model.parameter_spec[name]
            case.params[name] = torch.full_like(value, p.low if scenario == "lower_bounds" else p.high)
    return case, state


@pytest.mark.parametrize("scenario", ["dry_soil", "no_precipitation", "all_snow", "lower_bounds", "upper_bounds"])
@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_finite_at_the_edges(name, scenario):
    model = MODELS[name]()
    case, state = edge_case(model, scenario)
    out, grads = assert_finite_gradients(model, case, state)
    if scenario == "all_snow":
        # no rain and no melt: all precipitation stays in the snowpack, nothing reaches the soil
        assert float(out["tosoil"].abs().max()) == 0.0 and float(out["recharge"].abs().max()) == 0.0
        total_snow = case.forcings["P"].sum(0)
        assert torch.allclose(out["SWE"][-1], total_snow + 0.002, rtol=1e-5)
        assert float(grads["BETA"].abs().max()) == 0.0
    if scenario == "dry_soil":
        # evapotranspiration takes no more than the stores held, the floors added and lateral inflow brought
        gained = out["lateral"].clamp_min(0.0).sum(0) if "lateral" in out else 0.0
        assert bool((out["AET"].sum(0) <= gained + 60 * 2e-5 + 0.005).all())


def test_soil_wetness_exponent_has_finite_gradient_at_an_empty_store():
    """(SM/FC)**BETA at SM = 0 gives a zero, not NaN, gradient to BETA and SM."""
    model = HBV(nmul=1)
    case = realistic_case(model, n_time=3, n_units=2)
    case.forcings["P"] = torch.full_like(case.forcings["P"], 5.0)
    case.forcings["T"] = torch.full_like(case.forcings["T"], 10.0)
    state = {k: v.requires_grad_(True) if k == "SM" else v for k, v in model.initial_state(2).items()}
    state["SM"] = torch.zeros(2, 1, requires_grad=True)
    beta = case.params["BETA"].clone().requires_grad_(True)
    out = model(case.forcings, {**case.params, "BETA": beta}, state=state)
    g_beta, g_sm = torch.autograd.grad(out["recharge"][0].sum(), [beta, state["SM"]])
    assert torch.isfinite(g_beta).all() and torch.isfinite(g_sm).all()
