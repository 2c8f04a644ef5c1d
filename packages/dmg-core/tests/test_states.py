"""Stepping a trained model and its saved states (:mod:`dmg.core.stepping`, :mod:`dmg.core.states`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from dmg.core import (
    Chain,
    DeltaModel,
    OutputCorrection,
    Parameter,
    ParameterLearning,
    SeriesModel,
    Variable,
    states,
    workflows,
)
from dmg.core.cli import main
from dmg.core.data import Batch
from dmg.core.errors import ConfigError, InputError, SpecError
from dmg.core.stepping import Stepper, network_step, stream_memory
from dmg.core.testing.models import ToyReservoir
from dmg.core.testing.networks import StaticLinear

N_TIME, N_UNITS, N_FEATURES = 40, 3, 2


class Lagged(SeriesModel):
    """Outflow as a weighted mean of this and the last two days' inflow (a tiny unit hydrograph)."""

    forcings = (Variable("Q", "mm/day"),)
    physical_parameters = (Parameter("w", 0.0, 1.0, "", per_component=False),)
    outputs = (Variable("Qlag", "mm/day"), Variable("total", "mm"))
    stream_memory = 2

    def simulate(self, forcings, params, attributes, state, processes, save):
        q = forcings["Q"]
        w = params["w"]
        past = torch.nn.functional.pad(q, (0, 0, 2, 0))
        lagged = w * q + (1 - w) * 0.5 * (past[1:-1] + past[:-2])
        return {"Qlag": lagged, "total": q.sum(0)}, {}


class Memoryless(Lagged):
    stream_memory = None


class Recurrent(nn.Module):
    """A GRU with a linear head; ``streaming`` adds a ``stream`` method continuing from a carried state."""

    input_kind = "sequence"
    output_kind = "single"

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(N_FEATURES, 5)
        self.head = nn.Linear(5, n_outputs)

    def forward(self, x):
        return self.head(self.gru(x)[0])


class Streaming(Recurrent):
    def stream(self, x, static, state):
        h, last = self.gru(x, state["h"] if state else None)
        return self.head(h), {"h": last}


def _model(network: type[nn.Module]) -> DeltaModel:
    physics = Chain(runoff=ToyReservoir(nmul=2), routing=Lagged())
    coupling = ParameterLearning()
    return DeltaModel(network(coupling.n_outputs(physics)), physics, coupling).eval()


def _batch(start: int = 0, stop: int = N_TIME) -> Batch:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(N_TIME, N_UNITS, generator=g) * 10
    pet = torch.rand(N_TIME, N_UNITS, generator=g) * 3
    x = torch.stack([p, pet], -1) / 5
    return Batch(
        forcings={"P": p[start:stop], "PET": pet[start:stop]},
        nn_inputs=x[start:stop],
        static_inputs=torch.linspace(-1, 1, 2 * N_UNITS).reshape(N_UNITS, 2),
    )


@pytest.mark.parametrize("network", [Recurrent, Streaming, StaticLinear])
@pytest.mark.parametrize("split", [1, 17, N_TIME - 1])
def test_a_stepped_run_split_anywhere_continues_exactly(network, split):
    model = _model(network)
    whole = Stepper(model).advance(_batch())
    first = Stepper(model)
    head = first.advance(_batch(0, split))
    saved = states.ModelState.from_tensors(first.state().tensors())  # as written to and read from a file
    tail = Stepper(model).load(saved).advance(_batch(split, N_TIME))
    for name in ("Q", "ET", "Qlag"):
        joined = torch.cat([head[name], tail[name]])
        torch.testing.assert_close(joined, whole[name], rtol=1e-6, atol=1e-7)
    assert "total" not in whole  # a summary over a window is no step's output
    assert saved.steps == split and set(saved.memory) == {"routing"}
    assert saved.memory["routing"]["Q"].shape == (min(split, 2), N_UNITS)  # the last two days' inflow


