"""The physics test kit passes a correct model and catches broken ones."""

import pytest
import torch

from dmg.core import Chain
from dmg.core.testing import (
    PhysicsModelTestKit,
    check_declarations,
    check_finite_gradients,
    check_gradcheck,
    check_mass_balance,
    check_physics_model,
    check_state_carryover,
    make_case,
)
from dmg.core.testing.models import ToyReservoir as Reservoir
from dmg.core.testing.models import ToyScaling as Doubler


class TestReservoirWithKit(PhysicsModelTestKit):
    def make_model(self):
        return Reservoir(nmul=2, dynamic=["k"])


class TestChainWithKit(PhysicsModelTestKit):
    def make_model(self):
        return Chain(runoff=Reservoir(nmul=2), routing=Doubler(nmul=2))


def test_whole_kit_on_checkpoint_backend():
    check_physics_model(Reservoir(nmul=3, backend="checkpoint", backend_options={"chunk_size": 5}))


class Leaky(Reservoir):
    """Loses 1% of storage per step without reporting it."""

    def step(self, state, forcing_t, params_t):
        state, fluxes = super().step(state, forcing_t, params_t)
        return {"S": 0.99 * state["S"]}, fluxes


class NaNGradient(Reservoir):
    def step(self, state, forcing_t, params_t):
        state, fluxes = super().step(state, forcing_t, params_t)
        return state, {**fluxes, "Q": fluxes["Q"] + 0.0 * torch.sqrt(state["S"] - state["S"])}


class Forgetful(Reservoir):
    """Keeps a step counter outside its state (reset every call): breaks carry-over."""

    def simulate(self, *args, **kwargs):
        self.clock = 0
        return super().simulate(*args, **kwargs)

    def step(self, state, forcing_t, params_t):
        self.clock += 1
        state, fluxes = super().step(state, forcing_t, params_t)
        return state, {**fluxes, "Q": fluxes["Q"] * (1.0 + 0.01 * self.clock)}


class MissingOutput(Reservoir):
    def step(self, state, forcing_t, params_t):
        state, fluxes = super().step(state, forcing_t, params_t)
        return state, {"Q": fluxes["Q"]}


class WrongGradient(Reservoir):
    """Detaches k inside the step: analytic gradient zero, finite differences not."""

    def step(self, state, forcing_t, params_t):
        q_detached = {**params_t, "k": params_t["k"].detach()}
        return super().step(state, forcing_t, q_detached)


def test_kit_catches_a_mass_leak():
    with pytest.raises(AssertionError, match="mass balance off"):
        check_mass_balance(Leaky())


def test_kit_catches_nan_gradients():
    with pytest.raises(AssertionError, match="non-finite"):
        check_finite_gradients(NaNGradient())


def test_kit_catches_broken_state_carryover():
    with pytest.raises(AssertionError, match="state carried"):
        check_state_carryover(Forgetful())


def test_kit_catches_a_missing_output():
    with pytest.raises(AssertionError, match="'ET' missing"):
        check_declarations(MissingOutput())


def test_kit_catches_wrong_gradients():
    with pytest.raises(AssertionError, match="finite differences"):
        check_gradcheck(WrongGradient())


def test_make_case_respects_ranges_and_dynamic_shapes():
    model = Reservoir(nmul=2, dynamic=["k"])
    case = make_case(model, n_time=12, n_units=5)
    assert case.params["k"].shape == (12, 5, 2) and case.params["c"].shape == (5, 2)
    assert float(case.forcings["P"].min()) >= 0.0 and float(case.forcings["P"].max()) <= 20.0
    assert float(case.params["c"].min()) >= 0.1 and float(case.params["c"].max()) <= 1.5
