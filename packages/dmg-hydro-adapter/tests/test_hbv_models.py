"""Behaviour of the HBV variants: declarations, configuration, warm-up, variant relations, learning."""

from __future__ import annotations

import pydantic
import pytest
import torch
from torch import nn

from dmg.core import Batch, Chain, ConfigError, DeltaModel, InputError, ParameterLearning, SpecError, registry
from dmg.core.config import resolve_component
from dmg.core.engine import Engine, Recompute
from dmg.core.testing import check_engine_equivalence, make_case
from dmg.hydro import HBV, HBV2, GammaRouting, HBV11p
from dmg.hydro.hbv.parameters import CORE_PARAMETERS
from dmg.hydro.hbv.testing import EXAMPLE_ATTRIBUTES, realistic_case, seasonal_weather

CORE = [p.name for p in CORE_PARAMETERS]


# ------------------------------------------------------------ declarations
def test_parameters_of_each_variant_in_published_order():
    assert HBV().parameter_spec.names == tuple(CORE)
    assert HBV(dynamic=["BETA", "BETAET"]).parameter_spec.names == (*CORE, "BETAET")
    assert HBV11p().parameter_spec.names == (*CORE, "BETAET", "C")
    assert HBV2().parameter_spec.names == (*CORE, "BETAET", "C", "RT", "AC")


def test_chain_with_routing_has_the_published_raw_layout():
    chain = Chain(runoff=HBV(nmul=3, dynamic=["BETA", "BETAET"]), routing=GammaRouting())
    spec = chain.parameter_spec
    assert spec.n_channels() == 13 * 3 + 2
    expected = [f"{name}[{k}]" for name in (*CORE, "BETAET") for k in range(3)] + ["route_a", "route_b"]
    assert list(spec.channel_names()) == expected
    hbv2 = Chain(runoff=HBV2(nmul=2, dynamic=["BETA", "K0", "BETAET"]), routing=GammaRouting()).parameter_spec
    assert (hbv2.n_dynamic_channels, hbv2.n_static_channels) == (3 * 2, 13 * 2 + 2)
    static_names = [p.name for p in hbv2.static_parameters]
    assert static_names[-2:] == ["route_a", "route_b"] and static_names[0] == "FC"


def test_declared_variables():
    model = HBV2(nmul=2)
    assert model.forcing_names == ("P", "T", "PET")
    assert model.attribute_names == ("upstream_area", "elevation")
    assert model.state_names == ("SP", "MW", "SM", "SUZ", "SLZ")
    assert all(s.initial == 0.001 for s in model.states)
    assert {"Q", "Q0", "Q1", "Q2", "AET", "PET", "SWE", "capillary", "lateral"} <= set(model.output_names)
    assert "capillary" not in HBV().output_names and "lateral" not in HBV11p().output_names
    assert model.mass_balance.inputs == ("P", "lateral")
    assert HBV().mass_balance.outputs == ("AET", "Q")


# ------------------------------------------------------------ configuration
def test_from_config_and_registry():
    for key, cls in [("hbv", HBV), ("hbv_1_1p", HBV11p), ("hbv_2", HBV2), ("gamma_routing", GammaRouting)]:
        assert registry.get("dmg.physics", key) is cls
    model = HBV.from_config(HBV.Config(nmul=4, dynamic=["BETA", "BETAET"], warmup_mode="inline", near_zero=1e-6))
    assert model.nmul == 4 and model.warmup_mode == "inline" and model.config.near_zero == 1e-6
    assert "BETAET" in model.parameter_spec
    hbv2 = HBV2.from_config(HBV2.Config(elevation_threshold=False))
    assert hbv2.warmup_mode == "inline" and not hbv2.config.elevation_threshold
    with pytest.raises(pydantic.ValidationError):
        HBV2.Config(warmup_mode="spinup")
    with pytest.raises(pydantic.ValidationError):
        HBV.Config(unknown_option=1)