def test_with_static_parameters_stepping_equals_the_window_run():
    model = _model(StaticLinear)
    window = model(_batch())
    stepped = Stepper(model).advance(_batch())
    for name in ("Q", "ET", "Qlag"):
        torch.testing.assert_close(stepped[name], window[name], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(stepped.state["runoff.S"], window.state["runoff.S"])


def _dynamic_model(network: type[nn.Module]) -> DeltaModel:
    """A model with a dynamic parameter (``k``), static ones (``c``, per component; ``w``, shared) and a buffer."""
    physics = Chain(runoff=ToyReservoir(nmul=2, dynamic=["k"]), routing=Lagged())
    coupling = ParameterLearning()
    return DeltaModel(network(coupling.n_outputs(physics)), physics, coupling).eval()


@pytest.mark.parametrize("network", [Recurrent, Streaming])
def test_blocks_of_any_size_give_the_same_run(network):
    model = _dynamic_model(network)
    whole = Stepper(model)
    whole.warm_up(_batch(0, 10))
    reference = whole.advance(_batch(10, N_TIME))
    daily = Stepper(model)
    daily.warm_up(_batch(0, 10))
    steps = [daily.advance(_batch(t, t + 1)) for t in range(10, N_TIME)]
    for name in ("Q", "ET", "Qlag"):
        torch.testing.assert_close(torch.cat([s[name] for s in steps]), reference[name], rtol=1e-6, atol=1e-7)
    assert daily.state().steps == whole.state().steps == N_TIME


def _perturbed_after(step: int) -> Batch:
    batch = _batch()
    batch.forcings = {k: torch.cat([v[:step], v[step:] * 3 + 1]) for k, v in batch.forcings.items()}
    batch.nn_inputs = torch.cat([batch.nn_inputs[:step], -batch.nn_inputs[step:]])
    return batch


def test_a_stepped_run_is_causal_unlike_a_window_run():
    model, cut = _dynamic_model(Streaming), 25
    runs = []
    for batch in (_batch(), _perturbed_after(cut)):
        stepper = Stepper(model)
        stepper.warm_up(
            replace(batch, forcings={k: v[:10] for k, v in batch.forcings.items()}, nn_inputs=batch.nn_inputs[:10])
        )
        later = replace(batch, forcings={k: v[10:] for k, v in batch.forcings.items()}, nn_inputs=batch.nn_inputs[10:])
        runs.append(stepper.advance(later)["Q"])
    torch.testing.assert_close(runs[0][: cut - 10], runs[1][: cut - 10], rtol=0, atol=0)
    window = [model(replace(b, warmup=10))["Q"] for b in (_batch(), _perturbed_after(cut))]
    assert not torch.allclose(window[0][: cut - 10], window[1][: cut - 10])  # static parameters from the last step


def test_static_parameters_are_held_from_the_end_of_the_warm_up():
    model = _dynamic_model(Streaming)
    stepper = Stepper(model)
    stepper.warm_up(_batch(0, 12))
    held = stepper.state().parameters
    spec = model.phy_model.parameter_spec
    expected = spec.from_raw(model.networks["default"](_batch(0, 12).nn_inputs))
    assert set(held) == {"c", "w"}  # static; the dynamic k follows the networks step by step
    torch.testing.assert_close(held["c"], expected["c"])
    torch.testing.assert_close(held["w"], expected["w"])
    stepper.advance(_batch(12, 20))
    torch.testing.assert_close(stepper.state().parameters["c"], held["c"], rtol=0, atol=0)
    with pytest.raises(InputError, match="a warm-up comes first"):
        stepper.warm_up(_batch(20, 22))
    fresh = Stepper(model)
    fresh.advance(_batch(0, 5))  # without a warm-up: the networks' output at the first step simulated
    first = spec.from_raw(model.networks["default"](_batch(0, 1).nn_inputs))
    torch.testing.assert_close(fresh.state().parameters["c"], first["c"])


@pytest.mark.parametrize("network", [Recurrent, Streaming])
def test_a_state_splits_by_units_and_joins_again(network):
    model = _dynamic_model(network)
    whole = Stepper(model)
    whole.warm_up(_batch(0, 10))
    reference = whole.advance(_batch(10, N_TIME))
    stepper = Stepper(model)
    stepper.warm_up(_batch(0, 10))
    stepper.advance(_batch(10, 20))
    state = stepper.state()
    parts = [state.select([2]), state.select([0, 1])]
    rejoined = states.ModelState.concat(parts).select([1, 2, 0])  # back to the order 0, 1, 2
    for part in ("physics", "parameters"):
        for key, value in getattr(state, part).items():
            torch.testing.assert_close(getattr(rejoined, part)[key], value, rtol=0, atol=0)
    tail = Stepper(model).load(rejoined).advance(_batch(20, N_TIME))
    torch.testing.assert_close(tail["Qlag"], reference["Qlag"][10:], rtol=1e-6, atol=1e-7)
    with pytest.raises(InputError, match="different numbers of steps"):
        states.ModelState.concat([parts[0], replace(parts[1], steps=3)])
    with pytest.raises(InputError, match="different physics states"):
        states.ModelState.concat([parts[0], replace(parts[1], physics={})])


def test_network_state_is_the_recurrence_or_the_inputs_seen():
    x = _batch().nn_inputs
    out, state = network_step(Streaming(1), x[:5], None, {})
    assert set(state) == {"h"} and state["h"].shape == (1, N_UNITS, 5)
    out, state = network_step(Recurrent(1), x[:5], None, {})
    out, state = network_step(Recurrent(1), x[5:7], None, state)
    assert out.shape == (2, N_UNITS, 1) and state["inputs"].shape == (7, N_UNITS, N_FEATURES)
    torch.testing.assert_close(out, Recurrent(1)(x[:7])[5:])


def test_a_series_model_without_states_or_memory_is_refused():
    assert stream_memory(Lagged()) == 2 and stream_memory(ToyReservoir()) == 0
    physics = Chain(runoff=ToyReservoir(), routing=Memoryless())
    model = DeltaModel(StaticLinear(ParameterLearning().n_outputs(physics)), physics, ParameterLearning())
    with pytest.raises(SpecError, match=r"Memoryless cannot run step by step.*stream_memory"):
        Stepper(model)


class WindowedReservoir(ToyReservoir):
    """A model that needs a warm-up of its own inside every run (as a multi-timescale composite does)."""

    required_warmup = 5


def test_models_that_cannot_run_step_by_step_are_refused():
    physics = WindowedReservoir()
    coupling = ParameterLearning()
    with pytest.raises(SpecError, match="runs over windows of more than 5 steps"):
        Stepper(DeltaModel(StaticLinear(coupling.n_outputs(physics)), physics, coupling))
    physics = ToyReservoir()
    couplings = [ParameterLearning(network="params"), OutputCorrection(network="correct", variables=["Q"])]
    nets = {"params": StaticLinear(couplings[0].n_outputs(physics)), "correct": Streaming(1)}
    with pytest.raises(SpecError, match="recurrent network 'correct'"):
        Stepper(DeltaModel(nets, physics, couplings))


def test_a_stepped_batch_has_no_warmup():
    batch = _batch()
    batch.warmup = 3
    with pytest.raises(InputError, match="no warm-up"):
        Stepper(_model(StaticLinear)).advance(batch)


# --------------------------------------------------------------------------- through a run folder


@pytest.fixture(scope="module")
def trained(tiny_run):
    path = tiny_run.write(tiny_run.config())
    run = tiny_run.folder / "runs" / "states"
    assert main(["train", path, "--run-dir", str(run)]) == 0
    return run


def _load(path):
    with np.load(path) as saved:
        return {k: saved[k] for k in saved.files if k not in ("unit_ids", "dates")}


@pytest.mark.parametrize("chunk", [3, 2, 1])
def test_run_split_with_a_state_file_equals_the_whole(trained, chunk):
    whole = workflows.simulate(trained, "2000-03-01", "2000-04-29", name=f"whole{chunk}", chunk_units=chunk)
    first = workflows.simulate(
        trained,
        "2000-03-01",
        "2000-03-31",
        name=f"first{chunk}",
        chunk_units=chunk,
        save_state="2000-03-31",
        overwrite=True,
    )
    path = trained / "states" / "2000-03-31.pt"
    second = workflows.simulate(trained, None, "2000-04-29", name=f"second{chunk}", chunk_units=chunk, from_state=path)
    a, b, w = _load(first), _load(second), _load(whole)
    np.testing.assert_allclose(np.concatenate([a["Q"], b["Q"]]), w["Q"], rtol=1e-6, atol=1e-7)
    saved = states.read_state(path)  # joined from the chunks' states
    assert str(saved.next_date) == "2000-04-01T00:00:00" and saved.unit_ids == ("u0", "u1", "u2")
    assert not list((trained / "simulations").glob("*.partial"))


def test_a_state_starts_any_of_its_units_in_any_order(trained):
    whole = workflows.simulate(trained, "2000-03-01", "2000-04-29", name="all_units")
    workflows.simulate(trained, "2000-03-01", "2000-03-20", name="to_20", save_state="2000-03-20")
    path = trained / "states" / "2000-03-20.pt"
    some = workflows.simulate(trained, None, "2000-04-29", units=["u2", "u0"], name="some", from_state=path)
    np.testing.assert_allclose(_load(some)["Q"], _load(whole)["Q"][20:, [2, 0]], rtol=1e-6, atol=1e-7)
    with np.load(some) as saved:
        assert list(saved["unit_ids"]) == ["u2", "u0"]


def test_simulate_steps_forward_by_default_and_runs_one_window_on_request(trained):
    period = ("2000-03-01", "2000-04-29")
    causal = workflows.simulate(trained, *period, name="causal", chunk_units=2)
    one_by_one = workflows.simulate(trained, *period, overrides=["evaluate.units_per_batch=1"], name="one_by_one")
    window = workflows.simulate(trained, *period, overrides=["simulate.parameters=window"], name="window")
    c, s, w = _load(causal)["Q"], _load(one_by_one)["Q"], _load(window)["Q"]
    np.testing.assert_allclose(c, s, rtol=1e-6, atol=1e-7)  # however the units are grouped: one model run
    assert not np.allclose(c, w, rtol=1e-3)  # static parameters from the period's last step instead
    with pytest.raises(
        ConfigError, match=r"simulate.parameters: 'window'.*--save-state and --from-state need 'causal'"
    ):
        workflows.simulate(
            trained, *period, overrides=["simulate.parameters=window"], name="w", save_state="2000-03-10"
        )


def test_state_files_that_do_not_fit_are_refused(trained, tmp_path):
    workflows.simulate(trained, "2000-03-01", "2000-03-10", units=["u0", "u1"], name="fit", save_state="2000-03-10")
    path = trained / "states" / "2000-03-10.pt"
    with pytest.raises(states.StateError, match=r"end of 2000-03-10.*starts on 2000-03-11, not on 2000-03-20"):
        workflows.simulate(trained, "2000-03-20", None, name="late", from_state=path)
    with pytest.raises(states.StateError, match=r"holds 2 units and lacks 1 of the simulation's \(u2\)"):
        workflows.simulate(trained, None, None, units=["u0", "u1", "u2"], name="three", from_state=path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(states.StateError, match=f"{truncated} is truncated"):
        states.read_state(truncated)
    with pytest.raises(states.StateError, match="does not exist"):
        states.read_state(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="--save-state 2001-01-01: not a date of the simulated period"):
        workflows.simulate(trained, "2000-03-01", "2000-03-10", name="outside", save_state="2001-01-01")
    with pytest.raises(InputError, match=r"2000-03-10\.pt already exists; pass --overwrite"):
        workflows.simulate(trained, "2000-03-01", "2000-03-10", name="again", save_state="2000-03-10")
