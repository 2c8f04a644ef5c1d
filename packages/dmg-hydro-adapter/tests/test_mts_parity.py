"""Parity of the multi-timescale δHBV with the published implementation (hydrodl2 1.4.0, ``Hbv_2_mts``).

The published model is a configuration of dmg-core's :class:`~dmg.core.multiscale.MultiTimescale`:
the daily :class:`~dmg.hydro.HBV2` spins up over 351 days aggregated from the hourly record, hands
its five stores to the hourly model, which runs 336 hours (see ``dmg.hydro.multiscale``). Every
daily state series, handed-over state, hourly state series and output must satisfy
``max|ours - ref| <= 1e-5 * max|ref| + 1e-6`` in float32 (the spec's tolerance).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmg.core import Batch, Chain, DeltaModel, integrate
from dmg.core.multiscale import MultiTimescale
from dmg.core.multiscale_learning import ScaleParameterLearning
from dmg.hydro import HBV2
from dmg.hydro.gauges import GaugeRouting, RoutingPairs
from dmg.hydro.hbv import HBV2Hourly, HBV21Hourly
from dmg.hydro.hbv.reference import FixedOutput, worst_ratio
from dmg.hydro.multiscale import PUBLISHED_DAYS, hbv_multi_timescale

REFERENCE = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "hbv_hourly_reference_hydrodl2_1.4.0.npz"
).resolve()
CASES = {"mts_h2h_n1": HBV2Hourly, "mts_h21h_n2": HBV21Hourly}
STATES = {"SNOWPACK": "SP", "MELTWATER": "MW", "SM": "SM", "SUZ": "SUZ", "SLZ": "SLZ"}
HOURS = 336
SPAN = PUBLISHED_DAYS * 24


class Case:
    """One multi-timescale reference case: inputs, parameters and expected series."""

    def __init__(self, arrays: np.lib.npyio.NpzFile, name: str) -> None:
        self.name = name
        self.meta = json.loads(str(arrays["meta_json"]))["cases"][name]
        prefix = f"{name}__"
        self.arrays = {k[len(prefix) :]: torch.from_numpy(arrays[k]) for k in arrays.files if k.startswith(prefix)}
        record = np.concatenate([arrays["x_phy_spinup"], arrays["x_phy"]])
        start = len(arrays["x_phy_spinup"]) + int(self.meta["hif_first_hour_in_x_phy"])
        series = torch.from_numpy(record[start - SPAN : start + HOURS])
        self.forcings = {name: series[..., i] for i, name in enumerate(("P", "T", "PET"))}
        self.attributes = {
            "upstream_area": torch.from_numpy(arrays["ac_all"]).float(),
            "elevation": torch.from_numpy(arrays["elev_all"]).float(),
        }
        self.areas = torch.from_numpy(arrays["areas"]).float()
        self.outlet_topo = torch.from_numpy(arrays["outlet_topo"])
        self.nmul = int(self.meta["nmul"])
        self.daily_dynamic = [p.removeprefix("par") for p in self.meta["lof_dynamic"]]
        self.hourly_dynamic = [p.removeprefix("par") for p in self.meta["dynamic"]]

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.arrays[key]

    def model(self, hourly=None) -> MultiTimescale:
        """The published arrangement, with the hourly model of the case (or ``hourly``)."""
        daily = HBV2(nmul=self.nmul, dynamic=self.daily_dynamic)
        if hourly is None:
            hourly = CASES[self.name](nmul=self.nmul, dynamic=self.hourly_dynamic)
        return hbv_multi_timescale(daily, hourly)

    def params(self, model: MultiTimescale) -> dict[str, torch.Tensor]:
        """The composite's physical parameters from the published values, over the whole hourly series."""
        out = {}
        for name in model.parameter_spec.names:
            scale, short = name.split(".", 1)
            value = self[f"lof_par__par{short}" if scale == "coarse" else f"par__par{short}"]
            if model.parameter_spec.is_dynamic(name):
                if scale == "coarse":  # one value per day, held over its hours; unused after the daily span
                    held = value.repeat_interleave(24, dim=0)
                    value = torch.cat([held, held[-1:].expand(HOURS, *held.shape[1:])])
                else:  # hourly values; unused over the daily span
                    value = torch.cat([value[:1].expand(SPAN, *value.shape[1:]), value])
            out[name] = value
        return out


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    if not REFERENCE.is_file():
        pytest.skip(f"reference outputs not found: {REFERENCE}")
    with np.load(REFERENCE) as arrays:
        return {name: Case(arrays, name) for name in CASES}


