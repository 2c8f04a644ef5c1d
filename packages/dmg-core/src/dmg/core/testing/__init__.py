"""A test kit that any physics model — ours or a downstream one — runs against itself.

Use the checks directly::

    from dmg.core.testing import check_physics_model
    check_physics_model(MyModel(nmul=2))

or subclass :class:`PhysicsModelTestKit` in a pytest module to get one test per check::

    class TestMyModel(PhysicsModelTestKit):
        def make_model(self):
            return MyModel(nmul=2)

Every check raises ``AssertionError`` with a message naming the model, the quantity and
where it failed.  Inputs are drawn from each variable's ``typical_range`` and each
parameter's bounds; pass your own :class:`Case` for realistic ones.  Every check also takes an
``engine`` (see :mod:`dmg.core.engine`), so the whole kit runs under any backend or memory
policy, and :func:`check_engine_equivalence` compares an engine with the reference eager one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch

from dmg.core.engine import Engine
from dmg.core.physics import Outputs, PhysicsModel

TensorDict = dict[str, torch.Tensor]


@dataclass
class Case:
    """Inputs for one simulation: forcings ``[time, unit]``, physical params, attributes ``[unit]``."""

    forcings: TensorDict
    params: TensorDict
    attributes: TensorDict = field(default_factory=dict)
    warmup: int = 0

    def to(self, dtype: torch.dtype) -> Case:
        """A copy with every tensor cast to ``dtype``."""

        def cast(d: Mapping[str, torch.Tensor]) -> TensorDict:
            return {k: v.to(dtype) for k, v in d.items()}

        return replace(self, forcings=cast(self.forcings), params=cast(self.params), attributes=cast(self.attributes))


def make_case(
    model: PhysicsModel,
    n_time: int = 40,
    n_units: int = 3,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    u_range: tuple[float, float] = (0.0, 1.0),
    warmup: int = 0,
) -> Case:
    """Random inputs within declared ranges: forcings and attributes uniform in ``typical_range``,
    parameters uniform in their bounds (``u`` drawn from ``u_range``)."""
    g = torch.Generator().manual_seed(seed)

    def uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)).to(dtype)

    forcings = {v.name: uniform((n_time, n_units), *v.typical_range) for v in model.signature.forcings}
    attributes = {v.name: uniform((n_units,), *v.typical_range) for v in model.signature.attributes}
    spec = model.parameter_spec
    params: TensorDict = {}
    for p in spec:
        shape: tuple[int, ...] = (n_units, spec.nmul) if p.per_component else (n_units,)
        if spec.is_dynamic(p.name):
            shape = (n_time, *shape)
        params[p.name] = p.scale(uniform(shape, *u_range))
    return Case(forcings, params, attributes, warmup)


def run(model: PhysicsModel, case: Case, engine: Engine | None = None, **kwargs: object) -> Outputs:
    """Run ``model`` on ``case`` (under ``engine``)."""
    return model(case.forcings, case.params, attributes=case.attributes, warmup=case.warmup, engine=engine, **kwargs)


def _name(model: PhysicsModel) -> str:
    return type(model).__name__


# ---------------------------------------------------------------------- checks
def check_declarations(model: PhysicsModel, case: Case | None = None, engine: Engine | None = None) -> None:
    """Declared names are unique; every declared output and state comes out with the right shape."""
    case = case or make_case(model)
    groups = {
        "forcings": model.forcing_names,
        "attributes": model.attribute_names,
        "states": model.state_names,
        "outputs": model.output_names,
        "parameters": model.parameter_spec.names,
    }
    for group, names in groups.items():
        assert len(set(names)) == len(names), f"{_name(model)}: duplicate names in {group}: {names}"
    assert model.output_names, f"{_name(model)} declares no outputs"
    out = run(model, case, engine)
    n_time = next(iter(case.forcings.values())).shape[0] - case.warmup
    n_units = next(iter(case.forcings.values())).shape[1]
    for name in model.output_names:
        assert name in out, f"{_name(model)}: declared output {name!r} missing; got {sorted(out)}"
        shape = tuple(out[name].shape)
        assert shape in ((n_time, n_units), (n_units,)), (
            f"{_name(model)}: output {name!r} has shape {shape}, expected ({n_time}, {n_units}) or ({n_units},)"
        )
    for name in model.state_names:
        assert name in out.state, f"{_name(model)}: final state lacks {name!r}"
        assert tuple(out.state[name].shape) == (n_units, model.nmul), (
            f"{_name(model)}: state {name!r} has shape {tuple(out.state[name].shape)}, "
            f"expected ({n_units}, {model.nmul})"
        )


def check_parameter_bounds(model: PhysicsModel, case: Case | None = None, engine: Engine | None = None) -> None:
    """Raw values from -1e4 to 1e4 map into each parameter's bounds, extremes onto them."""
    spec = model.parameter_spec
    n_units, n_time = 4, 6
    raw = torch.linspace(-1e4, 1e4, n_time * n_units * spec.n_channels(), dtype=torch.float64)
    raw = raw.reshape(n_time, n_units, spec.n_channels())
    for transform in ("sigmoid", "clamp"):
        for name, value in spec.from_raw(raw, transform=transform).items():
            p = spec[name]
            assert bool((value >= p.low).all() and (value <= p.high).all()), (
                f"{_name(model)}: parameter {name!r} leaves [{p.low}, {p.high}] under transform {transform!r}"
            )
    low = spec.from_raw(torch.full((1, 1, spec.n_channels()), -1e4, dtype=torch.float64))
    high = spec.from_raw(torch.full((1, 1, spec.n_channels()), 1e4, dtype=torch.float64))
    for p in spec:
        assert torch.allclose(low[p.name], torch.tensor(p.low, dtype=torch.float64)), (
            f"{p.name}: low end is not {p.low}"
        )
        assert torch.allclose(high[p.name], torch.tensor(p.high, dtype=torch.float64)), (
            f"{p.name}: high end is not {p.high}"
        )


