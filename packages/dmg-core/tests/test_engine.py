"""The engine owns the run: warm-up, kept outputs, backends, memory policy and checks, for every kind of model."""

import warnings

import pytest
import torch

from dmg.core import (
    Chain,
    ConfigError,
    Ensemble,
    InputError,
    Parameter,
    SeriesModel,
    SpecError,
    State,
    StepModel,
    Variable,
)
from dmg.core.engine import Backend, EagerBackend, Engine, Recompute, integrate
from dmg.core.physics import PhysicsModel


def params_for(model, n_units, k=0.1):
    return {"k": torch.full((n_units, model.nmul), k)}


class Recording(Backend):
    """The eager loop, remembering what each loop asked to keep and how long it was."""

    def __init__(self, config=None, /, **options):
        super().__init__(config, **options)
        self.loops = []

    def run(self, loop):
        self.loops.append((type(loop.model).__name__, loop.n_time, loop.save))
        return EagerBackend().run(loop)


def test_save_keeps_only_the_requested_outputs_and_stacks_nothing_else(reservoir_cls, forcings_factory):
    m = reservoir_cls(nmul=2)
    f = forcings_factory(30, 3)
    backend = Recording()
    out = m(f, params_for(m, 3), warmup=10, save=["Q"], engine=Engine(backend=backend))
    assert set(out) == {"Q"} and out["Q"].shape == (20, 3)
    assert backend.loops == [("ToyReservoir", 10, frozenset()), ("ToyReservoir", 20, frozenset({"Q"}))]
    full = m(f, params_for(m, 3), warmup=10)
    assert torch.equal(full["Q"], out["Q"])
    with pytest.raises(SpecError, match=r"save: ToyReservoir has no output \['Qx'\].*'Q', 'ET'"):
        m(f, params_for(m, 3), save=["Qx"])


def test_chain_asks_each_member_only_for_what_is_needed(reservoir_cls, doubler_cls, forcings_factory):
    chain = Chain(runoff=reservoir_cls(nmul=2), scale=doubler_cls(nmul=2))
    f = forcings_factory(30, 3)
    params = {**params_for(chain, 3), "a": torch.full((3,), 2.0)}
    backend = Recording()
    out = chain(f, params, warmup=10, save=["Qout"], engine=Engine(backend=backend))
    assert set(out) == {"Qout"}
    # spin-up: only the stateful member runs, keeping nothing; then each keeps what the next one reads
    assert backend.loops == [
        ("ToyReservoir", 10, frozenset()),
        ("ToyReservoir", 20, frozenset({"Q"})),
        ("ToyScaling", 20, frozenset({"Qout"})),
    ]
    full = chain(f, params, warmup=10)
    assert torch.equal(full["Qout"], out["Qout"]) and torch.equal(full.state["runoff.S"], out.state["runoff.S"])


def test_chain_spinup_equals_a_spin_up_pass_then_the_main_pass(reservoir_cls, doubler_cls, forcings_factory):
    chain = Chain(runoff=reservoir_cls(nmul=2), scale=doubler_cls(nmul=2))
    f = forcings_factory(40, 3)
    params = {**params_for(chain, 3), "a": torch.full((3,), 2.0)}
    out = chain(f, params, warmup=15)
    first = chain({k: v[:15] for k, v in f.items()}, params)
    rest = chain({k: v[15:] for k, v in f.items()}, params, state=first.state)
    assert torch.allclose(out["Qout"], rest["Qout"])


def test_ensemble_members_get_their_own_slot_fillers(reservoir_cls, forcings_factory):
    ensemble = Ensemble(dry=reservoir_cls(), wet=reservoir_cls(), weights=[0.5, 0.5])
    assert ensemble.signature.slot_names == ("dry.evaporation", "wet.evaporation")
    f = forcings_factory(20, 2)
    params = {"dry.k": torch.full((2, 1), 0.1), "wet.k": torch.full((2, 1), 0.1)}
    out = ensemble(f, params, processes={"dry.evaporation": lambda i: torch.zeros_like(i["S"])})
    assert float(out["dry.ET"].abs().sum()) == 0.0 and float(out["wet.ET"].sum()) > 0.0


class Smoother(SeriesModel):
    """An exponential filter with a state: y[t] = a * y[t-1] + (1 - a) * x[t], computed over the whole series."""

    forcings = (Variable("x"),)
    physical_parameters = (Parameter("a", 0.0, 0.99, per_component=False),)
    states = (State("y_last", initial=0.0),)
    outputs = (Variable("y"),)

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = []

    def simulate(self, forcings, params, attributes, state, processes, save):
        self.calls.append(forcings["x"].shape[0])
        a = params["a"]
        y = state["y_last"][:, 0]
        values = []
        for x in forcings["x"]:  # a series model may compute however it likes
            y = a * y + (1 - a) * x
            values.append(y)
        return {"y": torch.stack(values)}, {"y_last": y.unsqueeze(-1)}


def test_series_models_get_warm_up_from_the_engine():
    model = Smoother()
    x = torch.rand(30, 4)
    params = {"a": torch.full((4,), 0.8)}
    spun = model({"x": x}, params, warmup=10)
    assert model.calls == [10, 20] and spun["y"].shape == (20, 4)
    inline = model({"x": x}, params, warmup=10, warmup_mode="inline")
    assert model.calls[-1] == 30
    assert torch.allclose(spun["y"], inline["y"]) and torch.allclose(spun.state["y_last"], inline.state["y_last"])


