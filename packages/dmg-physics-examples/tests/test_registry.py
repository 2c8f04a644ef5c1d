"""The example models are registered under the dmg.physics entry points and build from their Config."""

from __future__ import annotations

import pytest

from dmg.core import PhysicsModel, registry
from dmg.core.components import PhysicsConfig
from dmg.examples import SIR, LightResponse, LinearReservoir, SoilCarbon

REGISTERED = {
    "linear_reservoir": LinearReservoir,
    "sir": SIR,
    "soil_carbon": SoilCarbon,
    "light_response": LightResponse,
}


@pytest.mark.parametrize(("name", "cls"), sorted(REGISTERED.items()))
def test_entry_point_loads_the_model_and_its_config_builds_it(name, cls):
    assert registry.get("dmg.physics", name) is cls
    assert registry.entries("dmg.physics")[name].distribution == "dmg-physics-examples"
    assert issubclass(cls.Config, PhysicsConfig) and cls.Config is not PhysicsConfig
    model = cls.from_config(cls.Config(nmul=2))
    assert isinstance(model, PhysicsModel) and model.nmul == 2


@pytest.mark.parametrize("cls", list(REGISTERED.values()))
def test_every_declaration_has_a_unit_or_is_dimensionless_by_design(cls):
    described = [*cls.forcings, *cls.states, *cls.outputs, *cls.physical_parameters]
    assert all(v.description for v in described), f"{cls.__name__}: undocumented declarations"
    dimensionless = {v.name for v in described if not v.unit}
    assert dimensionless <= {"c", "contact", "S", "I", "R", "transfer", "Q10"}, dimensionless
