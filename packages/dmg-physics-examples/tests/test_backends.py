"""Every engine backend gives the eager results on every example model (outputs, states and gradients)."""

import warnings

import pytest

from dmg.core.engine import Engine, available_backends
from dmg.core.testing import check_engine_equivalence, make_case
from dmg.examples import SIR, LightResponse, LinearReservoir, SoilCarbon

MODELS = {
    "linear_reservoir": lambda: LinearReservoir(nmul=2, dynamic=["k"]),
    "sir": lambda: SIR(nmul=2, dynamic=["beta"]),
    "soil_carbon": lambda: SoilCarbon(nmul=2),
    "light_response": lambda: LightResponse(nmul=2),
}


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DMG_KERNEL_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "eager"])
@pytest.mark.parametrize("name", list(MODELS))
def test_backend_matches_eager(backend, name):
    model = MODELS[name]()
    case = make_case(model, n_time=60, n_units=3, u_range=(0.1, 0.9), warmup=10)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="engine backend")  # the backend runs the model itself
        check_engine_equivalence(model, case, engine=Engine.create(backend))