def test_chain_from_a_run_config_section():
    members = {
        "runoff": {"name": "hbv", "nmul": 4, "dynamic": ["BETA", "BETAET"], "warmup_mode": "spinup"},
        "routing": {"name": "gamma_routing"},
    }
    cls, config = resolve_component("dmg.physics", {"name": "chain", "members": members}, "model.physics")
    chain = cls.from_config(config)
    assert chain.warmup_mode == "spinup" and chain.parameter_spec.n_channels() == 13 * 4 + 2
    assert isinstance(chain.members["runoff"], HBV) and chain.members["runoff"].config.dynamic == ["BETA", "BETAET"]
    with pytest.raises(ConfigError, match=r"model\.physics\.warmup_mode': .*inline only, got 'spinup'"):
        resolve_component("dmg.physics", {"name": "hbv_2", "warmup_mode": "spinup"}, "model.physics")
    with pytest.raises(ConfigError, match=r"unknown key 'model\.physics\.near_zer'; did you mean .*near_zero'"):
        resolve_component("dmg.physics", {"name": "hbv", "near_zer": 1e-6}, "model.physics")


def test_hbv2_refuses_a_separate_spinup():
    with pytest.raises(ConfigError, match=r"warmup_mode.*inline only, got 'spinup'"):
        HBV2(warmup_mode="spinup")
    model = HBV2()
    assert model.signature.warmup_modes == ("inline",)
    case = realistic_case(model, n_time=20, n_units=2)
    with pytest.raises(SpecError, match=r"warmup_mode: HBV2 supports \['inline'\], got 'spinup'"):
        model(case.forcings, case.params, attributes=case.attributes, warmup=5, warmup_mode="spinup")
    chain = Chain(runoff=model, routing=GammaRouting())
    params = {**case.params, "route_a": torch.ones(2), "route_b": torch.ones(2)}
    with pytest.raises(SpecError, match=r"warmup_mode: Chain supports \['inline'\], got 'spinup'"):
        chain(case.forcings, params, attributes=case.attributes, warmup=5, warmup_mode="spinup")


def test_missing_attribute_is_named():
    model = HBV2()
    case = realistic_case(model, n_time=5, n_units=2)
    with pytest.raises(InputError, match="upstream_area"):
        model(case.forcings, case.params, attributes={"elevation": case.attributes["elevation"]})


# ------------------------------------------------------------------ warm-up
def test_spinup_runs_a_detached_pass_then_the_main_pass():
    model = HBV(nmul=2, dynamic=["BETA", "BETAET"])
    case = realistic_case(model, n_time=50, n_units=3)
    warm = {k: v * 0.95 if k == "FC" else v for k, v in case.params.items()}
    beta = case.params["BETA"].clone().requires_grad_(True)
    out = model(case.forcings, {**case.params, "BETA": beta}, warmup=20, warmup_params=warm)
    first = model(
        {k: v[:20] for k, v in case.forcings.items()},
        {k: v[:20] if k in ("BETA", "BETAET") else v for k, v in warm.items()},
    )
    second = model(
        {k: v[20:] for k, v in case.forcings.items()},
        {k: v[20:] if k in ("BETA", "BETAET") else v for k, v in case.params.items()},
        state=first.state,
    )
    for name in model.output_names:
        assert torch.equal(out[name].detach(), second[name]), name
    (g,) = torch.autograd.grad(out["Q"].sum(), beta)
    assert float(g[:20].abs().max()) == 0.0 and float(g[20:].abs().max()) > 0.0


def test_inline_warmup_drops_leading_outputs_of_one_pass():
    model = HBV11p(nmul=2, warmup_mode="inline")
    case = realistic_case(model, n_time=40, n_units=2)
    whole = model(case.forcings, case.params)
    trimmed = model(case.forcings, case.params, warmup=15)
    for name in model.output_names:
        assert torch.equal(trimmed[name], whole[name][15:]), name


