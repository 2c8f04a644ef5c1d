"""The engine's fast backends: equivalence with eager on every reference model, and fallbacks."""

import os
import subprocess
import sys
import warnings

import pytest
import torch

from dmg.core import Chain, Ensemble, Parameter, State, StepModel, Variable
from dmg.core.engine import Engine, Recompute, available_backends
from dmg.core.engine.kernel import KernelBackend
from dmg.core.engine.trace import LaneLayout, UnsupportedStepError, trace_step
from dmg.core.testing import check_engine_equivalence, check_physics_model
from dmg.core.testing.models import ToyReservoir, ToyScaling

FAST = [name for name in available_backends() if name != "eager"]


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory, monkeypatch):
    import dmg.core.engine

    monkeypatch.setenv("DMG_KERNEL_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))
    monkeypatch.setattr(dmg.core.engine, "_WARNED", set())  # each test sees its own fallback warnings


def models():
    return {
        "reservoir": ToyReservoir(nmul=3, dynamic=["k"]),
        "chain": Chain(runoff=ToyReservoir(nmul=2), scale=ToyScaling(nmul=2)),
        "ensemble": Ensemble(a=ToyReservoir(nmul=2), b=ToyReservoir(nmul=2, dynamic=["k"]), weights=[0.3, 0.7]),
    }


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("name", ["reservoir", "chain", "ensemble"])
def test_every_backend_matches_eager(backend, name):
    model = models()[name]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="engine backend")  # it must run these models itself
        check_engine_equivalence(model, engine=Engine.create(backend))
        check_engine_equivalence(model, engine=Engine(backend=Engine.create(backend).backend, memory=Recompute(4)))


@pytest.mark.parametrize("backend", FAST)
def test_whole_kit_and_float64_under_every_backend(backend):
    engine = Engine.create(backend)
    check_physics_model(ToyReservoir(nmul=2, dynamic=["k"]), engine=engine)
    from dmg.core.testing import make_case

    model = ToyReservoir(nmul=2)
    check_engine_equivalence(model, make_case(model, dtype=torch.float64, warmup=5), engine=engine, rtol=1e-12)


class Pooled(StepModel):
    """Components share one store: the step sums over them, so lanes are not independent."""

    forcings = (Variable("P", typical_range=(0.0, 10.0)),)
    physical_parameters = (Parameter("k", 0.1, 0.5),)
    states = (State("S", initial=1.0),)
    outputs = (Variable("Q"),)

    def step(self, state, forcing_t, params_t, processes):
        s = state["S"] + forcing_t["P"]
        q = params_t["k"] * s.mean(dim=-1, keepdim=True).expand_as(s)
        return {"S": s - q}, {"Q": q}


def test_kernel_refuses_what_it_cannot_generate_and_the_engine_runs_it_eagerly():
    with pytest.raises(UnsupportedStepError, match=r"not an elementwise operation|lanes would mix"):
        trace_step(Pooled(nmul=2), LaneLayout(("S",), ("P",), ("k",), ()), torch.float32)
    engine = Engine(backend=KernelBackend())
    model = Pooled(nmul=2)
    forcings = {"P": torch.rand(10, 3)}
    params = {"k": torch.full((3, 2), 0.2)}
    with pytest.warns(UserWarning, match="kernel cannot run Pooled"):
        out = model(forcings, params, engine=engine)
    assert torch.equal(out["Q"], model(forcings, params)["Q"])
    reservoir = ToyReservoir()
    fill = {"evaporation": lambda i: 0.5 * i["PET"]}
    with pytest.warns(UserWarning, match="process slots are filled by networks"):
        reservoir(
            {"P": torch.rand(6, 2), "PET": torch.rand(6, 2)},
            {"k": torch.full((2, 1), 0.1)},
            processes=fill,
            engine=engine,
        )


@pytest.mark.parametrize("options", [{"threads": 2}, {"fast_math": True}, {"vector_math": False}])
def test_kernel_variants_match_eager(options):
    check_engine_equivalence(ToyReservoir(nmul=3, dynamic=["k"]), engine=Engine(backend=KernelBackend(**options)))


def test_kernel_options_are_typed():
    from dmg.core import ConfigError

    assert KernelBackend(threads=2, fast_math=True).config.threads == 2
    with pytest.raises(ConfigError, match="did you mean 'threads'"):
        KernelBackend(thread=2)


def test_compiled_kernels_are_cached_across_processes(tmp_path):
    """A second process loads the kernels the first compiled: no compilation at all."""
    script = (
        "import torch\n"
        "from dmg.core.engine import Engine\n"
        "from dmg.core.engine.kernel import KernelBackend\n"
        "from dmg.core.testing.models import ToyReservoir\n"
        "backend = KernelBackend()\n"
        "m = ToyReservoir(nmul=2)\n"
        "k = torch.full((3, 2), 0.2, requires_grad=True)\n"
        "f = {'P': torch.rand(9, 3), 'PET': torch.rand(9, 3)}\n"
        "out = m(f, {'k': k}, warmup=3, engine=Engine(backend=backend))\n"
        "out['Q'].sum().backward()\n"
        "print(all(b.cached for p in backend._plans[m].values() for b in p.libraries.values()))\n"
    )
    env = {**os.environ, "DMG_KERNEL_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.split() == ["False"] and runs[1].stdout.split() == ["True"]


def test_without_a_compiler_the_kernel_backend_runs_eagerly_with_one_warning(monkeypatch):
    from dmg.core.engine import kernel
    from dmg.core.engine.cbuild import CompilerError

    def no_compiler():
        raise CompilerError("no C compiler found (tried cc (not found)); set CC or install gcc")

    monkeypatch.setattr(kernel, "find_compiler", no_compiler)
    model = ToyReservoir(nmul=2)
    forcings = {"P": torch.rand(8, 3), "PET": torch.rand(8, 3)}
    params = {"k": torch.full((3, 2), 0.2)}
    with pytest.warns(UserWarning, match="kernel cannot run ToyReservoir .no C compiler found"):
        out = model(forcings, params, engine=Engine(backend=KernelBackend()))
    assert torch.equal(out["Q"], model(forcings, params)["Q"])


def test_the_compiled_backend_is_created_in_a_fresh_process():
    """Creating it sets a torch._functorch option: the submodule must be imported by dmg, not by chance."""
    created = subprocess.run(
        [sys.executable, "-c", "from dmg.core.engine import Engine; print(Engine.create('compiled').backend.name)"],
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0 and created.stdout.strip() == "compiled", created.stderr