def stepwise(model, forcings, params, attributes, state, n_steps):
    """Every state after every step, ``[time, unit, nmul]``, running one step at a time from ``state``."""
    series: dict[str, list[torch.Tensor]] = {k: [] for k in model.state_names}
    for t in range(n_steps):
        step_params = {k: v[t : t + 1] if model.parameter_spec.is_series(k, v) else v for k, v in params.items()}
        out = integrate(
            model, {k: v[t : t + 1] for k, v in forcings.items()}, step_params, attributes=attributes, state=state
        )
        state = out.state
        for k in series:
            series[k].append(state[k])
    return {k: torch.stack(v) for k, v in series.items()}


@pytest.mark.parametrize("name", CASES)
def test_daily_aggregation_of_the_hourly_record_is_the_published_daily_forcing(cases, name):
    case = cases[name]
    mts = case.model()
    daily = mts.coarse_forcings(case.forcings)
    for i, var in enumerate(("P", "T", "PET")):
        assert worst_ratio(daily[var], case["x_phy_lof"][..., i]) <= 1.0, var
    assert torch.equal(torch.stack([case.forcings[v][SPAN:] for v in ("P", "T", "PET")], -1), case["x_phy_hif"])


@pytest.mark.parametrize("name", CASES)
def test_shared_parameters_take_the_daily_value_rescaled_to_the_hourly_bounds(cases, name):
    case = cases[name]
    mts = case.model()
    params = case.params(mts)
    hourly = mts.member_params(params, "fine")
    assert set(mts.config.shared) == {p.removeprefix("par") for p in case.meta["static_from_lof"]}
    for short, value in hourly.items():
        assert worst_ratio(value, case[f"par__par{short}"]) <= 1.0, short
    if name == "mts_h21h_n2":  # K0 static: the same u is 0.05 + 0.85 u daily and 0.05 + 11.95 u hourly
        assert float(hourly["K0"].max()) > 2.0 > float(params["coarse.K0"].max())


@pytest.mark.parametrize("name", CASES)
def test_parity_of_daily_states_handover_hourly_states_and_runoff(cases, name):
    case = cases[name]
    mts = case.model()
    params = case.params(mts)
    ratios: dict[str, float] = {}
    with torch.no_grad():
        out = integrate(mts, case.forcings, params, attributes=case.attributes, warmup=SPAN)
        ratios["out Qs"] = worst_ratio(out["Q"], case["out__Qs"][..., 0])
        for ref_name, ours in STATES.items():
            ratios[f"handover {ref_name}"] = worst_ratio(out.state[f"coarse.{ours}"], case[f"handover__{ref_name}"])
            ratios[f"final hourly {ref_name}"] = worst_ratio(out.state[f"fine.{ours}"], case[f"state__{ref_name}"][-1])

        daily = stepwise(
            mts.coarse,
            mts.coarse_forcings(case.forcings),
            mts.member_params(params, "coarse"),
            case.attributes,
            None,
            PUBLISHED_DAYS,
        )
        start = mts.handover({k: v[-1] for k, v in daily.items()}, mts.fine.initial_state(3))
        fine_forcings = {k: v[SPAN:] for k, v in case.forcings.items()}
        hourly = stepwise(mts.fine, fine_forcings, mts.member_params(params, "fine"), case.attributes, start, HOURS)
    for ref_name, ours in STATES.items():
        ratios[f"daily {ref_name}"] = worst_ratio(daily[ours], case[f"lof_state__{ref_name}"])
        ratios[f"hourly {ref_name}"] = worst_ratio(hourly[ours], case[f"state__{ref_name}"])
    bad = {k: round(v, 3) for k, v in ratios.items() if v > 1.0}
    assert not bad, f"{name}: beyond the parity tolerance (ratio to the allowed deviation): {bad}"


