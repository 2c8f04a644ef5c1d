"""Every engine backend gives the eager results on every HBV variant with routing (outputs, states, gradients)."""

import warnings

import pytest
import torch

from dmg.core import Chain
from dmg.core.engine import Engine, available_backends
from dmg.core.testing import check_engine_equivalence
from dmg.hydro import HBV, HBV2, GammaRouting, HBV11p
from dmg.hydro.hbv.testing import realistic_case

MODELS = {
    "hbv": lambda: HBV(nmul=3, dynamic=["BETA", "BETAET"]),
    "hbv_static": lambda: HBV(nmul=2),
    "hbv11p": lambda: HBV11p(nmul=3, dynamic=["BETA", "K0", "BETAET"]),
    "hbv2": lambda: HBV2(nmul=3, dynamic=["BETA", "K0", "BETAET"]),
}


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DMG_KERNEL_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "eager"])
@pytest.mark.parametrize("name", list(MODELS))
def test_backend_matches_eager_with_routing(backend, name):
    runoff = MODELS[name]()
    case = realistic_case(runoff, n_time=100, n_units=5, seed=3)
    case.params.update(route_a=torch.linspace(0.3, 2.0, 5), route_b=torch.linspace(0.8, 5.0, 5))
    case.warmup = 30
    model = Chain(runoff=runoff, routing=GammaRouting())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="engine backend")  # the backend runs the model itself
        check_engine_equivalence(model, case, engine=Engine.create(backend))
