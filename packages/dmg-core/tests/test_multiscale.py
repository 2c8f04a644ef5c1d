"""The multi-timescale composite on a toy linear reservoir run daily, then hourly; its networks per time scale,
day-aligned windows of hourly data and a run through the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from dmg.core import (
    Batch,
    ConfigError,
    DeltaModel,
    InputError,
    Parameter,
    SpecError,
    State,
    StepModel,
    Variable,
    integrate,
    registry,
)
from dmg.core.cli import main
from dmg.core.couplings import CouplingContext
from dmg.core.data import ArrayDataset
from dmg.core.data.alignment import check_whole_days, day_alignment
from dmg.core.data.sampler import WindowSampler
from dmg.core.multiscale import MultiTimescale, aggregate
from dmg.core.multiscale_learning import ScaleParameterLearning
from dmg.core.testing import Case, PhysicsModelTestKit

RATIO = 24
DAYS = 5
HOURS = 48


class LinearReservoir(StepModel):
    """``S += P - k S``, ``Q = k S``; the recession coefficient's bounds are per day (per step = day)."""

    forcings = (Variable("P", "mm/step"), Variable("T", "°C"))
    physical_parameters = (
        Parameter("k", 0.01, 0.5, "1/day", "recession coefficient"),
        Parameter("c", 0.0, 1.0, "", "share of the input that enters the store"),
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
        Parameter("c", 0.0, 1.0, "", "share of the input that enters the store"),
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


class TestMultiTimescaleKit(PhysicsModelTestKit):
    """The shared test kit, with the gradient reaching the coarse model through an attached handover."""

    # Every call spins the coarse model up over its own span: a series split in two is not one series.
    skip = ("state_carryover",)

    def make_model(self) -> MultiTimescale:
        return _mts(detach_handover=False)

    def make_case(self, model: MultiTimescale) -> Case:
        return Case(forcings=_series(), params=_params(), warmup=model.required_warmup)


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


# --------------------------------------------------------------------------- networks per time scale


def _learning_model() -> MultiTimescale:
    return MultiTimescale(
        coarse=LinearReservoir(dynamic=["k"]),
        fine=HourlyReservoir(),
        ratio=RATIO,
        coarse_steps=DAYS,
        aggregation={"P": "sum", "T": "mean"},
        handover={"S": "S", "W": "W"},
        shared={"c": "coarse"},
    )


class Recorder(nn.Module):
    """A pointwise linear network that records the length of the sequences it reads."""

    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs)
        self.lengths: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lengths.append(int(x.shape[0]))
        return self.linear(x)


def _batch(warmup: int) -> Batch:
    forcings = _series()
    return Batch(forcings=forcings, nn_inputs=torch.stack(list(forcings.values()), -1), warmup=warmup)


def test_each_scale_network_reads_its_own_span_and_supplies_its_own_parameters() -> None:
    phy = _learning_model()
    coarse_net, fine_net = Recorder(2, 2), Recorder(2, 2)  # coarse: k (dynamic) and c; fine: k and a
    model = DeltaModel(
        {"daily": coarse_net, "hourly": fine_net},
        phy,
        [
            ScaleParameterLearning(scale="coarse", network="daily"),
            ScaleParameterLearning(scale="fine", network="hourly"),
        ],
    )
    out = model(_batch(phy.required_warmup))
    assert out["Q"].shape == (HOURS, 3) and bool(out["Q"].isfinite().all())
    assert coarse_net.lengths == [DAYS] and fine_net.lengths == [HOURS]
    out["Q"].sum().backward()
    for net in (coarse_net, fine_net):  # the coarse network reaches the loss through the shared c
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in net.parameters())


def test_coarse_network_outputs_are_the_coarse_parameters_exactly() -> None:
    phy = _learning_model()
    net = Recorder(2, 2)
    coupling = ScaleParameterLearning(scale="coarse", network="default")
    assert coupling.learned_spec(phy).names == ("coarse.k", "coarse.c")
    batch = _batch(phy.required_warmup)
    ctx = CouplingContext(batch=batch, networks={"default": net}, phy_model=phy)
    coupling.before(ctx)
    daily_inputs = batch.nn_inputs[: phy.required_warmup].reshape(DAYS, RATIO, 3, 2).mean(1)
    expected = torch.sigmoid(net.linear(daily_inputs))[..., 0]
    k = phy.member_params(ctx.params, "coarse")["k"]
    low, high = 0.01, 0.5
    assert torch.allclose(k[..., 0], low + expected * (high - low), atol=1e-6)


