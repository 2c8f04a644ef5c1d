import pytest
import torch

from dmg.core import Parameter, ParameterSpec, ShapeError, SpecError


def spec(nmul=3, dynamic=(), layout="parameter_major"):
    return ParameterSpec(
        (
            Parameter("a", 0.0, 10.0, "mm"),
            Parameter("b", -1.0, 1.0),
            Parameter("c", 1.0, 2.0),
            Parameter("route", 0.0, 5.0, per_component=False),
        ),
        dynamic=frozenset(dynamic),
        nmul=nmul,
        layout=layout,
    )


def test_channel_counts_and_names():
    s = spec(nmul=3, dynamic=("b",))
    assert s.n_channels() == 3 * 3 + 1
    assert s.channel_names()[:4] == ("a[0]", "a[1]", "a[2]", "b[0]")
    assert s.channel_names()[-1] == "route"
    assert s.n_static_channels == 2 * 3 + 1 and s.n_dynamic_channels == 3
    assert spec(nmul=2, layout="component_major").channel_names()[:3] == ("a[0]", "b[0]", "c[0]")


def test_parameter_major_layout_places_channel_i_param_times_nmul_plus_component():
    s = spec(nmul=3)
    raw = torch.zeros(2, 4, s.n_channels())
    # set u = 1 on the channel of parameter b (index 1), component 2 -> channel 1*3+2 = 5
    raw[..., 5] = 1e4
    out = s.from_raw(raw)
    assert torch.allclose(out["b"][:, 2], torch.ones(4))
    assert torch.allclose(out["b"][:, :2], torch.zeros(4, 2))  # sigmoid(0)=0.5 -> midpoint of [-1, 1]
    assert out["route"].shape == (4,)


def test_component_major_layout_matches_reordered_parameter_major():
    pm, cm = spec(nmul=2), spec(nmul=2, layout="component_major")
    raw_pm = torch.randn(5, 3, pm.n_channels())
    per = raw_pm[..., :6].reshape(5, 3, 3, 2)  # [.., param, comp]
    raw_cm = torch.cat([per.transpose(-1, -2).reshape(5, 3, 6), raw_pm[..., 6:]], dim=-1)
    a, b = pm.from_raw(raw_pm), cm.from_raw(raw_cm)
    for name in pm.names:
        assert torch.equal(a[name], b[name])


def test_static_takes_last_step_dynamic_takes_series_and_hold():
    s = spec(nmul=2, dynamic=("a",))
    raw = torch.randn(7, 3, s.n_channels())
    out = s.from_raw(raw)
    assert out["a"].shape == (7, 3, 2) and out["b"].shape == (3, 2)
    assert torch.allclose(out["b"], s["b"].scale(torch.sigmoid(raw[-1, :, 2:4])))
    held = s.from_raw(raw, static_step=3, hold_dynamic=True)
    assert torch.allclose(held["a"], s["a"].scale(torch.sigmoid(raw[3, :, 0:2])).expand(7, 3, 2))
    assert torch.allclose(held["b"], s["b"].scale(torch.sigmoid(raw[3, :, 2:4])))


def test_from_split_orders_static_then_shared_and_dynamic():
    s = spec(nmul=2, dynamic=("b",))
    static = torch.randn(4, s.n_static_channels)
    dynamic = torch.rand(6, 4, s.n_dynamic_channels)
    out = s.from_split(static, dynamic, transform="sigmoid", dynamic_transform="identity")
    assert torch.allclose(out["b"], s["b"].scale(dynamic.reshape(6, 4, 1, 2)[..., 0, :]))
    assert torch.allclose(out["c"], s["c"].scale(torch.sigmoid(static[:, 2:4])))
    assert torch.allclose(out["route"], s["route"].scale(torch.sigmoid(static[:, 4])))


def test_values_stay_inside_bounds_at_extremes():
    s = spec()
    for value in (-1e6, 1e6):
        out = s.from_raw(torch.full((1, 2, s.n_channels()), value))
        for p in s:
            assert bool((out[p.name] >= p.low).all() and (out[p.name] <= p.high).all())


def test_wrong_channel_count_names_expected_channels():
    with pytest.raises(ShapeError, match=r"expected 10 .*a\[0\]"):
        spec().from_raw(torch.zeros(3, 2, 9))