@pytest.mark.parametrize("name", CASES)
def test_parity_of_gauge_streamflow_with_routing_in_the_hourly_model(cases, name):
    """Simulate mode: the hourly model is a Chain of runoff and gauge routing, run per (gauge, unit) pair;
    the routing starts with an empty history at the first hour of the hourly span, as published."""
    case = cases[name]
    runoff = CASES[name](nmul=case.nmul, dynamic=case.hourly_dynamic)
    mts = case.model(Chain(runoff=runoff, routing=GaugeRouting()))
    pairs = RoutingPairs.from_topology(case.outlet_topo)
    unit_params = case.params(case.model())
    params = {}
    for name_, spec_name in ((n, n) for n in mts.parameter_spec.names):
        if name_.startswith("fine.gauge_route_"):
            params[name_] = case[f"distr__route_{name_.removeprefix('fine.gauge_route_')}"]
        else:
            value = unit_params[spec_name]
            params[name_] = pairs.to_pairs(value, dim=1 if mts.parameter_spec.is_series(name_, value) else 0)
    attributes = {k: pairs.to_pairs(v, dim=0) for k, v in case.attributes.items()}
    attributes.update(pairs.attributes(case.areas))
    forcings = {k: pairs.to_pairs(v) for k, v in case.forcings.items()}
    with torch.no_grad():
        out = integrate(mts, forcings, params, attributes=attributes, warmup=SPAN)
    ratios = {
        "out Qs": worst_ratio(pairs.to_units(out["Q"]), case["out__Qs"][..., 0]),
        "out streamflow": worst_ratio(pairs.to_gauges(out["streamflow"]), case["out__streamflow"][..., 0]),
    }
    bad = {k: round(v, 3) for k, v in ratios.items() if v > 1.0}
    assert not bad, f"{name}: beyond the parity tolerance (ratio to the allowed deviation): {bad}"


@pytest.mark.parametrize("name", CASES)
def test_parity_from_raw_network_outputs_at_each_time_scale(cases, name):
    """The daily network's [0, 1] outputs over the 351 days and the hourly one's over the 336 hours, through
    ScaleParameterLearning; the hourly static outputs shared with the daily model are not read."""
    case = cases[name]
    mts = case.model()
    n_own = len([p for p in mts.fine.parameter_spec.static_parameters if p.name not in mts.config.shared])
    hourly_static = case["hif_raw_params_static"][:, -n_own * case.nmul :]
    model = DeltaModel(
        {
            "daily": FixedOutput((case["lof_raw_params_dyn"], case["lof_raw_params_static"])),
            "hourly": FixedOutput((case["hif_raw_params_dyn"], hourly_static)),
        },
        mts,
        [
            ScaleParameterLearning(scale="coarse", network="daily", transform="identity"),
            ScaleParameterLearning(scale="fine", network="hourly", transform="identity"),
        ],
    )
    n_time = SPAN + HOURS
    batch = Batch(
        forcings=case.forcings,
        nn_inputs=torch.zeros(n_time, 3, 1),
        attributes=case.attributes,
        warmup=SPAN,
    )
    with torch.no_grad():
        out = model(batch)
    ratios = {"out Qs": worst_ratio(out["Q"], case["out__Qs"][..., 0])}
    for ref_name, ours in STATES.items():
        ratios[f"handover {ref_name}"] = worst_ratio(out.state[f"coarse.{ours}"], case[f"handover__{ref_name}"])
        ratios[f"final hourly {ref_name}"] = worst_ratio(out.state[f"fine.{ours}"], case[f"state__{ref_name}"][-1])
    bad = {k: round(v, 3) for k, v in ratios.items() if v > 1.0}
    assert not bad, f"{name}: beyond the parity tolerance through the networks: {bad}"


def test_presets_map_the_stores_inside_a_chain_and_share_only_statics_of_both():
    from dmg.hydro.multiscale import hbv_handover, shared_static_parameters

    hourly = Chain(runoff=HBV21Hourly(dynamic=["BETA"]), routing=GaugeRouting())
    assert hbv_handover(hourly) == {f"runoff.{s}": s for s in ("SP", "MW", "SM", "SUZ", "SLZ")}
    shared = shared_static_parameters(HBV2(dynamic=["K0"]), hourly)
    assert "K0" not in shared and "BETA" not in shared and "F0" not in shared  # dynamic in one, or hourly only
    assert shared["FC"] == "coarse" and set(shared) <= set(HBV2().parameter_spec.names)
    with pytest.raises(ValueError, match="carries the store 'SP'"):
        hbv_handover(GaugeRouting())
