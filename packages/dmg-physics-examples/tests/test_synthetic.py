"""Synthetic data: deterministic, consistent with the models, parameters in bounds, Batch-ready."""

from __future__ import annotations

import pytest
import torch

from dmg.core import Batch, InputError
from dmg.examples import SIR, LightResponse, LinearReservoir, SoilCarbon, synthetic

GENERATORS = {
    "linear_reservoir": (synthetic.linear_reservoir_data, LinearReservoir, {"n_time": 200, "warmup": 50}),
    "sir": (synthetic.sir_data, SIR, {"n_time": 80, "initial_infected": 1e-3}),
    "soil_carbon": (synthetic.soil_carbon_data, SoilCarbon, {"n_time": 400, "warmup": 100}),
    "light_response": (synthetic.light_response_data, LightResponse, {"n_days": 3}),
}


@pytest.fixture(params=sorted(GENERATORS))
def case(request):
    generate, model_cls, options = GENERATORS[request.param]
    return generate, model_cls, options


def test_same_seed_same_data_other_seed_other_data(case):
    generate, _, options = case
    a, b = generate(n_units=5, seed=7, noise=0.1, **options), generate(n_units=5, seed=7, noise=0.1, **options)
    c = generate(n_units=5, seed=8, noise=0.1, **options)
    for field in ("forcings", "targets", "true_params"):
        for name, value in getattr(a, field).items():
            assert torch.equal(value, getattr(b, field)[name]), f"{field}[{name!r}] differs for the same seed"
    assert not torch.equal(a.static_inputs, c.static_inputs)


def test_shapes_attributes_and_parameter_bounds(case):
    generate, model_cls, options = case
    data = generate(n_units=6, seed=0, **options)
    model = model_cls()
    n_time, n_units = data.n_time, data.n_units
    assert n_units == 6 and len(data.unit_ids) == 6
    assert set(data.forcings) == set(model.forcing_names)
    assert all(tuple(v.shape) == (n_time, n_units) for v in data.forcings.values())
    assert all(tuple(v.shape) == (n_time - data.warmup, n_units) for v in data.targets.values())
    assert set(data.targets) <= set(model.output_names)
    assert data.static_inputs.shape == (n_units, len(data.attribute_names))
    assert bool(((data.static_inputs >= 0) & (data.static_inputs <= 1)).all())
    assert set(data.true_params) == set(model.parameter_spec.names)
    for name, value in data.true_params.items():
        p = model.parameter_spec[name]
        assert value.shape == (n_units, 1)
        assert bool(((value > p.low) & (value < p.high)).all()), f"true {name} leaves ({p.low}, {p.high})"
    for tensors in (data.forcings, data.targets, data.true_params):
        assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all()) for v in tensors.values())


def test_targets_are_the_model_run_on_the_true_parameters(case):
    generate, model_cls, options = case
    data = generate(n_units=4, seed=2, dtype=torch.float64, **options)
    model = model_cls(**({"initial_infected": options["initial_infected"]} if model_cls is SIR else {}))
    out = model(data.forcings, data.true_params, warmup=data.warmup)
    for name, target in data.targets.items():
        assert torch.allclose(out[name], target, rtol=1e-12, atol=1e-12)


def test_noise_has_the_requested_relative_size(case):
    generate, _, options = case
    data = generate(n_units=8, seed=1, noise=0.1, **options)
    for name, clean in data.clean_targets.items():
        ratio = (data.targets[name] - clean).std(dim=0) / clean.std(dim=0)
        assert 0.08 < float(ratio.median()) < 0.12, f"{name}: median noise ratio {float(ratio.median()):.3f}"
    quiet = generate(n_units=8, seed=1, **options)
    assert all(torch.equal(quiet.targets[k], quiet.clean_targets[k]) for k in quiet.targets)


def test_batch_dict_makes_a_batch_with_standardised_network_inputs(case):
    generate, _, options = case
    data = generate(n_units=5, seed=0, **options)
    batch = Batch(**data.batch_dict())
    assert isinstance(data.to_batch(), Batch)
    assert batch.n_time == data.n_time and batch.n_units == 5 and batch.warmup == data.warmup
    assert all(bool(torch.isfinite(t).all()) for t in batch.targets.values())
    n_forcings = len(data.forcings)
    assert batch.nn_inputs.shape == (data.n_time, 5, n_forcings + len(data.attribute_names))
    forcing_part = batch.nn_inputs[..., :n_forcings].double()
    assert torch.allclose(forcing_part.mean(dim=(0, 1)), torch.zeros(n_forcings, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(forcing_part.std(dim=(0, 1)), torch.ones(n_forcings, dtype=torch.float64), atol=1e-5)
    assert torch.equal(batch.nn_inputs[-1, :, n_forcings:], data.static_inputs)


def test_evaporation_option_generates_data_with_another_process():
    default = synthetic.linear_reservoir_data(n_units=3, n_time=100, warmup=10)
    other = synthetic.linear_reservoir_data(
        n_units=3, n_time=100, warmup=10, evaporation=lambda i: 0.5 * i["PET"] * i["S"] / (i["S"] + 10.0)
    )
    assert torch.equal(default.forcings["P"], other.forcings["P"])
    assert not torch.allclose(default.targets["Q"], other.targets["Q"])


def test_seasonal_beta_is_time_varying():
    data = synthetic.sir_data(n_units=3, n_time=100, seasonal_beta=0.3, dtype=torch.float64)
    beta = data.true_params["beta"]
    assert beta.shape == (100, 3, 1)
    days = torch.arange(100, dtype=torch.float64)[:, None, None]
    assert torch.allclose(beta / beta[0], (1 + 0.3 * torch.cos(2 * torch.pi * days / 365)) / 1.3, rtol=1e-12)
    out = SIR(dynamic=["beta"], initial_infected=1e-3)(data.forcings, data.true_params)
    assert torch.allclose(out["I"], data.targets["I"], rtol=1e-12)


def test_invalid_sizes_are_rejected_with_the_option_named():
    with pytest.raises(InputError, match="warmup"):
        synthetic.linear_reservoir_data(n_time=50, warmup=50)
    with pytest.raises(InputError, match="noise"):
        synthetic.soil_carbon_data(noise=-0.1)
    with pytest.raises(InputError, match="n_units"):
        synthetic.light_response_data(n_units=0)
    with pytest.raises(InputError, match="seasonal_beta"):
        synthetic.sir_data(seasonal_beta=1.5)