def test_declaration_errors():
    with pytest.raises(SpecError, match="duplicate"):
        ParameterSpec((Parameter("a", 0, 1), Parameter("a", 0, 1)))
    with pytest.raises(SpecError, match="not parameters"):
        ParameterSpec((Parameter("a", 0, 1),), dynamic=frozenset({"z"}))
    with pytest.raises(SpecError, match="low <= high"):
        Parameter("a", 1.0, 0.0)
    with pytest.raises(SpecError, match="outside"):
        Parameter("a", 0.0, 1.0, default=2.0)
    with pytest.raises(SpecError, match="nmul"):
        ParameterSpec((Parameter("a", 0, 1),), nmul=0)


def test_subset_prefixed_concat():
    s = spec(nmul=2, dynamic=("a",))
    sub = s.subset(["c", "a"])
    assert sub.names == ("a", "c") and sub.dynamic == {"a"}
    pre = s.prefixed("m1")
    assert pre.names[0] == "m1.a" and pre.dynamic == {"m1.a"}
    joined = ParameterSpec.concat([s, pre])
    assert len(joined) == 8 and joined.nmul == 2
    with pytest.raises(SpecError, match="different nmul"):
        ParameterSpec.concat([spec(nmul=2), spec(nmul=3).prefixed("x")])


def test_validate_reports_missing_unknown_and_shape():
    s = spec(nmul=2)
    good = {"a": torch.zeros(3, 2), "b": torch.zeros(3, 2), "c": torch.zeros(3, 2), "route": torch.zeros(3)}
    s.validate(good, n_time=5, n_units=3)
    with pytest.raises(SpecError, match="missing"):
        s.validate({k: v for k, v in good.items() if k != "a"}, 5, 3)
    with pytest.raises(SpecError, match="unknown"):
        s.validate({**good, "zz": torch.zeros(3, 2)}, 5, 3)
    with pytest.raises(ShapeError, match="'route'"):
        s.validate({**good, "route": torch.zeros(3, 2)}, 5, 3)


def test_from_raw_reads_dynamic_channels_in_place_for_both_layouts():
    for layout in ("parameter_major", "component_major"):
        s = spec(nmul=3, dynamic=("b", "route"), layout=layout)
        raw = torch.randn(6, 4, s.n_channels())
        full = s.unpack(raw, s.parameters)  # every channel of every step
        out = s.from_raw(raw)
        assert torch.equal(out["b"], full["b"]) and torch.equal(out["route"], full["route"])
        assert torch.equal(out["a"], full["a"][-1]) and torch.equal(out["c"], full["c"][-1])


@pytest.mark.parametrize("layout", ["parameter_major", "component_major"])
@pytest.mark.parametrize("transform", ["sigmoid", "identity", "clamp"])
def test_raw_to_physical_gradients_match_finite_differences(layout, transform):
    spec = ParameterSpec(
        (
            Parameter("a", 0.0, 10.0),
            Parameter("b", -1.0, 1.0),
            Parameter("c", 0.5, 5.0, per_component=False),
            Parameter("d", 1.0, 2.0, per_component=False),
        ),
        dynamic=frozenset({"b", "d"}),
        nmul=3,
        layout=layout,
    )
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(5, 2, spec.n_channels(), generator=g, dtype=torch.float64) * 0.8 + 0.1  # away from clamp's kinks
    raw.requires_grad_(True)

    def every(mapping):
        return tuple(mapping[n] for n in spec.names)

    for static_step, hold in ((-1, False), (2, False), (2, True)):
        assert torch.autograd.gradcheck(
            lambda r, step=static_step, hold=hold: every(
                spec.from_raw(r, transform=transform, static_step=step, hold_dynamic=hold)
            ),
            (raw,),
        )
    static_raw = raw[0, :, : spec.n_static_channels].detach().clone().requires_grad_(True)
    dynamic_raw = raw[:, :, : spec.n_dynamic_channels].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda s, d: every(spec.from_split(s, d, transform=transform)), (static_raw, dynamic_raw)
    )
    # one output's gradient reaches exactly its own channels, at the steps that are read
    out = spec.from_raw(raw, transform=transform, static_step=2)
    (grad,) = torch.autograd.grad(out["a"].sum(), raw)
    channels = spec.channel_index([spec["a"]])
    assert bool(grad[2][:, channels].ne(0).all()) or transform == "clamp"
    mask = torch.ones_like(grad, dtype=torch.bool)
    mask[2][:, channels] = False
    assert float(grad[mask].abs().max()) == 0.0