def test_routing_chain_in_inline_mode_keeps_bfi_over_all_steps():
    chain = Chain(runoff=HBV2(nmul=1), routing=GammaRouting())
    case = realistic_case(chain.members["runoff"], n_time=60, n_units=3)
    params = {**case.params, "route_a": torch.full((3,), 1.0), "route_b": torch.full((3,), 2.0)}
    whole = chain(case.forcings, params, attributes=case.attributes)
    warm = chain(case.forcings, params, attributes=case.attributes, warmup=20)
    assert torch.equal(warm["Q"], whole["Q"][20:])
    assert torch.equal(warm["BFI"], whole["BFI"])


# ---------------------------------------------------------- variant relations
def test_identical_components_equal_one_component():
    one, three = HBV11p(nmul=1), HBV11p(nmul=3)
    case = realistic_case(one, n_time=60, n_units=2)
    out1 = one(case.forcings, case.params)
    out3 = three(case.forcings, {k: v.expand(-1, 3) for k, v in case.params.items()})
    for name in one.output_names:
        assert torch.allclose(out1[name], out3[name], rtol=1e-6, atol=1e-6), name


def test_constant_dynamic_series_equals_static_values():
    static, dynamic = HBV(nmul=2), HBV(nmul=2, dynamic=["BETA", "FC"])
    case = realistic_case(static, n_time=40, n_units=2)
    series = {k: v.expand(40, *v.shape) if k in ("BETA", "FC") else v for k, v in case.params.items()}
    a, b = static(case.forcings, case.params), dynamic(case.forcings, series)
    for name in static.output_names:
        assert torch.equal(a[name], b[name]), name


def test_hbv11p_without_capillary_rise_is_hbv_with_betaet():
    v11p, v10 = HBV11p(nmul=2), HBV(nmul=2, dynamic=["BETAET"])
    case = realistic_case(v11p, n_time=80, n_units=3)
    params = {**case.params, "C": torch.zeros_like(case.params["C"])}
    a = v11p(case.forcings, params)
    b = v10(case.forcings, {k: v.expand(80, *v.shape) if k == "BETAET" else v for k, v in params.items() if k != "C"})
    assert float(a["capillary"].abs().max()) == 0.0
    # 1.1p floors the lower zone at near_zero after capillary rise even when there is none;
    # the floor adds at most 1e-5 mm per step, visible only while the lower zone is empty
    for name in v10.output_names:
        assert torch.allclose(a[name], b[name], rtol=1e-6, atol=1e-4), name


def test_hbv2_without_lateral_exchange_or_elevation_rule_is_hbv11p():
    v2, v11p = HBV2(nmul=2, elevation_threshold=False), HBV11p(nmul=2)
    case = realistic_case(v2, n_time=80, n_units=5)
    params = {**case.params, "RT": torch.zeros_like(case.params["RT"])}
    a = v2(case.forcings, params, attributes=case.attributes)
    b = v11p(case.forcings, {k: v for k, v in params.items() if k not in ("RT", "AC")})
    assert float(a["lateral"].abs().max()) == 0.0
    for name in v11p.output_names:
        assert torch.equal(a[name], b[name]), name


def test_elevation_threshold_sets_tt_to_four_degrees_for_high_units():
    with_rule, without = HBV2(nmul=1), HBV2(nmul=1, elevation_threshold=False)
    case = realistic_case(with_rule, n_time=90, n_units=5)
    high = case.attributes["elevation"] >= 2000.0
    assert bool(high.any()) and not bool(high.all())
    tt = torch.where(high[:, None], torch.tensor(4.0), case.params["TT"])
    a = with_rule(case.forcings, case.params, attributes=case.attributes)
    b = without(case.forcings, {**case.params, "TT": tt}, attributes=case.attributes)
    c = without(case.forcings, case.params, attributes=case.attributes)
    for name in with_rule.output_names:
        assert torch.equal(a[name], b[name]), name
    assert not torch.equal(a["SWE"][:, high], c["SWE"][:, high])


