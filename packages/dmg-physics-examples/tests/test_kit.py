"""Every example model passes the shared physics test kit of dmg.core, in several configurations."""

from __future__ import annotations

from dmg.core.testing import PhysicsModelTestKit
from dmg.examples import SIR, LightResponse, LinearReservoir, SoilCarbon


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


class TestSoilCarbonCheckpointed(PhysicsModelTestKit):
    def make_model(self):
        return SoilCarbon(dynamic=["k_fast"], backend="checkpoint", backend_options={"chunk_size": 7})


class TestLightResponse(PhysicsModelTestKit):
    skip = ("mass_balance",)  # no stored quantity and no MassBalance declared: nothing to balance

    def make_model(self):
        return LightResponse(nmul=2)


class TestLightResponseTimeVaryingPmax(PhysicsModelTestKit):
    skip = ("mass_balance",)  # no stored quantity and no MassBalance declared: nothing to balance

    def make_model(self):
        return LightResponse(dynamic=["Pmax", "Reco"])
