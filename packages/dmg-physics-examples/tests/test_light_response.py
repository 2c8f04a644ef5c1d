"""LightResponse: the rectangular hyperbola's landmarks, time-varying parameters and warm-up."""

from __future__ import annotations

import pytest
import torch

from dmg.examples import LightResponse

F64 = torch.float64


def params(alpha: float = 0.05, pmax: float = 30.0, reco: float = 3.0, n_units: int = 1, nmul: int = 1):
    return {
        name: torch.full((n_units, nmul), value, dtype=F64)
        for name, value in (("alpha", alpha), ("Pmax", pmax), ("Reco", reco))
    }


def test_landmarks_of_the_light_response_curve():
    model = LightResponse()
    par = torch.tensor([[0.0], [30.0 / 0.05], [1e9]], dtype=F64)
    out = model({"PAR": par}, params())
    gpp = out["GPP"][:, 0]
    assert gpp[0].item() == 0.0
    assert gpp[1].item() == pytest.approx(15.0, rel=1e-12)  # half saturation at PAR = Pmax / alpha
    assert gpp[2].item() == pytest.approx(30.0, rel=1e-6)  # saturates at Pmax
    assert torch.allclose(out["NEE"], 3.0 - out["GPP"], rtol=1e-12)


def test_initial_slope_is_the_quantum_efficiency():
    par = torch.zeros(1, 1, dtype=F64, requires_grad=True)
    gpp = LightResponse()({"PAR": par}, params(alpha=0.07))["GPP"]
    (slope,) = torch.autograd.grad(gpp.sum(), par)
    assert slope.item() == pytest.approx(0.07, rel=1e-12)


def test_components_are_averaged_and_parameters_may_vary_in_time():
    model = LightResponse(nmul=2, dynamic=["Pmax"])
    par = torch.full((4, 1), 400.0, dtype=F64)
    p = params(nmul=2)
    p["Pmax"] = torch.tensor([10.0, 20.0, 30.0, 40.0], dtype=F64)[:, None, None].expand(4, 1, 2).clone()
    p["Pmax"][:, :, 1] *= 2
    out = model({"PAR": par}, p)
    for t, pmax in enumerate((10.0, 20.0, 30.0, 40.0)):
        expected = [20.0 * pmax / (20.0 + pmax), 20.0 * 2 * pmax / (20.0 + 2 * pmax)]
        assert out["GPP"][t, 0].item() == pytest.approx(sum(expected) / 2, rel=1e-12)


@pytest.mark.parametrize("mode", ["spinup", "inline"])
def test_warmup_steps_are_dropped(mode):
    model = LightResponse()
    par = torch.linspace(0, 1500, 10, dtype=F64)[:, None]
    full = model({"PAR": par}, params())
    warmed = model({"PAR": par}, params(), warmup=3, warmup_mode=mode)
    assert torch.equal(warmed["GPP"], full["GPP"][3:])
    assert warmed.state == {}


def test_warms_up_inline_by_default_having_no_state_to_spin_up():
    assert LightResponse().warmup_mode == "inline"
    assert LightResponse(warmup_mode="spinup").warmup_mode == "spinup"
    assert LightResponse.warmup_modes == ("inline", "spinup")


def test_light_response_steps_one_day_at_a_time():
    from dmg.core import DeltaModel, ParameterLearning
    from dmg.core.data import Batch
    from dmg.core.stepping import Stepper
    from dmg.core.testing.networks import StaticLinear

    physics, coupling = LightResponse(), ParameterLearning()
    model = DeltaModel(StaticLinear(coupling.n_outputs(physics)), physics, coupling).eval()
    par = torch.rand(12, 3, generator=torch.Generator().manual_seed(0)) * 1500
    static = torch.linspace(-1.0, 1.0, 6).reshape(3, 2)
    window = model(Batch(forcings={"PAR": par}, static_inputs=static))
    stepper = Stepper(model)
    days = [stepper.advance(Batch(forcings={"PAR": par[t : t + 1]}, static_inputs=static)) for t in range(12)]
    stepped = torch.cat([day["GPP"] for day in days])
    torch.testing.assert_close(stepped, window["GPP"])