class StaticNet(nn.Module):
    """A linear network on the static inputs ``[unit, attributes]``."""

    input_kind = "static"

    def __init__(self, n_static: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_static, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_a_static_network_supplies_static_parameters_of_its_scale() -> None:
    phy = _learning_model()
    net = StaticNet(2, 2)  # fine: k and a, both static
    batch = _batch(phy.required_warmup)
    batch.static_inputs = torch.tensor([[0.1, 1.0], [0.5, -1.0], [2.0, 0.0]])
    ctx = CouplingContext(batch=batch, networks={"default": net}, phy_model=phy)
    ScaleParameterLearning(scale="fine").before(ctx)
    u = torch.sigmoid(net.linear(batch.static_inputs))
    k, a = HourlyReservoir.physical_parameters[0], HourlyReservoir.physical_parameters[2]
    assert torch.allclose(ctx.params["fine.k"][:, 0], k.scale(u[:, 0]))
    assert torch.allclose(ctx.params["fine.a"][:, 0], a.scale(u[:, 1]))
    assert set(ctx.params) == {"fine.k", "fine.a"}


def test_scale_coupling_needs_a_multi_timescale_model() -> None:
    with pytest.raises(ValueError, match="needs a multi_timescale physics model"):
        ScaleParameterLearning(scale="fine").learned_spec(LinearReservoir())


def test_a_batch_shorter_than_the_coarse_span_is_refused() -> None:
    phy = _learning_model()
    model = DeltaModel(Recorder(2, 2), phy, ScaleParameterLearning(scale="fine"))
    with pytest.raises(InputError, match="warm-up of at least 120 steps"):
        model(_batch(phy.required_warmup - 1))


def test_day_alignment_of_hourly_dates() -> None:
    dates = np.arange(np.datetime64("2001-01-01T05:00"), np.datetime64("2001-01-04T00:00"), np.timedelta64(1, "h"))
    assert day_alignment(dates) == (24, 19)
    three_hourly = np.arange(np.datetime64("2001-01-01T03:00"), np.datetime64("2001-01-03"), np.timedelta64(3, "h"))
    assert day_alignment(three_hourly) == (8, 7)
    with pytest.raises(ConfigError, match=r"data\.window_alignment: 'day' needs a time step that divides a day"):
        day_alignment(np.arange(np.datetime64("2001-01-01T00"), np.datetime64("2001-01-05T00"), np.timedelta64(7, "h")))
    with pytest.raises(ConfigError, match=r"data\.window_alignment: 'day' needs steps at 00:00"):
        day_alignment(np.arange(np.datetime64("2001-01-01T00:30"), np.datetime64("2001-01-03"), np.timedelta64(1, "h")))
    check_whole_days(48, 24)
    with pytest.raises(ConfigError, match=r"data\.warmup: .* whole days"):
        check_whole_days(50, 24)


ALIGNED = {"n_units": 4, "n_time": 24 * 30 + 7, "length": 48, "warmup": 24 * 5, "batch_size": 4, "seed": 3}
ALIGNED.update(align=24, offset=7)


def test_aligned_sampler_draws_starts_at_00_00_only_and_resumes() -> None:
    sampler = WindowSampler(
        n_units=4, n_time=24 * 30 + 7, length=48, warmup=24 * 5, batch_size=4, seed=3, align=24, offset=7
    )
    starts = np.concatenate([sampler.draw()[1] for _ in range(50)])
    assert set((starts - 7) % 24) == {0}
    assert starts.min() >= 7 and (starts + 24 * 5 + 48).max() <= 24 * 30 + 7
    assert len(np.unique(starts)) > 10
    state = sampler.state_dict()
    again = WindowSampler(
        n_units=4, n_time=24 * 30 + 7, length=48, warmup=24 * 5, batch_size=4, seed=3, align=24, offset=7
    )
    again.load_state_dict(state)
    assert np.array_equal(again.draw()[1], sampler.draw()[1])
    unaligned = WindowSampler(n_units=4, n_time=24 * 30 + 7, length=48, warmup=24 * 5, batch_size=4, seed=3)
    with pytest.raises(ConfigError, match="align"):
        unaligned.load_state_dict(state)
    with pytest.raises(ConfigError, match="no window"):
        WindowSampler(n_units=1, n_time=100, length=40, warmup=48, batch_size=1, align=24, offset=20)


# --------------------------------------------------------------------------- end to end through the CLI


class PointNet(nn.Module):
    """A pointwise linear network built from a run's sizes."""

    input_kind = "sequence"
    output_kind = "single"

    from dmg.core.components import NetworkConfig as Config

    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs)

    @classmethod
    def from_config(cls, config, *, n_inputs, n_outputs, n_static=0):
        return cls(n_inputs, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


@pytest.fixture
def hourly_run(tmp_path: Path) -> Iterator[Path]:
    """An hourly toy dataset from 2001-01-01 00:00 and a run config of the toy daily/hourly model on it."""
    rng = np.random.default_rng(0)
    n = 24 * 40
    p = (rng.random((2, n)) < 0.1) * rng.exponential(2.0, (2, n))
    t = rng.normal(8.0, 4.0, (2, n))
    q = 0.05 * np.convolve(p[0], np.ones(12) / 12, mode="same")[None].repeat(2, 0) + 0.01
    dates = np.datetime64("2001-01-01T00:00") + np.arange(n) * np.timedelta64(1, "h")
    ArrayDataset.from_dicts({"P": p, "T": t, "Q": q}, ["a", "b"], dates).save(tmp_path / "hourly.npz")
    config = {
        "seed": 0,
        "data": {
            "dataset": {"name": "npz", "path": str(tmp_path / "hourly.npz")},
            "roles": {"forcings": {"P": "P", "T": "T"}, "nn_inputs": ["P", "T"], "targets": {"Q": "Q"}},
            "warmup": 24 * DAYS + 24,
            "window_alignment": "day",
            "train": {"start": "2001-01-06", "end": "2001-01-25"},
            "test": {"start": "2001-01-31", "end": "2001-02-09"},
        },
        "model": {
            "physics": {
                "name": "multi_timescale",
                "coarse": {"name": "toy_daily", "dynamic": ["k"]},
                "fine": {"name": "toy_hourly"},
                "ratio": RATIO,
                "coarse_steps": DAYS,
                "aggregation": {"P": "sum", "T": "mean"},
                "handover": {"S": "S"},
                "shared": {"c": "coarse"},
            },
            "nn": {"daily": {"name": "point_net"}, "hourly": {"name": "point_net"}},
            "couplings": [
                {"name": "scale_parameter_learning", "scale": "coarse", "network": "daily"},
                {"name": "scale_parameter_learning", "scale": "fine", "network": "hourly"},
            ],
        },
        "train": {"epochs": 1, "batch_size": 2, "window": 48, "iterations_per_epoch": 2, "progress": False},
        "evaluate": {"metrics": ["rmse"], "plots": False},
        "output": {"root": str(tmp_path / "runs"), "predictions": "npz"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    registry.register("dmg.physics", "toy_daily", LinearReservoir)
    registry.register("dmg.physics", "toy_hourly", HourlyReservoir)
    registry.register("dmg.nn", "point_net", PointNet)
    try:
        yield tmp_path
    finally:
        registry.unregister("dmg.physics", "toy_daily")
        registry.unregister("dmg.physics", "toy_hourly")
        registry.unregister("dmg.nn", "point_net")


def test_dmg_train_and_evaluate_a_multi_timescale_model_on_hourly_data(hourly_run: Path) -> None:
    assert main(["train", str(hourly_run / "run.yaml"), "--run-dir", str(hourly_run / "run")]) == 0
    evaluation = hourly_run / "run" / "evaluations" / "test_best"
    report = json.loads((evaluation / "metrics.json").read_text())
    rmse = report["targets"]["Q"]["summary"]["rmse"]["median"]
    assert rmse is not None and np.isfinite(rmse)
    with np.load(next(evaluation.glob("predictions*.npz"))) as saved:
        hours = [v for v in saved.values() if v.dtype.kind == "M"]
    assert (
        hours and len(hours[0]) == 10 * 24 and hours[0][0] == np.datetime64("2001-01-31T00:00")
    )  # the test period, hourly


def test_a_warmup_shorter_than_the_coarse_span_names_data_warmup(hourly_run: Path, capsys) -> None:
    config = yaml.safe_load((hourly_run / "run.yaml").read_text())
    config["data"]["warmup"] = 24 * DAYS - 24
    (hourly_run / "short.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["train", str(hourly_run / "short.yaml"), "--run-dir", str(hourly_run / "short")]) == 2
    assert "data.warmup: the physics model needs a warm-up of at least 120 steps" in capsys.readouterr().err


def test_a_warmup_of_part_of_a_day_is_refused_with_day_alignment(hourly_run: Path, capsys) -> None:
    config = yaml.safe_load((hourly_run / "run.yaml").read_text())
    config["data"]["warmup"] = 24 * DAYS + 30
    (hourly_run / "part.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["train", str(hourly_run / "part.yaml"), "--run-dir", str(hourly_run / "part")]) == 2
    assert "data.warmup: with data.window_alignment 'day' the warm-up must be whole days" in capsys.readouterr().err