def _unit_params(model: PhysicsModel, case: Case) -> tuple[TensorDict, Callable[[TensorDict], TensorDict]]:
    """Leaf ``u`` tensors for every parameter and a function mapping them to physical values."""
    spec = model.parameter_spec
    u = {k: spec[k].unscale(v).detach().clone().requires_grad_(True) for k, v in case.params.items()}
    return u, lambda u: {k: spec[k].scale(v) for k, v in u.items()}


def check_finite_gradients(model: PhysicsModel, case: Case | None = None, engine: Engine | None = None) -> None:
    """Gradients of every output with respect to every parameter and forcing are finite."""
    case = case or make_case(model)
    u, to_params = _unit_params(model, case)
    forcings = {k: v.detach().clone().requires_grad_(True) for k, v in case.forcings.items()}
    out = model(forcings, to_params(u), attributes=case.attributes, warmup=case.warmup, engine=engine)
    for name in model.output_names:
        value = out[name]
        assert bool(torch.isfinite(value).all()), f"{_name(model)}: output {name!r} is not finite"
        if not value.requires_grad:
            continue
        leaves = list(u.values()) + list(forcings.values())
        grads = torch.autograd.grad(value.sum(), leaves, allow_unused=True, retain_graph=True)
        for leaf_name, g in zip(list(u) + list(forcings), grads):
            if g is not None:
                bad = ~torch.isfinite(g)
                assert not bool(bad.any()), (
                    f"{_name(model)}: d {name} / d {leaf_name} has {int(bad.sum())} non-finite values"
                )


