import pytest
import torch

from dmg.core import ConfigError, InputError, RegistryError, ShapeError, SpecError
from dmg.core.engine import Engine, Recompute, available_backends, integrate


def static_params(model, n_units, k=0.1, c=0.8):
    return {"k": torch.full((n_units, model.nmul), k), "c": torch.full((n_units, model.nmul), c)}


def test_forward_shapes_and_tensor_or_mapping_forcings(reservoir_cls, forcings_factory):
    m = reservoir_cls(nmul=2)
    f = forcings_factory(30, 4)
    out = m(f, static_params(m, 4))
    assert out["Q"].shape == (30, 4) and out.state["S"].shape == (4, 2)
    stacked = torch.stack([f["P"], f["PET"]], dim=-1)
    same = m(stacked, static_params(m, 4))
    assert torch.equal(out["Q"], same["Q"])


def test_defaults_fill_unsupplied_parameters(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    f = forcings_factory(10, 2)
    a = m(f, {"k": torch.full((2, 1), 0.1)})
    b = m(f, {"k": torch.full((2, 1), 0.1), "c": torch.ones(2, 1)})
    assert torch.equal(a["Q"], b["Q"])


def test_spinup_equals_gradient_free_pass_then_main_pass(reservoir_cls, forcings_factory):
    m = reservoir_cls(nmul=2)
    f = forcings_factory(50, 3)
    params = static_params(m, 3)
    out = m(f, params, warmup=20)
    first = m({k: v[:20] for k, v in f.items()}, params)
    rest = m({k: v[20:] for k, v in f.items()}, params, state=first.state)
    assert out["Q"].shape == (30, 3)
    assert torch.allclose(out["Q"], rest["Q"])


def test_spinup_pass_carries_no_gradient(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    f = forcings_factory(40, 2)
    k = torch.full((2, 1), 0.1, requires_grad=True)
    warm_k = torch.full((2, 1), 0.3, requires_grad=True)
    out = m(f, {"k": k}, warmup=20, warmup_params={"k": warm_k})
    out["Q"].sum().backward()
    assert k.grad is not None and warm_k.grad is None


def test_inline_equals_trimmed_full_run(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    f = forcings_factory(50, 3)
    params = static_params(m, 3)
    inline = m(f, params, warmup=20, warmup_mode="inline")
    full = m(f, params)
    assert torch.equal(inline["Q"], full["Q"][20:])


def test_dynamic_parameters_are_sliced_with_warmup(reservoir_cls, forcings_factory):
    m = reservoir_cls(dynamic=["k"])
    f = forcings_factory(40, 2)
    k = torch.linspace(0.05, 0.4, 40)[:, None, None].expand(40, 2, 1)
    out = m(f, {"k": k}, warmup=10)
    first = m({n: v[:10] for n, v in f.items()}, {"k": k[:10]})
    rest = m({n: v[10:] for n, v in f.items()}, {"k": k[10:]}, state=first.state)
    assert torch.allclose(out["Q"], rest["Q"])


def test_state_carryover_matches_single_run(reservoir_cls, forcings_factory):
    m = reservoir_cls(nmul=3)
    f = forcings_factory(60, 2)
    params = static_params(m, 2)
    whole = m(f, params)
    a = m({k: v[:25] for k, v in f.items()}, params)
    b = m({k: v[25:] for k, v in f.items()}, params, state=a.state)
    assert torch.allclose(torch.cat([a["Q"], b["Q"]]), whole["Q"])


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_recompute_memory_policy_matches_store_all_values_and_gradients(reservoir_cls, forcings_factory, chunk):
    f = forcings_factory(45, 3)
    results = []
    for engine in (Engine(), Engine(memory=Recompute(chunk_size=chunk))):
        m = reservoir_cls(nmul=2, dynamic=["k"])
        k = torch.full((45, 3, 2), 0.2, requires_grad=True)
        out = m(f, {"k": k}, warmup=5, warmup_mode="inline", engine=engine)
        out["Q"].pow(2).sum().backward()
        results.append((out["Q"].detach(), k.grad))
    assert torch.allclose(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1])


def test_engine_rejects_unknown_backend_and_mismatched_lengths(reservoir_cls, forcings_factory):
    assert "eager" in available_backends()
    m = reservoir_cls(dynamic=["k"])
    f = forcings_factory(3, 2)
    with pytest.raises(RegistryError, match=r"'fast'.*eager"):
        integrate(m, f, {"k": torch.full((3, 2, 1), 0.1)}, engine="fast")
    with pytest.raises(ShapeError, match="'k'"):
        integrate(m, f, {"k": torch.full((4, 2, 1), 0.1)})


def test_nan_forcing_is_an_error_naming_variable_and_position(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    f = forcings_factory(10, 3)
    f["PET"][4, 2] = float("nan")
    with pytest.raises(InputError, match=r"forcing 'PET' has 1 non-finite.*time index 4, unit index 2"):
        m(f, static_params(m, 3))


def test_input_errors_are_clear(reservoir_cls, forcings_factory):
    m = reservoir_cls(nmul=2)
    f = forcings_factory(10, 3)
    with pytest.raises(InputError, match=r"missing forcings \['PET'\]"):
        m({"P": f["P"]}, static_params(m, 3))
    with pytest.raises(ShapeError, match=r"\[time, unit, 2\]"):
        m(torch.zeros(10, 3, 3), static_params(m, 3))
    with pytest.raises(ShapeError, match="'k'"):
        m(f, {"k": torch.zeros(3, 1)})
    with pytest.raises(SpecError, match=r"missing parameters \['k'\]"):
        m(f, {})
    with pytest.raises(InputError, match="warmup"):
        m(f, static_params(m, 3), warmup=10)
    with pytest.raises(ShapeError, match="state 'S'"):
        m(f, static_params(m, 3), state={"S": torch.zeros(3, 1)})
    with pytest.raises(ConfigError, match="warmup_mode"):
        type(m)(warmup_mode="later")


def test_process_slot_filler_replaces_default_only_in_its_call(reservoir_cls, forcings_factory):
    m = reservoir_cls()
    f = forcings_factory(20, 2)
    params = static_params(m, 2)
    no_et = m(f, params, processes={"evaporation": lambda inputs: torch.zeros_like(inputs["S"])})
    assert float(no_et["ET"].abs().sum()) == 0.0
    assert float(m(f, params)["ET"].sum()) > 0.0
    with pytest.raises(SpecError, match="no process slot 'melt'"):
        m.slot("melt")
