"""Every example model passes the shared physics test kit of dmg.core, in several configurations and engines."""

from __future__ import annotations

import pytest

from dmg.core import PhysicsModel
from dmg.core.engine import Engine, Recompute
from dmg.core.testing import (
    PhysicsModelTestKit,
    check_engine_equivalence,
    check_physics_model,
    check_process_slots,
)
from dmg.examples import SIR, LightResponse, LinearReservoir, SoilCarbon

RECOMPUTE = Engine(memory=Recompute(chunk_size=7))
"""Backward recomputes each chunk of 7 steps instead of storing every step."""


class TestLinearReservoir(PhysicsModelTestKit):
    def make_model(self):
        return LinearReservoir(nmul=2)


class TestLinearReservoirTimeVaryingK(PhysicsModelTestKit):
    def make_model(self):
        return LinearReservoir(dynamic=["k"], initial_storage=40.0)


class TestSIR(PhysicsModelTestKit):
    def make_model(self):
        return SIR(nmul=2)


class TestSIRTimeVaryingBeta(PhysicsModelTestKit):
    def make_model(self):
        return SIR(dynamic=["beta"], initial_infected=0.2)


class TestSoilCarbon(PhysicsModelTestKit):
    def make_model(self):
        return SoilCarbon(nmul=2)


class TestSoilCarbonRecomputed(PhysicsModelTestKit):
    engine = RECOMPUTE

    def make_model(self):
        return SoilCarbon(dynamic=["k_fast"])


class TestSIRRecomputed(PhysicsModelTestKit):
    engine = RECOMPUTE

    def make_model(self):
        return SIR(nmul=2, dynamic=["beta"])


class TestLightResponse(PhysicsModelTestKit):
    skip = ("mass_balance",)  # no stored quantity and no MassBalance declared: nothing to balance

    def make_model(self):
        return LightResponse(nmul=2)


class TestLightResponseTimeVaryingPmax(PhysicsModelTestKit):
    skip = ("mass_balance",)  # no stored quantity and no MassBalance declared: nothing to balance

    def make_model(self):
        return LightResponse(dynamic=["Pmax", "Reco"])


MODELS_WITH_SLOTS = {
    "linear_reservoir": lambda: LinearReservoir(nmul=2),
    "sir": lambda: SIR(dynamic=["beta"]),
    "soil_carbon": lambda: SoilCarbon(nmul=3),
}


@pytest.mark.parametrize("name", sorted(MODELS_WITH_SLOTS))
def test_every_declared_process_slot_is_asked_for_and_its_filler_used(name):
    model = MODELS_WITH_SLOTS[name]()
    assert model.signature.slots, f"{name} declares no process slot"
    check_process_slots(model)
    check_process_slots(model, engine=RECOMPUTE)


@pytest.mark.parametrize(
    "make", [lambda: LinearReservoir(nmul=2, initial_storage=25.0), lambda: SoilCarbon(dynamic=["Q10"])]
)
def test_the_whole_kit_passes_under_recomputed_backward(make):
    model: PhysicsModel = make()
    check_physics_model(model, engine=RECOMPUTE)
    check_engine_equivalence(model, engine=RECOMPUTE)
