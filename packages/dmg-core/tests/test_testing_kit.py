"""The physics test kit passes a correct model and catches broken ones."""

import pytest
import torch

from dmg.core import Chain
from dmg.core.engine import Backend, EagerBackend, Engine, Recompute
from dmg.core.testing import (
    PhysicsModelTestKit,
    check_declarations,
    check_engine_equivalence,
    check_finite_gradients,
    check_gradcheck,
    check_mass_balance,
    check_physics_model,
    check_process_slots,
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


def test_whole_kit_under_the_recompute_memory_policy():
    check_physics_model(Reservoir(nmul=3), engine=Engine(memory=Recompute(chunk_size=5)))


class TestChainWithKitUnderRecompute(PhysicsModelTestKit):
    engine = Engine(memory=Recompute(chunk_size=4))

    def make_model(self):
        return Chain(runoff=Reservoir(nmul=2, dynamic=["k"]), routing=Doubler(nmul=2))


class Leaky(Reservoir):
    """Loses 1% of storage per step without reporting it."""

    def step(self, state, forcing_t, params_t, processes):
        state, fluxes = super().step(state, forcing_t, params_t, processes)
        return {"S": 0.99 * state["S"]}, fluxes


class NaNGradient(Reservoir):
    def step(self, state, forcing_t, params_t, processes):
        state, fluxes = super().step(state, forcing_t, params_t, processes)
        return state, {**fluxes, "Q": fluxes["Q"] + 0.0 * torch.sqrt(state["S"] - state["S"])}


class Forgetful(Reservoir):
    """Keeps a step counter outside its state (reset every call): breaks carry-over."""

    def forward(self, *args, **kwargs):
        self.clock = 0
        return super().forward(*args, **kwargs)

    def step(self, state, forcing_t, params_t, processes):
        self.clock += 1
        state, fluxes = super().step(state, forcing_t, params_t, processes)
        return state, {**fluxes, "Q": fluxes["Q"] * (1.0 + 0.01 * self.clock)}


class MissingOutput(Reservoir):
    def step(self, state, forcing_t, params_t, processes):
        state, fluxes = super().step(state, forcing_t, params_t, processes)
        return state, {"Q": fluxes["Q"]}


class WrongGradient(Reservoir):
    """Detaches k inside the step: analytic gradient zero, finite differences not."""

    def step(self, state, forcing_t, params_t, processes):
        q_detached = {**params_t, "k": params_t["k"].detach()}
        return super().step(state, forcing_t, q_detached, processes)


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


class IgnoresItsSlot(Reservoir):
    """Declares the slot 'evaporation' but never asks for it."""

    def step(self, state, forcing_t, params_t, processes):
        s = state["S"] + forcing_t["P"]
        et = torch.minimum(params_t["c"] * forcing_t["PET"].expand_as(s), s)
        q = params_t["k"] * (s - et)
        return {"S": s - et - q}, {"Q": q, "ET": et}


def test_kit_catches_a_process_slot_the_step_never_asks_for():
    with pytest.raises(AssertionError, match="never asks for it"):
        check_process_slots(IgnoresItsSlot())


def test_engine_equivalence_passes_a_correct_model_and_catches_a_differing_engine():
    check_engine_equivalence(Reservoir(nmul=2, dynamic=["k"]), engine=Engine(memory=Recompute(chunk_size=3)))

    class OffByOne(Backend):
        def run(self, loop):
            state, fluxes = EagerBackend().run(loop)
            return state, {k: v * 1.001 for k, v in fluxes.items()}

    with pytest.raises(AssertionError, match="differs from the eager engine"):
        check_engine_equivalence(Reservoir(nmul=2), engine=Engine(backend=OffByOne()))
