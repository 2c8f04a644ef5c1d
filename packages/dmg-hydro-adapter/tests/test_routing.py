"""Gamma unit-hydrograph routing: weights, convolution, base-flow index, composition, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmg.core import Chain, ConfigError
from dmg.core.testing import PhysicsModelTestKit
from dmg.hydro import HBV, GammaRouting
from dmg.hydro.hbv.testing import realistic_case
from dmg.hydro.routing import HourlyGammaRouting, baseflow_index, convolve, gamma_unit_hydrograph


def gamma_density_weights(route_a: float, route_b: float, length: int = 15) -> np.ndarray:
    """The published definition, evaluated in float64 with the full gamma density."""
    a = max(route_a, 0.0) + 0.1
    theta = max(route_b, 0.0) + 0.5
    t = np.arange(length) + 0.5
    w = t ** (a - 1) * np.exp(-t / theta) / (math.gamma(a) * theta**a)
    return w / w.sum()


@pytest.mark.parametrize("route_a,route_b", [(0.0, 0.0), (0.58, 3.9), (1.6675, 2.4375), (2.9, 6.5), (-0.3, -1.0)])
def test_weights_match_the_gamma_density(route_a, route_b):
    a, b = torch.tensor([route_a], dtype=torch.float64), torch.tensor([route_b], dtype=torch.float64)
    w = gamma_unit_hydrograph(a, b)
    assert w.shape == (1, 15)
    np.testing.assert_allclose(w[0].numpy(), gamma_density_weights(route_a, route_b), rtol=1e-12, atol=1e-15)
    assert abs(float(w.sum()) - 1.0) < 1e-12


def test_convolution_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    flows = torch.rand(40, 3, 2, generator=g, dtype=torch.float64)
    weights = torch.softmax(torch.randn(3, 15, generator=g, dtype=torch.float64), -1)
    expected = torch.zeros_like(flows)
    for t in range(40):
        for k in range(min(15, t + 1)):
            expected[t] += weights[:, k, None] * flows[t - k]
    assert torch.allclose(convolve(flows, weights), expected, rtol=1e-12, atol=1e-14)


def test_a_pulse_returns_the_unit_hydrograph_and_its_volume():
    route = GammaRouting(flows=("Q",), streamflow=None, baseflow=None)
    pulse = torch.zeros(30, 2)
    pulse[0] = 10.0
    params = {"route_a": torch.tensor([0.5, 2.0]), "route_b": torch.tensor([1.0, 4.0])}
    out = route({"Q": pulse}, params)
    w = gamma_unit_hydrograph(params["route_a"], params["route_b"])
    assert torch.allclose(out["Q"][:15].T, 10.0 * w, atol=1e-6)
    assert float(out["Q"][15:].abs().max()) == 0.0
    assert torch.allclose(out["Q"].sum(0), torch.full((2,), 10.0), rtol=1e-6)
    assert torch.equal(out["Q_unrouted"], pulse)
    assert "BFI" not in out


def test_short_runs_use_the_first_weights_unchanged():
    route = GammaRouting()
    g = torch.Generator().manual_seed(1)
    flows = {n: torch.rand(40, 3, generator=g) for n in ("Q", "Q0", "Q1", "Q2")}
    params = {"route_a": torch.tensor([0.3, 1.0, 2.5]), "route_b": torch.tensor([0.2, 2.0, 6.0])}
    long = route(flows, params)
    short = route({k: v[:6] for k, v in flows.items()}, params)
    for name in ("Q", "Q0", "Q1", "Q2"):
        assert torch.allclose(short[name], long[name][:6], rtol=1e-6, atol=1e-7)


def test_baseflow_index():
    q = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    q2 = torch.tensor([[0.5, 0.0], [1.5, 1.0]])
    assert torch.allclose(baseflow_index(q2, q), torch.tensor([100 * 2.0 / (4.0 + 1e-5), 100 * 1.0 / (4.0 + 1e-5)]))


def test_chain_routes_the_runoff_of_hbv():
    chain = Chain(runoff=HBV(nmul=2), routing=GammaRouting())
    runoff = chain.members["runoff"]
    case = realistic_case(runoff, n_time=60, n_units=3)
    route = {"route_a": torch.tensor([0.2, 1.0, 2.0]), "route_b": torch.tensor([0.5, 2.0, 5.0])}
    out = chain(case.forcings, {**case.params, **route})
    unrouted = runoff(case.forcings, case.params)
    weights = gamma_unit_hydrograph(route["route_a"], route["route_b"])
    for name in ("Q", "Q0", "Q1", "Q2"):
        assert torch.equal(out[f"{name}_unrouted"], unrouted[name])
        expected = convolve(unrouted[name].unsqueeze(-1), weights).squeeze(-1)
        assert torch.allclose(out[name], expected, rtol=1e-6, atol=1e-7), name
    assert torch.allclose(out["Q"], out["Q0"] + out["Q1"] + out["Q2"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(out["BFI"], baseflow_index(out["Q2"], out["Q"]))
    assert out["SWE"].shape == (60, 3) and set(out.state) == {f"runoff.{s}" for s in runoff.state_names}


def test_routing_parameters_are_recovered_by_gradient_descent():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    wet = (torch.rand(200, 4, generator=g) < 0.3).float()
    inflow = {"Q": wet * 5.0 * torch.rand(200, 4, generator=g)}
    route = GammaRouting(flows=("Q",), streamflow=None, baseflow=None)
    spec = route.parameter_spec
    truth = {"route_a": torch.tensor([0.4, 1.2, 2.0, 2.6]), "route_b": torch.tensor([1.0, 2.5, 4.0, 5.5])}
    target = route(inflow, truth)["Q"]
    raw = {k: torch.zeros(4, requires_grad=True) for k in truth}

    def physical():
        return {k: spec[k].scale(torch.sigmoid(v)) for k, v in raw.items()}

    optimizer = torch.optim.LBFGS(list(raw.values()), max_iter=60, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = ((route(inflow, physical())["Q"] - target) ** 2).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted = {k: v.detach() for k, v in physical().items()}
    for k in truth:
        assert torch.allclose(fitted[k], truth[k], atol=0.01), f"{k}: fitted {fitted[k]} vs true {truth[k]}"


def test_configuration_errors_name_the_key():
    with pytest.raises(ConfigError, match="dynamic"):
        GammaRouting(dynamic=["route_a"])
    with pytest.raises(ConfigError, match="baseflow"):
        GammaRouting(flows=("Q",), baseflow="Q2")
    with pytest.raises(ConfigError, match="flows"):
        GammaRouting(flows=())
    with pytest.raises(ConfigError, match="unrouted_suffix"):
        GammaRouting(unrouted_suffix="")
    route = GammaRouting.from_config(GammaRouting.Config(flows=["Q"], streamflow=None, baseflow=None))
    assert route.config.flows == ["Q"] and route.forcing_names == ("Q",)


def test_warmup_modes_inline_alone_and_the_chain_s_in_a_chain():
    assert GammaRouting().warmup_mode == "inline"
    assert GammaRouting().signature.warmup_modes == ("inline", "spinup")
    assert Chain(runoff=HBV(), routing=GammaRouting()).warmup_mode == "spinup"
    route = GammaRouting()
    g = torch.Generator().manual_seed(3)
    flows = {n: torch.rand(40, 2, generator=g) for n in ("Q", "Q0", "Q1", "Q2")}
    params = {"route_a": torch.tensor([0.5, 1.5]), "route_b": torch.tensor([1.0, 3.0])}
    whole = route(flows, params)
    inline = route(flows, params, warmup=10)
    for name in route.output_names:  # [time, unit] series lose the warm-up steps; BFI covers all 40
        assert torch.equal(inline[name], whole[name][10:] if whole[name].dim() == 2 else whole[name]), name
    spun = route(flows, params, warmup=10, warmup_mode="spinup")  # only the last 30 steps are routed
    rest = route({k: v[10:] for k, v in flows.items()}, params)
    for name in route.output_names:
        assert torch.equal(spun[name], rest[name]), name


class TestGammaRoutingKit(PhysicsModelTestKit):
    # Routing keeps no state: a run split in two forgets the flow still in transit, as published.
    # It declares no MassBalance; volume conservation is tested with a pulse above.
    skip = ("state_carryover", "mass_balance")

    def make_model(self):
        return GammaRouting()


@pytest.mark.parametrize("routing", [GammaRouting(), HourlyGammaRouting()])
def test_routing_stepped_step_by_step_carries_its_unit_hydrograph(routing):
    """Stepped, routing keeps the last ``length - 1`` flows: once it holds them, every step equals the window
    run. Before, the run so far is shorter than the unit hydrograph: the daily one acts on the flows given
    (zeros before), the hourly one, as published for short runs, is truncated to the run and normalised."""
    from dmg.core import DeltaModel, ParameterLearning
    from dmg.core.data import Batch
    from dmg.core.stepping import Stepper
    from dmg.core.testing.networks import StaticLinear

    length = routing.config.length
    assert routing.stream_memory == length - 1
    coupling = ParameterLearning()
    model = DeltaModel(StaticLinear(coupling.n_outputs(routing)), routing, coupling).eval()
    g = torch.Generator().manual_seed(0)
    n = length + 10
    flows = {f: torch.rand(n, 3, generator=g) for f in routing.config.flows}
    static = torch.linspace(-1.0, 1.0, 6).reshape(3, 2)
    window = model(Batch(forcings=flows, static_inputs=static))["Q"]
    stepper = Stepper(model)
    steps = [
        stepper.advance(Batch(forcings={f: v[t : t + 1] for f, v in flows.items()}, static_inputs=static))
        for t in range(n)
    ]
    stepped = torch.cat([s["Q"] for s in steps])
    first = length - 1 if isinstance(routing, HourlyGammaRouting) else 0
    torch.testing.assert_close(stepped[first:], window[first:], rtol=1e-6, atol=1e-7)
