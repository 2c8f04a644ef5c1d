"""The multi-timescale composite on a toy linear reservoir run daily, then hourly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from dmg.core import ConfigError, Parameter, SpecError, State, StepModel, Variable, integrate, registry
from dmg.core.multiscale import MultiTimescale, aggregate

RATIO = 24
DAYS = 5
HOURS = 48


class LinearReservoir(StepModel):
    """``S += P - k S``, ``Q = k S``; the recession coefficient's bounds are per day (per step = day)."""

    forcings = (Variable("P", "mm/step"), Variable("T", "°C"))
    physical_parameters = (
        Parameter("k", 0.01, 0.5, "1/day", "recession coefficient"),
        Parameter("c", 0.0, 1.0, "", "share of the rain that enters the store"),
    )
    states = (State("S", "mm", initial=1.0), State("W", "mm", initial=0.5))
    outputs = (Variable("Q", "mm/step"),)

    def step(self, state, forcing_t, params_t, processes):
        s = state["S"] + params_t["c"] * forcing_t["P"]
        q = params_t["k"] * s
        w = state["W"] + 0.01 * forcing_t["T"]
        return {"S": s - q, "W": w}, {"Q": q}


class HourlyReservoir(LinearReservoir):
    """The same store per hour: ``k`` has bounds per hour, one extra hourly-only parameter ``a``."""

    physical_parameters = (
        Parameter("k", 0.01 / 24, 0.5 / 24, "1/hour", "recession coefficient"),
        Parameter("c", 0.0, 1.0, "", "share of the rain that enters the store"),
        Parameter("a", 0.0, 2.0, "", "hourly-only multiplier of the outflow"),
    )
    states = (State("S", "mm", initial=3.0), State("W", "mm", initial=0.5), State("E", "mm", initial=0.25))

    def step(self, state, forcing_t, params_t, processes):
        new, out = super().step(state, forcing_t, params_t, processes)
        return {**new, "E": state["E"]}, {"Q": params_t["a"] * out["Q"]}


def _mts(**options) -> MultiTimescale:
    settings = {
        "ratio": RATIO,
        "coarse_steps": DAYS,
        "aggregation": {"P": "sum", "T": "mean"},
        "handover": {"S": "S", "W": {"state": "W", "scale": 2.0, "offset": 1.0}},
        "shared": {"c": "coarse"},
    }
    settings.update(options)
    return MultiTimescale(coarse=LinearReservoir(nmul=2), fine=HourlyReservoir(nmul=2), **settings)