def test_lateral_exchange_follows_upstream_area():
    model = HBV2(nmul=1)
    n_units = 5
    case = realistic_case(model, n_time=30, n_units=n_units)
    rt, ac = torch.full((n_units, 1), 2.0), torch.full((n_units, 1), 1000.0)
    # the lower zone drains slowly (K2) and feeds no capillary rise (C), so it never runs dry
    slow, no_rise = torch.full((n_units, 1), 0.001), torch.zeros(n_units, 1)
    out = model(
        case.forcings,
        {**case.params, "RT": rt, "AC": ac, "K2": slow, "C": no_rise},
        attributes=case.attributes,
        state={**model.initial_state(n_units), "SLZ": torch.full((n_units, 1), 500.0)},
    )
    area = case.attributes["upstream_area"]
    expected = (
        torch.where(
            area < 2500, ((area - 1000.0) / 1000.0).clamp(-1, 1), torch.exp((-(area - 2500.0) / 50.0).clamp(-10, 0))
        )
        * 2.0
    )
    # the lower zone stays far above zero, so the exchange is never cut by the floor
    # reported as the change of a ~500 mm store: float32 resolves it to about 3e-5 mm
    assert torch.allclose(out["lateral"], expected.expand(30, -1), atol=1e-4)
    assert float(out["lateral"][:, 0].max()) < 0 < float(out["lateral"][:, 2].min())


# ------------------------------------------------------------------ learning
class AttributeNet(nn.Module):
    """Static attributes -> raw parameters, repeated over time (a minimal regionalisation network)."""

    input_kind = "static"

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.linear(x)


def test_parameter_learning_reduces_streamflow_error():
    torch.manual_seed(0)
    n_time, n_units = 150, 6
    truth = Chain(runoff=HBV(nmul=1), routing=GammaRouting())
    case = make_case(truth, n_time=n_time, n_units=n_units, u_range=(0.3, 0.7), seed=4)
    forcings = seasonal_weather(n_time, n_units, seed=4)
    with torch.no_grad():
        target = truth(forcings, case.params)["Q"]
    static_inputs = torch.randn(n_units, 4)
    physics = Chain(runoff=HBV(nmul=2), routing=GammaRouting())
    model = DeltaModel(AttributeNet(4, physics.parameter_spec.n_channels()), physics, ParameterLearning())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    batch = Batch(forcings=forcings, static_inputs=static_inputs, warmup=50)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = ((model(batch)["Q"] - target[50:]) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.4 * losses[0], f"loss did not fall enough: {losses[0]:.4g} -> {losses[-1]:.4g}"


def test_attributes_fixture_covers_both_lateral_regimes():
    area = EXAMPLE_ATTRIBUTES["upstream_area"]
    assert bool((area < 2500).any() and (area >= 2500).any())


def test_recompute_memory_policy_gives_identical_results_and_gradients():
    model = HBV11p(nmul=2)
    case = realistic_case(model, n_time=50, n_units=3)
    fc = case.params["FC"].clone().requires_grad_(True)
    a = model(case.forcings, {**case.params, "FC": fc})
    b = model(case.forcings, {**case.params, "FC": fc}, engine=Engine(memory=Recompute(chunk_size=16)))
    (ga,) = torch.autograd.grad(a["Q"].sum(), fc)
    (gb,) = torch.autograd.grad(b["Q"].sum(), fc)
    assert torch.equal(a["Q"], b["Q"]) and torch.allclose(ga, gb, rtol=1e-6, atol=1e-7)


def test_hbv_and_routing_chain_under_recompute_equals_the_eager_engine():
    chain = Chain(runoff=HBV(nmul=2, dynamic=["BETA", "BETAET"]), routing=GammaRouting())
    assert chain.warmup_mode == "spinup"
    case = realistic_case(chain.members["runoff"], n_time=60, n_units=3, seed=6)
    case.params = {**case.params, "route_a": torch.linspace(0.2, 2.5, 3), "route_b": torch.linspace(0.5, 6.0, 3)}
    check_engine_equivalence(chain, case, Engine(memory=Recompute(chunk_size=16)))
    case.warmup = 20  # spin-up over 20 steps, then the main pass in chunks of 16
    check_engine_equivalence(chain, case, Engine(memory=Recompute(chunk_size=16)))