def check_gradcheck(
    model: PhysicsModel,
    case: Case | None = None,
    engine: Engine | None = None,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> None:
    """Analytic gradients match finite differences in float64 on a small case (w.r.t. parameters)."""
    case = (case or make_case(model, n_time=8, n_units=2, u_range=(0.2, 0.8), seed=1)).to(torch.float64)
    u, to_params = _unit_params(model, case)
    names = list(u)

    def fn(*values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params = to_params(dict(zip(names, values)))
        out = model(case.forcings, params, attributes=case.attributes, warmup=case.warmup, engine=engine)
        return tuple(out[n] for n in model.output_names)

    ok = torch.autograd.gradcheck(fn, tuple(u[n] for n in names), atol=atol, rtol=rtol, raise_exception=False)
    assert ok, f"{_name(model)}: analytic gradients disagree with finite differences in float64"


def check_determinism(model: PhysicsModel, case: Case | None = None, engine: Engine | None = None) -> None:
    """Two runs on the same inputs give bit-identical outputs and states."""
    case = case or make_case(model)
    a, b = run(model, case, engine), run(model, case, engine)
    for name in a:
        assert torch.equal(a[name], b[name]), f"{_name(model)}: output {name!r} differs between identical runs"
    for name in a.state:
        assert torch.equal(a.state[name], b.state[name]), (
            f"{_name(model)}: state {name!r} differs between identical runs"
        )


def check_state_carryover(
    model: PhysicsModel,
    case: Case | None = None,
    engine: Engine | None = None,
    *,
    split: int | None = None,
    atol: float = 1e-5,
) -> None:
    """Running ``[0, T)`` in one call equals ``[0, split)`` then ``[split, T)`` with the state carried."""
    case = case or make_case(model)
    n_time = next(iter(case.forcings.values())).shape[0]
    split = split or n_time // 2
    spec = model.parameter_spec

    def part(start: int, stop: int) -> tuple[TensorDict, TensorDict]:
        params = {
            k: v[start:stop] if spec.is_dynamic(k) and v.dim() == (3 if spec[k].per_component else 2) else v
            for k, v in case.params.items()
        }
        return {k: v[start:stop] for k, v in case.forcings.items()}, params

    whole = model(case.forcings, case.params, attributes=case.attributes, engine=engine)
    f1, p1 = part(0, split)
    first = model(f1, p1, attributes=case.attributes, engine=engine)
    f2, p2 = part(split, n_time)
    second = model(f2, p2, attributes=case.attributes, state=first.state, engine=engine)
    for name in model.output_names:
        if whole[name].dim() < 2:
            continue
        joined = torch.cat([first[name], second[name]])
        assert torch.allclose(joined, whole[name], atol=atol, rtol=1e-5), (
            f"{_name(model)}: output {name!r} differs when the run is split at step {split} and the state carried"
        )


def check_mass_balance(
    model: PhysicsModel,
    case: Case | None = None,
    engine: Engine | None = None,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> None:
    """``sum(inputs) - sum(outputs) = Δ storage`` per unit over the run, for models declaring a MassBalance.

    A closed system (empty ``inputs`` and ``outputs``) must keep the sum of its storages constant.
    """
    balance = model.signature.mass_balance
    if balance is None:
        return
    case = case or make_case(model, n_time=60)
    n_units = next(iter(case.forcings.values())).shape[1]
    first = next(iter(case.forcings.values()))
    initial = model.initial_state(n_units, dtype=first.dtype)
    out = model(case.forcings, case.params, attributes=case.attributes, state=initial, engine=engine)

    def series(name: str) -> torch.Tensor:
        if name in out:
            return out[name]
        if name in case.forcings:
            return case.forcings[name]
        raise AssertionError(f"{_name(model)}: mass-balance term {name!r} is neither an output nor a forcing")

    none = torch.zeros(n_units, dtype=first.dtype, device=first.device)  # a closed system declares no inputs or outputs
    inflow = sum((series(n).sum(0) for n in balance.inputs), none)
    outflow = sum((series(n).sum(0) for n in balance.outputs), none)
    stored0 = sum(initial[n].mean(-1) for n in balance.storages)
    stored1 = sum(out.state[n].mean(-1) for n in balance.storages)
    residual = inflow - outflow - (stored1 - stored0)
    scale = inflow.abs() + stored0.abs()
    worst = int(torch.argmax(residual.abs() - rtol * scale))
    assert bool((residual.abs() <= rtol * scale + atol).all()), (
        f"{_name(model)}: mass balance off by {float(residual[worst]):.3g} at unit {worst} "
        f"(inputs {float(inflow[worst]):.6g}, outputs {float(outflow[worst]):.6g}, "
        f"storage change {float(stored1[worst] - stored0[worst]):.6g})"
    )


def check_process_slots(model: PhysicsModel, case: Case | None = None, engine: Engine | None = None) -> None:
    """Every declared process slot is asked for by the model with its declared inputs, and its filler is used."""
    slots = model.signature.slots
    if not slots:
        return
    case = case or make_case(model)
    seen: dict[str, set[str]] = {s.name: set() for s in slots}

    def filler(name: str) -> Callable[[TensorDict], torch.Tensor]:
        def fill(inputs: TensorDict) -> torch.Tensor:
            seen[name].update(inputs)
            first = torch.broadcast_tensors(*inputs.values())[0] if inputs else torch.zeros(())
            return torch.zeros_like(first)

        return fill

    default = run(model, case, engine)
    filled = run(model, case, engine, processes={s.name: filler(s.name) for s in slots})
    for s in slots:
        assert seen[s.name], f"{_name(model)}: process slot {s.name!r} is declared but step never asks for it"
        missing = sorted(set(s.inputs) - seen[s.name])
        assert not missing, f"{_name(model)}: process slot {s.name!r} is not given its declared inputs {missing}"
    assert any(not torch.equal(default[n], filled[n]) for n in model.output_names if n in default), (
        f"{_name(model)}: filling every process slot with zero changes no output"
    )


def check_engine_equivalence(
    model: PhysicsModel,
    case: Case | None = None,
    engine: Engine | None = None,
    *,
    rtol: float = 1e-5,
    grad_rtol: float = 1e-4,
) -> None:
    """``engine`` gives the outputs, final states and parameter gradients of the reference eager engine.

    Outputs and states agree to ``rtol`` and gradients to ``grad_rtol``, each relative to the largest
    magnitude of the reference value. With no ``engine`` there is nothing to compare.
    """
    if engine is None:
        return
    case = case or make_case(model, u_range=(0.1, 0.9))
    results = []
    for candidate in (Engine(), engine):
        u, to_params = _unit_params(model, case)
        out = model(case.forcings, to_params(u), attributes=case.attributes, warmup=case.warmup, engine=candidate)
        total = sum(v.sum() for v in out.values() if v.requires_grad)
        grads = (
            dict(zip(u, torch.autograd.grad(total, list(u.values()), allow_unused=True)))
            if torch.is_tensor(total)
            else {}
        )
        results.append((out, grads))
    (ref, ref_grads), (got, got_grads) = results

    def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
        a, b = a.detach(), b.detach()
        return bool((a - b).abs().max() <= tol * max(float(b.abs().max()), 1e-12)) if b.numel() else True

    for name in ref:
        assert close(got[name], ref[name], rtol), f"{_name(model)}: output {name!r} differs from the eager engine"
    for name in ref.state:
        assert close(got.state[name], ref.state[name], rtol), f"{_name(model)}: state {name!r} differs from eager"
    for name, g in ref_grads.items():
        if g is not None:
            assert got_grads[name] is not None and close(got_grads[name], g, grad_rtol), (
                f"{_name(model)}: the gradient with respect to {name!r} differs from the eager engine"
            )


CHECKS: dict[str, Callable[..., None]] = {
    "declarations": check_declarations,
    "parameter_bounds": check_parameter_bounds,
    "finite_gradients": check_finite_gradients,
    "gradcheck": check_gradcheck,
    "determinism": check_determinism,
    "state_carryover": check_state_carryover,
    "mass_balance": check_mass_balance,
    "process_slots": check_process_slots,
    "engine_equivalence": check_engine_equivalence,
}
"""Every check by name; each takes ``(model, case=None, engine=None)``."""


def check_physics_model(
    model: PhysicsModel, case: Case | None = None, skip: tuple[str, ...] = (), engine: Engine | None = None
) -> None:
    """Run every check in :data:`CHECKS` except those in ``skip``, under ``engine`` (default: eager)."""
    for name, check in CHECKS.items():
        if name not in skip:
            check(model, case, engine)


class PhysicsModelTestKit:
    """Subclass in a pytest module; implement :meth:`make_model` (and optionally :meth:`make_case`).

    Set ``skip`` to a tuple of check names that do not apply (with a comment saying why), and
    ``engine`` to run every check under another engine (the equivalence check then compares it
    with the eager reference).
    """

    skip: tuple[str, ...] = ()
    engine: Engine | None = None

    def make_model(self) -> PhysicsModel:
        raise NotImplementedError("implement make_model() to return the model under test")

    def make_case(self, model: PhysicsModel) -> Case | None:
        """Inputs for the checks; ``None`` draws them from declared ranges."""
        return None

    def _check(self, name: str) -> None:
        if name in self.skip:
            import pytest

            pytest.skip(f"{name} does not apply to this model")
        model = self.make_model()
        CHECKS[name](model, self.make_case(model), self.engine)

    def test_declarations(self) -> None:
        self._check("declarations")

    def test_parameter_bounds(self) -> None:
        self._check("parameter_bounds")

    def test_finite_gradients(self) -> None:
        self._check("finite_gradients")

    def test_gradcheck(self) -> None:
        self._check("gradcheck")

    def test_determinism(self) -> None:
        self._check("determinism")

    def test_state_carryover(self) -> None:
        self._check("state_carryover")

    def test_mass_balance(self) -> None:
        self._check("mass_balance")

    def test_process_slots(self) -> None:
        self._check("process_slots")

    def test_engine_equivalence(self) -> None:
        self._check("engine_equivalence")