def _series(n_units: int = 3, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = RATIO * DAYS + HOURS
    p = (torch.rand(n, n_units, generator=g) < 0.2) * torch.rand(n, n_units, generator=g) * 4.0
    t = 10.0 + 5.0 * torch.randn(n, n_units, generator=g)
    return {"P": p.to(dtype), "T": t.to(dtype)}


def _params(n_units: int = 3, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {
        "coarse.k": (0.05 + 0.3 * torch.rand(n_units, 2, generator=g)).to(dtype),
        "coarse.c": (0.2 + 0.6 * torch.rand(n_units, 2, generator=g)).to(dtype),
        "fine.k": (0.002 + 0.01 * torch.rand(n_units, 2, generator=g)).to(dtype),
        "fine.a": (0.5 + torch.rand(n_units, 2, generator=g)).to(dtype),
    }


def test_aggregate_blocks() -> None:
    x = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(aggregate(x, 3, "sum"), torch.tensor([[6.0, 9.0], [24.0, 27.0]]))
    assert torch.equal(aggregate(x, 3, "mean"), torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    assert torch.equal(aggregate(x, 3, "min"), torch.tensor([[0.0, 1.0], [6.0, 7.0]]))
    assert torch.equal(aggregate(x, 3, "max"), torch.tensor([[4.0, 5.0], [10.0, 11.0]]))
    with pytest.raises(ValueError, match="whole number of blocks"):
        aggregate(x[:5], 3, "sum")


def test_signature_prefixes_and_omits_shared_parameters() -> None:
    mts = _mts()
    assert mts.parameter_spec.names == ("coarse.k", "coarse.c", "fine.k", "fine.a")
    assert mts.state_names == ("coarse.S", "coarse.W", "fine.S", "fine.W", "fine.E")
    assert mts.output_names == ("Q",)
    assert mts.forcing_names == ("P", "T")
    assert mts.warmup_mode == "inline" and mts.signature.warmup_modes == ("inline",)
    assert mts.required_warmup == RATIO * DAYS


def test_coarse_run_handover_and_fine_run_match_the_members_run_alone() -> None:
    mts, forcings, params = _mts(), _series(), _params()
    span = mts.required_warmup
    out = integrate(mts, forcings, params, warmup=span)
    assert out["Q"].shape == (HOURS, 3)

    daily = mts.coarse_forcings(forcings)
    assert torch.allclose(daily["P"], forcings["P"][:span].reshape(DAYS, RATIO, 3).sum(1))
    assert torch.allclose(daily["T"], forcings["T"][:span].reshape(DAYS, RATIO, 3).mean(1))
    coarse = integrate(mts.coarse, daily, {"k": params["coarse.k"], "c": params["coarse.c"]})
    for name in ("S", "W"):
        assert torch.equal(out.state[f"coarse.{name}"], coarse.state[name])

    start = mts.handover(coarse.state, mts.fine.initial_state(3))
    assert torch.equal(start["S"], coarse.state["S"])
    assert torch.allclose(start["W"], 2.0 * coarse.state["W"] + 1.0)
    assert torch.equal(start["E"], torch.full((3, 2), 0.25))

    hourly_k = HourlyReservoir.physical_parameters[0]
    c_fine = params["coarse.c"]  # same bounds [0, 1] at both scales: the rescaling keeps the value
    fine_params = {"k": params["fine.k"], "c": c_fine, "a": params["fine.a"]}
    assert torch.allclose(mts.member_params(params, "fine")["c"], c_fine)
    assert hourly_k.high < LinearReservoir.physical_parameters[0].high
    fine = integrate(mts.fine, {k: v[span:] for k, v in forcings.items()}, fine_params, state=start)
    assert torch.allclose(out["Q"], fine["Q"])
    for name in ("S", "W", "E"):
        assert torch.allclose(out.state[f"fine.{name}"], fine.state[name])


def test_outputs_over_the_coarse_span_are_nan_and_a_longer_warmup_trims_the_fine_span() -> None:
    mts, forcings, params = _mts(), _series(), _params()
    full = integrate(mts, forcings, params)
    span = mts.required_warmup
    assert bool(full["Q"][:span].isnan().all()) and bool(full["Q"][span:].isfinite().all())
    trimmed = integrate(mts, forcings, params, warmup=span + 12)
    assert torch.equal(trimmed["Q"], full["Q"][span + 12 :])


def test_shared_parameter_is_rescaled_to_the_receiving_bounds() -> None:
    mts = _mts(shared={"k": "coarse"})
    assert "fine.k" not in mts.parameter_spec and "coarse.k" in mts.parameter_spec
    params = {k: v for k, v in _params().items() if k != "fine.k"}
    params["fine.c"] = torch.full((3, 2), 0.5)
    fine = mts.member_params(params, "fine")
    daily, hourly = LinearReservoir.physical_parameters[0], HourlyReservoir.physical_parameters[0]
    u = (params["coarse.k"] - daily.low) / (daily.high - daily.low)
    assert torch.allclose(fine["k"], hourly.low + u * (hourly.high - hourly.low))
    assert torch.allclose(fine["k"], params["coarse.k"] / 24)  # these bounds differ by the time step

    from_fine = _mts(shared={"k": "fine"})
    assert "coarse.k" not in from_fine.parameter_spec
    p = {"coarse.c": params["coarse.c"], "fine.c": params["fine.c"], "fine.k": params["coarse.k"] / 24}
    p["fine.a"] = params["fine.a"]
    assert torch.allclose(from_fine.member_params(p, "coarse")["k"], params["coarse.k"], rtol=1e-5)


def test_dynamic_parameters_are_block_means_for_the_coarse_model_and_the_fine_span_for_the_fine() -> None:
    mts = MultiTimescale(
        coarse=LinearReservoir(nmul=2, dynamic=["k"]),
        fine=HourlyReservoir(nmul=2, dynamic=["k"]),
        ratio=RATIO,
        coarse_steps=DAYS,
        aggregation={"P": "sum", "T": "mean"},
        handover={"S": "S"},
    )
    n = RATIO * DAYS + HOURS
    params = {k: v for k, v in _params().items()}
    params["coarse.k"] = torch.linspace(0.05, 0.4, n)[:, None, None].expand(n, 3, 2).contiguous()
    params["fine.k"] = torch.linspace(0.001, 0.02, n)[:, None, None].expand(n, 3, 2).contiguous()
    params["fine.c"] = torch.full((3, 2), 0.5)
    coarse = mts.member_params(params, "coarse")["k"]
    assert coarse.shape == (DAYS, 3, 2)
    assert torch.allclose(coarse, params["coarse.k"][: RATIO * DAYS].reshape(DAYS, RATIO, 3, 2).mean(1))
    assert torch.equal(mts.member_params(params, "fine")["k"], params["fine.k"][RATIO * DAYS :])
    assert integrate(mts, _series(), params, warmup=mts.required_warmup)["Q"].isfinite().all()


def _gradients(mts: MultiTimescale) -> dict[str, torch.Tensor | None]:
    params = {k: v.double().requires_grad_() for k, v in _params().items()}
    out = integrate(mts.double(), {k: v.double() for k, v in _series().items()}, params, warmup=mts.required_warmup)
    out["Q"].sum().backward()
    return {k: v.grad for k, v in params.items()}


def test_gradients_reach_the_fine_and_shared_parameters_and_the_coarse_ones_only_without_detach() -> None:
    grads = _gradients(_mts())
    for name in ("fine.k", "fine.a", "coarse.c"):  # coarse.c is shared into the fine run
        assert grads[name] is not None and bool((grads[name] != 0).all()), name
    assert grads["coarse.k"] is None or bool((grads["coarse.k"] == 0).all())
    attached = _gradients(_mts(detach_handover=False))
    assert attached["coarse.k"] is not None and bool((attached["coarse.k"] != 0).all())


def test_float64_gradcheck_through_handover_and_sharing() -> None:
    mts = _mts(detach_handover=False, coarse_steps=2).double()
    forcings = {k: v[: RATIO * 2 + 6, :1].double() for k, v in _series().items()}
    base = {k: v[:1].double() for k, v in _params().items()}

    def run(k_c: torch.Tensor, c_c: torch.Tensor, k_f: torch.Tensor) -> torch.Tensor:
        params = {**base, "coarse.k": k_c, "coarse.c": c_c, "fine.k": k_f}
        return integrate(mts, forcings, params, warmup=mts.required_warmup)["Q"]

    inputs = tuple(base[k].clone().requires_grad_() for k in ("coarse.k", "coarse.c", "fine.k"))
    assert torch.autograd.gradcheck(run, inputs)


def test_short_series_and_wrong_members_are_refused() -> None:
    mts = _mts()
    short = {k: v[: mts.required_warmup] for k, v in _series().items()}
    with pytest.raises(ValueError, match="coarse span of 120 steps"):
        integrate(mts, short, _params())
    with pytest.raises(SpecError, match="coarse= and fine="):
        MultiTimescale(LinearReservoir(), ratio=2, coarse_steps=1)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"aggregation": {"P": "sum"}}, "aggregation: say how"),
        ({"aggregation": {"P": "sum", "T": "mean", "X": "max"}}, "aggregation.X"),
        ({"aggregation": {"P": "sum", "T": "median"}}, "aggregation.T"),
        ({"handover": {"Z": "S"}}, "handover.Z"),
        ({"handover": {"S": "Z"}}, "handover.S"),
        ({"handover": {"S": {"state": "S", "factor": 2}}}, "handover.S.factor"),
        ({"shared": {"a": "coarse"}}, "shared.a"),
        ({"shared": {"k": "both"}}, "shared.k"),
        ({"ratio": 0}, "ratio"),
    ],
)
def test_config_errors_name_the_key(options, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _mts(**options)


def test_shared_parameter_dynamic_in_one_model_only_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"shared\.k: 'k' is time-varying in one model only"):
        MultiTimescale(
            coarse=LinearReservoir(dynamic=["k"]),
            fine=HourlyReservoir(),
            ratio=2,
            coarse_steps=1,
            aggregation={"P": "sum", "T": "mean"},
            shared={"k": "coarse"},
        )


