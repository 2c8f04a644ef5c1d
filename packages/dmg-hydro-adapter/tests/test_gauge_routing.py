"""Hourly routing: the 72-hour unit hydrograph and the per-pair gauge routing with lag and area weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmg.core import Chain, ConfigError, InputError, registry
from dmg.core.testing import PhysicsModelTestKit
from dmg.hydro.gauges import GaugeRouting, RoutingPairs, delayed_unit_hydrograph
from dmg.hydro.hbv import HBV21Hourly
from dmg.hydro.hbv.testing import realistic_hourly_case
from dmg.hydro.routing import HourlyGammaRouting

TOPOLOGY = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
"""Gauge 0 collects unit 0; gauge 1 collects units 0, 1 and 2 (four pairs)."""
AREAS = torch.tensor([150.0, 420.0, 600.0], dtype=torch.float64)


def gamma_weights(route_a: float, route_b: float, length: int) -> np.ndarray:
    """The published unit hydrograph in float64 with the full gamma density."""
    a, theta = max(route_a, 0.0) + 0.1, max(route_b, 0.0) + 0.5
    t = np.arange(length) + 0.5
    w = t ** (a - 1) * np.exp(-t / theta) / (math.gamma(a) * theta**a)
    return w / w.sum()


def delayed(w: np.ndarray, tau: float) -> np.ndarray:
    """``v_j = (1 - f) w_(j-k) + f w_(j-k-1)`` on the same lags, terms outside the support zero."""
    k = math.floor(tau)
    f = tau - k

    def at(i: int) -> float:
        return float(w[i]) if 0 <= i < len(w) else 0.0

    return np.array([(1 - f) * at(j - k) + f * at(j - k - 1) for j in range(len(w))])


# ------------------------------------------------------------------ unit hydrographs
@pytest.mark.parametrize("tau", [0.0, 3.0, 7.25, 30.6, 47.9])
def test_delayed_unit_hydrograph_matches_the_definition(tau):
    w = gamma_weights(1.7, 4.0, 72)
    v = delayed_unit_hydrograph(torch.from_numpy(w[None]), torch.tensor([tau], dtype=torch.float64))
    np.testing.assert_allclose(v[0].numpy(), delayed(w, tau), rtol=1e-12, atol=1e-15)
    assert float(v.sum()) <= 1.0 + 1e-12


def test_lag_gradient_is_finite_and_moves_weight_later():
    w = torch.from_numpy(gamma_weights(2.0, 3.0, 72)[None])
    tau = torch.tensor([5.5], dtype=torch.float64, requires_grad=True)
    centroid = (delayed_unit_hydrograph(w, tau) * torch.arange(72.0, dtype=torch.float64)).sum()
    (grad,) = torch.autograd.grad(centroid, tau)
    # the hydrograph shifts by one hour per hour of lag, less the sliver pushed past the last lag
    assert 0.99999 < float(grad) < 1.0


def test_hourly_unit_hydrograph_spans_72_hours_and_short_runs_renormalise():
    route = HourlyGammaRouting(flows=["Q"], streamflow=None, baseflow=None)
    params = {"route_a": torch.tensor([0.5, 3.0]), "route_b": torch.tensor([2.0, 10.0])}
    long = route.weights(params, 500)
    assert long.shape == (2, 72)
    np.testing.assert_allclose(long[1].numpy(), gamma_weights(3.0, 10.0, 72), rtol=1e-5)
    short = route.weights(params, 24)
    assert short.shape == (2, 24) and torch.allclose(short.sum(-1), torch.ones(2))
    np.testing.assert_allclose(short[1].numpy(), gamma_weights(3.0, 10.0, 24), rtol=1e-5)
    spec = route.parameter_spec
    assert (spec["route_a"].high, spec["route_b"].high, spec["route_b"].unit) == (5.0, 12.0, "h")
    assert route.signature.forcings[0].unit == "mm/h"


def test_hourly_routing_of_a_pulse_returns_its_volume():
    route = HourlyGammaRouting(flows=["Q"], streamflow=None, baseflow=None)
    pulse = torch.zeros(100, 2)
    pulse[0] = 6.0
    out = route({"Q": pulse}, {"route_a": torch.tensor([1.0, 2.0]), "route_b": torch.tensor([3.0, 8.0])})
    assert torch.allclose(out["Q"].sum(0), torch.full((2,), 6.0), rtol=1e-5)
    assert float(out["Q"][72:].abs().max()) == 0.0


# ---------------------------------------------------------------------- gauge routing
def test_pairs_follow_the_published_order():
    pairs = RoutingPairs.from_topology(TOPOLOGY)
    assert pairs.gauge.tolist() == [0, 1, 1, 1] and pairs.unit.tolist() == [0, 0, 1, 2]
    attributes = pairs.attributes(AREAS)
    assert attributes["area"].tolist() == [150.0, 150.0, 420.0, 600.0]
    assert attributes["gauge_area"].tolist() == [150.0, 1170.0, 1170.0, 1170.0]
    assert pairs.first_pairs().tolist() == [0, 2, 3]
    with pytest.raises(InputError, match=r"units \[1, 2\] drain to no gauge"):
        RoutingPairs.from_topology(TOPOLOGY[:1]).first_pairs()


def test_gauge_streamflow_matches_the_published_definition():
    """Σ over a gauge's pairs of the delayed hydrograph applied to area-weighted runoff, over the gauge's area."""
    g = torch.Generator().manual_seed(0)
    n_time = 120
    runoff = torch.rand(n_time, 3, generator=g, dtype=torch.float64) * (torch.rand(n_time, 3, generator=g) < 0.2)
    params = {
        "gauge_route_a": torch.tensor([1.28, 3.30, 0.46, 3.64], dtype=torch.float64),
        "gauge_route_b": torch.tensor([5.59, 2.01, 7.51, 2.99], dtype=torch.float64),
        "gauge_route_tau": torch.tensor([32.0, 42.98, 0.0, 33.51], dtype=torch.float64),
    }
    pairs = RoutingPairs.from_topology(TOPOLOGY)
    out = GaugeRouting()({"Q": pairs.to_pairs(runoff)}, params, attributes=pairs.attributes(AREAS))
    streamflow = pairs.to_gauges(out["streamflow"])
    expected = np.zeros((n_time, 2))
    for p, (gauge, unit) in enumerate(zip(pairs.gauge.tolist(), pairs.unit.tolist())):
        v = delayed(gamma_weights(*(float(params[k][p]) for k in ("gauge_route_a", "gauge_route_b")), 72), 0.0)
        v = delayed(v, float(params["gauge_route_tau"][p]))
        series = runoff[:, unit].numpy() * float(AREAS[unit])
        expected[:, gauge] += np.convolve(series, v)[:n_time]
    expected /= (TOPOLOGY.double().numpy() * AREAS.numpy()).sum(1)
    np.testing.assert_allclose(streamflow.numpy(), expected, rtol=1e-10, atol=1e-14)


def test_gauge_routing_conserves_water_except_what_the_lag_drops():
    """A pulse, routed to the end: what arrives at the gauge plus ``lag_loss`` is the area-weighted
    input; with no lag nothing is lost, with a long lag the tail of the hydrograph is."""
    pairs = RoutingPairs.from_topology(TOPOLOGY)
    pulse = torch.zeros(200, 3, dtype=torch.float64)
    pulse[5] = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    attributes = pairs.attributes(AREAS)
    share = attributes["area"] / attributes["gauge_area"]
    for tau, lost in ((0.0, False), (47.5, True)):
        params = {
            "gauge_route_a": torch.full((4,), 2.0, dtype=torch.float64),
            "gauge_route_b": torch.full((4,), 6.0, dtype=torch.float64),
            "gauge_route_tau": torch.full((4,), tau, dtype=torch.float64),
        }
        out = GaugeRouting()({"Q": pairs.to_pairs(pulse)}, params, attributes=attributes)
        arrived, dropped = out["streamflow"].sum(0), out["lag_loss"].sum(0)
        assert torch.allclose(arrived + dropped, share * pairs.to_pairs(pulse).sum(0), rtol=1e-12)
        assert (float(dropped.min()) > 0.01 * float(arrived.min())) if lost else float(dropped.abs().max()) < 1e-12


def test_chain_over_pairs_equals_runoff_per_unit_then_gauge_routing():
    runoff = HBV21Hourly(nmul=2)
    case = realistic_hourly_case(runoff, n_time=96, n_units=3, seed=4)
    pairs = RoutingPairs.from_topology(TOPOLOGY)
    gauge_params = {
        "gauge_route_a": torch.tensor([1.0, 2.0, 3.0, 4.0]),
        "gauge_route_b": torch.tensor([2.0, 4.0, 6.0, 8.0]),
        "gauge_route_tau": torch.tensor([0.0, 10.5, 20.25, 40.0]),
    }
    attributes = {k: pairs.to_pairs(v, 0) for k, v in case.attributes.items()}
    attributes.update(pairs.attributes(AREAS.float()))
    chain = Chain(runoff=runoff, gauges=GaugeRouting())
    params = {k: pairs.to_pairs(v, 0) for k, v in case.params.items()}
    over_pairs = chain(
        {k: pairs.to_pairs(v) for k, v in case.forcings.items()}, {**params, **gauge_params}, attributes=attributes
    )
    per_unit = runoff(case.forcings, case.params, attributes=case.attributes)
    routed = GaugeRouting()(
        {"Q": pairs.to_pairs(per_unit["Q"])}, gauge_params, attributes=pairs.attributes(AREAS.float())
    )
    assert torch.equal(pairs.to_units(over_pairs["Q"]), per_unit["Q"])
    assert torch.allclose(over_pairs["streamflow"], routed["streamflow"], rtol=1e-6, atol=1e-7)


def test_configuration():
    assert registry.get("dmg.physics", "gauge_routing") is GaugeRouting
    assert registry.get("dmg.physics", "hourly_gamma_routing") is HourlyGammaRouting
    route = GaugeRouting.from_config(GaugeRouting.Config(flow="Q_unrouted", output="Q_gauge"))
    assert route.forcing_names == ("Q_unrouted",) and route.output_names == ("Q_gauge", "lag_loss")
    assert route.attribute_names == ("area", "gauge_area")
    assert route.parameter_spec.n_static_channels == 3 and route.parameter_spec["gauge_route_tau"].high == 48.0
    with pytest.raises(ConfigError, match="dynamic"):
        GaugeRouting(dynamic=["gauge_route_tau"])


class TestHourlyGammaRoutingKit(PhysicsModelTestKit):
    # Routing keeps no state: a run split in two forgets the flow still in transit, as published.
    # It declares no MassBalance; volume conservation is tested with a pulse above.
    skip = ("state_carryover", "mass_balance")

    def make_model(self):
        return HourlyGammaRouting()


class TestGaugeRoutingKit(PhysicsModelTestKit):
    # No state (as above); water in transit and the part the lag drops are tested with a pulse above.
    skip = ("state_carryover", "mass_balance")

    def make_model(self):
        return GaugeRouting()


def test_gauge_routing_stepped_carries_the_last_runoff_of_each_pair():
    """Stepped, each pair keeps its last ``length - 1`` runoff values: from then on every step equals the
    window run (before, the unit hydrograph is cut to the run so far, as in a window that short)."""
    from dmg.core import DeltaModel, ParameterLearning
    from dmg.core.data import Batch
    from dmg.core.stepping import Stepper
    from dmg.hydro.hbv.reference import FixedOutput

    routing = GaugeRouting(length=12)
    assert routing.stream_memory == 11
    g = torch.Generator().manual_seed(0)
    n, pairs = 30, 3
    runoff = torch.rand(n, pairs, generator=g)
    raw = torch.randn(pairs, ParameterLearning().n_outputs(routing), generator=g)  # static parameters of each pair
    model = DeltaModel(FixedOutput(raw), routing, ParameterLearning()).eval()
    x = runoff.unsqueeze(-1)  # the network's inputs (it ignores them)
    attributes = {"area": torch.tensor([10.0, 20.0, 30.0]), "gauge_area": torch.tensor([60.0, 60.0, 30.0])}
    window = model(Batch(forcings={"Q": runoff}, nn_inputs=x, attributes=attributes))
    stepper = Stepper(model)
    steps = [
        stepper.advance(Batch(forcings={"Q": runoff[t : t + 1]}, nn_inputs=x[t : t + 1], attributes=attributes))
        for t in range(n)
    ]
    for name in ("streamflow", "lag_loss"):
        stepped = torch.cat([s[name] for s in steps])
        torch.testing.assert_close(stepped[11:], window[name][11:], rtol=1e-6, atol=1e-7)