def test_unavailable_backend_falls_back_to_eager_with_one_warning(reservoir_cls, forcings_factory):
    class NoSlots(Backend):
        def unavailable(self, loop):
            return "it cannot run process slots" if loop.processes else None

        def run(self, loop):
            raise AssertionError("must not run")

    m = reservoir_cls()
    f = forcings_factory(10, 2)
    engine = Engine(backend=NoSlots())
    fill = {"evaporation": lambda i: torch.zeros_like(i["S"])}
    with pytest.warns(UserWarning, match="cannot run ToyReservoir .it cannot run process slots.; running it eagerly"):
        out = m(f, params_for(m, 2), processes=fill, engine=engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = m(f, params_for(m, 2), processes=fill, engine=engine)
    assert torch.equal(out["Q"], again["Q"])
    assert torch.equal(out["Q"], m(f, params_for(m, 2), processes=fill)["Q"])


def test_backend_options_are_typed_and_unknown_ones_name_the_closest():
    class Chunky(Backend):
        class Config(Backend.Config):
            chunk_steps: int = 8

    assert Chunky(chunk_steps=4).config.chunk_steps == 4
    with pytest.raises(ConfigError, match=r"unknown key 'chunk_step'; did you mean 'chunk_steps'"):
        Chunky(chunk_step=4)
    with pytest.raises(SpecError, match="chunk_size must be a positive integer"):
        Recompute(chunk_size=0)


def test_check_inputs_levels(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    f = forcings_factory(10, 2)
    f["P"][3, 1] = float("nan")
    with pytest.raises(InputError, match=r"forcing 'P'.*time index 3, unit index 1"):
        m(f, params_for(m, 2), engine=Engine(check_inputs="always"))
    with pytest.raises(InputError, match="forcing 'P'"):
        m(f, params_for(m, 2))  # "auto" checks values of CPU tensors
    out = m(f, params_for(m, 2), engine=Engine(check_inputs="shapes"))
    assert bool(torch.isnan(out["Q"][3:, 1]).all())
    with pytest.raises(InputError, match="state 'S'"):
        m(forcings_factory(10, 2), params_for(m, 2), state={"S": torch.full((2, 1), float("inf"))})


def test_process_fillers_must_name_declared_slots(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    with pytest.raises(SpecError, match=r"no process slot \['melt'\]; slots: \['evaporation'\]"):
        m(forcings_factory(5, 2), params_for(m, 2), processes={"melt": lambda i: i["S"]})


def test_signature_is_per_instance_and_immutable(reservoir_cls):
    class Deep(reservoir_cls):
        def __init__(self, depth=50.0, **options):
            super().__init__(states=(State("S", "mm", initial=depth),), **options)

    deep = Deep(depth=80.0)
    assert deep.states[0].initial == 80.0 and deep.signature.states[0].initial == 80.0
    assert Deep.states[0].initial == 5.0  # the class-level declaration is untouched
    assert deep.initial_state(3)["S"].eq(80.0).all()
    with pytest.raises(AttributeError, match="immutable signature"):
        deep.states = ()
    assert reservoir_cls.forcings == deep.forcings


def test_old_interfaces_fail_at_class_definition_with_what_to_write():
    with pytest.raises(SpecError, match=r"step must take \(self, state, forcing_t, params_t, processes\)"):

        class ThreeArguments(StepModel):
            def step(self, state, forcing_t, params_t):
                return state, {}

    with pytest.raises(SpecError, match=r"derive it from dmg\.core\.StepModel"):

        class Direct(PhysicsModel):
            def step(self, state, forcing_t, params_t, processes):
                return state, {}


def test_models_of_no_kind_are_refused():
    class Bare(PhysicsModel):
        forcings = (Variable("x"),)
        outputs = (Variable("y"),)

    with pytest.raises(SpecError, match="derive it from StepModel"):
        integrate(Bare(), {"x": torch.zeros(3, 2)}, {})


def test_warm_up_modes_are_declared_and_composites_share_them(reservoir_cls, doubler_cls):
    class InlineOnly(reservoir_cls):
        warmup_modes = ("inline",)

    assert InlineOnly().warmup_mode == "inline"
    with pytest.raises(SpecError, match=r"supports warm-up modes \['inline'\], got 'spinup'"):
        InlineOnly(warmup_mode="spinup")
    chain = Chain(runoff=InlineOnly(), scale=doubler_cls())
    assert chain.signature.warmup_modes == ("inline",) and chain.warmup_mode == "inline"
    with pytest.raises(SpecError, match=r"supports \['inline'\], got 'spinup'"):
        chain(
            {"P": torch.zeros(5, 1), "PET": torch.zeros(5, 1)},
            {"k": torch.full((1, 1), 0.1), "a": torch.ones(1)},
            warmup=2,
            warmup_mode="spinup",
        )


def test_engine_given_per_call_overrides_the_default(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    backend = Recording()
    m(forcings_factory(12, 2), params_for(m, 2), engine=Engine(backend=backend))
    m(forcings_factory(12, 2), params_for(m, 2))
    assert len(backend.loops) == 1
    assert Engine.resolve("eager").backend.name == "EagerBackend"