@pytest.fixture
def registered() -> Iterator[None]:
    registry.register("dmg.physics", "toy_daily", LinearReservoir)
    registry.register("dmg.physics", "toy_hourly", HourlyReservoir)
    try:
        yield
    finally:
        registry.unregister("dmg.physics", "toy_daily")
        registry.unregister("dmg.physics", "toy_hourly")


def _config(**options) -> dict:
    config = {
        "name": "multi_timescale",
        "coarse": {"name": "toy_daily", "nmul": 2},
        "fine": {"name": "toy_hourly", "nmul": 2},
        "ratio": RATIO,
        "coarse_steps": DAYS,
        "aggregation": {"P": "sum", "T": "mean"},
        "handover": {"S": "S"},
        "shared": {"c": "coarse"},
    }
    config.update(options)
    return config


def test_builds_from_a_config_through_the_registry(registered) -> None:
    from dmg.core.config import resolve_component

    cls, cfg = resolve_component("dmg.physics", _config(), "model.physics")
    mts = cls.from_config(cfg)
    assert isinstance(mts, MultiTimescale) and mts.nmul == 2
    assert torch.allclose(
        integrate(mts, _series(), _params(), warmup=mts.required_warmup)["Q"],
        integrate(_mts(handover={"S": "S"}), _series(), _params(), warmup=mts.required_warmup)["Q"],
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"coarse": None}, "model.physics.coarse: give the coarse model"),
        ({"fine": {"name": "toy_hourly", "nmul": 1}}, "same nmul"),
        ({"fine": {"name": "toy_hourly", "nmull": 2}}, "nmull"),
        ({"handover": {"S": "nope"}}, "model.physics.handover.S"),
        ({"coarse_steps": "many"}, "coarse_steps"),
    ],
)
def test_config_file_errors_name_the_key(registered, options, key) -> None:
    from dmg.core.config import resolve_component

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cls, cfg = resolve_component("dmg.physics", _config(**options), "model.physics")
        cls.from_config(cfg)
