"""A test kit that any network — ours or a downstream one — runs against itself.

Use the checks directly::

    from dmg.nn.testing import check_network
    check_network(MyNet, {"hidden_size": 8})

or subclass :class:`NetworkTestKit` in a pytest module to get one test per check::

    class TestMyNet(NetworkTestKit):
        network = MyNet
        config = {"hidden_size": 8}

A network under test follows the interface of :mod:`dmg.core.networks`: ``input_kind``,
``output_kind``, a pydantic ``Config`` and ``from_config(config, *, n_inputs, n_outputs,
n_static)``.  Every check raises ``AssertionError`` naming the network and what failed.
The tensors are tiny, so the checks run fastest on one intra-op thread
(``torch.set_num_threads(1)``, e.g. in an autouse fixture).
"""

from __future__ import annotations

import copy
import io
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, get_origin

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from dmg.core.components import NetworkConfig

Config = Mapping[str, Any] | None
Tensors = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Sizes:
    """Sizes of the random inputs the checks draw."""

    n_time: int = 12
    n_units: int = 5
    n_features: int = 4
    n_static: int = 3
    n_outputs: int = 3
    n_split: tuple[int, int] = (2, 3)


TINY = Sizes(n_time=4, n_units=2, n_features=2, n_static=2, n_outputs=2, n_split=(2, 2))
"""Sizes for the finite-difference gradient check."""

LEARN = Sizes(n_time=40, n_units=48, n_features=2, n_static=2, n_outputs=1, n_split=(1, 1))
"""Sizes of the synthetic learning task."""


# ------------------------------------------------------------------ helpers
def build(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes(), *, seed: int = 0) -> nn.Module:
    """``cls.from_config`` with ``sizes`` after seeding torch with ``seed``."""
    n_outputs = sizes.n_split if cls.output_kind == "split" else sizes.n_outputs  # type: ignore[attr-defined]
    torch.manual_seed(seed)
    cfg = cls.Config.model_validate(dict(config or {}))  # type: ignore[attr-defined]
    return cls.from_config(  # type: ignore[attr-defined]
        cfg, n_inputs=sizes.n_features, n_outputs=n_outputs, n_static=sizes.n_static
    )


def make_inputs(
    net: nn.Module, sizes: Sizes = Sizes(), *, dtype: torch.dtype = torch.float32, seed: int = 0
) -> Tensors:
    """Random forward arguments for ``net``: ``x`` ~ N(0, 1) ``[time, unit, features]``,
    ``c`` ~ U(-1, 1) ``[unit, static]``, as its ``input_kind`` asks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sizes.n_time, sizes.n_units, sizes.n_features, generator=g, dtype=torch.float64).to(dtype)
    c = (2 * torch.rand(sizes.n_units, sizes.n_static, generator=g, dtype=torch.float64) - 1).to(dtype)
    kind = net.input_kind
    if kind == "sequence":
        return (x,)
    if kind == "static":
        return (c,)
    if kind == "sequence+static":
        return (x, c)
    raise AssertionError(f"{_name(net)}: input_kind {kind!r} is not 'sequence', 'static' or 'sequence+static'")


def as_tuple(out: torch.Tensor | Tensors) -> Tensors:
    """A network's output as a tuple of tensors."""
    return tuple(out) if isinstance(out, tuple | list) else (out,)


def expected_shapes(net: nn.Module, sizes: Sizes) -> list[tuple[int, ...]]:
    """Output shapes ``net`` must return for inputs of ``sizes``."""
    t, u = sizes.n_time, sizes.n_units
    if type(net).output_kind == "split":
        n_dyn, n_sta = sizes.n_split
        return [(t, u, n_dyn), (u, n_sta)]
    lead = (u,) if net.input_kind == "static" else (t, u)
    return [(*lead, sizes.n_outputs)]


def sequence_outputs(outputs: Tensors) -> Tensors:
    """The outputs that are ``[time, unit, ...]`` series."""
    return tuple(o for o in outputs if o.dim() == 3)


def compile_available() -> tuple[bool, str]:
    """Whether ``torch.compile`` can run here, and if not, why."""
    if not hasattr(torch, "compile"):
        return False, f"torch {torch.__version__} has no torch.compile"
    try:
        from torch._dynamo.eval_frame import is_dynamo_supported
    except ImportError:
        return False, "torch._dynamo is not importable"
    if not is_dynamo_supported():
        return False, "TorchDynamo does not support this Python version or platform"
    compiler = os.environ.get("CXX", "g++")
    if not any(shutil.which(c) for c in (compiler, "c++", "clang++")):
        return False, "no C++ compiler found for the inductor CPU backend"
    return True, ""


def _name(net: nn.Module | type) -> str:
    return net.__name__ if isinstance(net, type) else type(net).__name__


def _weighted_sum(outputs: Tensors, seed: int = 7) -> torch.Tensor:
    """``sum(w * y)`` with fixed random weights, so that no output cancels by symmetry."""
    g = torch.Generator().manual_seed(seed)
    total = outputs[0].new_zeros(())
    for y in outputs:
        w = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y)
        total = total + (w * y).sum()
    return total


# ------------------------------------------------------------------- checks
def check_config(cls: type[nn.Module], config: Config = None) -> None:
    """The ``Config`` forbids unknown keys; every option has a default and a description;
    the declared kinds are valid; a wrong ``n_outputs`` form is refused."""
    name = _name(cls)
    Config = cls.Config  # type: ignore[attr-defined]
    assert issubclass(Config, NetworkConfig), f"{name}.Config must subclass dmg.core.components.NetworkConfig"
    assert cls.input_kind in ("sequence", "static", "sequence+static"), f"{name}: bad input_kind {cls.input_kind!r}"
    assert cls.output_kind in ("single", "split"), f"{name}: bad output_kind {cls.output_kind!r}"

    def walk(model: type[BaseModel], prefix: str) -> None:
        for key, field in model.model_fields.items():
            assert not field.is_required(), f"{name}: option {prefix}{key} has no default"
            assert field.description, f"{name}: option {prefix}{key} has no description"
            annotation = field.annotation  # list[...] passes isinstance(..., type) on Python 3.10
            if isinstance(annotation, type) and get_origin(annotation) is None and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{key}.")

    walk(Config, "")
    Config()
    try:
        Config.model_validate({**dict(config or {}), "no_such_option": 1})
    except ValidationError as exc:
        assert "no_such_option" in str(exc), f"{name}: the error for an unknown key does not name it: {exc}"
    else:
        raise AssertionError(f"{name}.Config accepted the unknown key 'no_such_option'")
    cfg = Config.model_validate(dict(config or {}))
    wrong = 3 if cls.output_kind == "split" else (2, 3)
    try:
        cls.from_config(cfg, n_inputs=4, n_outputs=wrong, n_static=3)  # type: ignore[attr-defined]
    except (ValueError, TypeError):
        pass
    else:
        raise AssertionError(f"{name} accepted n_outputs={wrong!r} although its output_kind is {cls.output_kind!r}")


def check_shapes(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """Outputs have the shapes the interface promises and are finite."""
    net = build(cls, config, sizes).eval()
    outputs = as_tuple(net(*make_inputs(net, sizes)))
    shapes = [tuple(o.shape) for o in outputs]
    assert shapes == expected_shapes(net, sizes), (
        f"{_name(net)}: output shapes {shapes}, expected {expected_shapes(net, sizes)}"
    )
    for i, o in enumerate(outputs):
        assert bool(torch.isfinite(o).all()), f"{_name(net)}: output {i} has non-finite values"


def check_pointwise(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """A pointwise network maps any ``[..., features]`` tensor row by row (e.g. ``[unit, nmul, inputs]``)."""
    net = build(cls, config, sizes).eval()
    n_in = net.n_inputs
    x = torch.randn(sizes.n_units, 3, 2, n_in, generator=torch.Generator().manual_seed(3))
    y = net(x)
    rows = net(x.reshape(-1, n_in))
    assert y.shape[:-1] == x.shape[:-1], f"{_name(net)}: maps {tuple(x.shape)} to {tuple(y.shape)}"
    assert torch.allclose(y.reshape(-1, y.shape[-1]), rows, atol=1e-6), (
        f"{_name(net)}: output on a [..., features] tensor differs from the output row by row"
    )


def check_gradient_flow(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """In training mode, every parameter and every input receives a finite, non-zero gradient."""
    net = build(cls, config, sizes).train()
    inputs = tuple(i.requires_grad_(True) for i in make_inputs(net, sizes))
    _weighted_sum(as_tuple(net(*inputs))).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{_name(net)}: parameter {pname} receives no gradient"
        assert bool(torch.isfinite(p.grad).all()), f"{_name(net)}: gradient of {pname} is not finite"
        assert bool(p.grad.abs().sum() > 0), f"{_name(net)}: gradient of {pname} is zero everywhere"
    for i, x in enumerate(inputs):
        assert x.grad is not None and bool(torch.isfinite(x.grad).all()), f"{_name(net)}: input {i} gradient"
        assert bool(x.grad.abs().sum() > 0), f"{_name(net)}: output does not depend on input {i}"


def check_determinism(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """The same seed gives the same weights and, with the same RNG state, the same outputs."""
    a, b, other = (
        build(cls, config, sizes, seed=0),
        build(cls, config, sizes, seed=0),
        build(cls, config, sizes, seed=1),
    )
    sa, sb, so = a.state_dict(), b.state_dict(), other.state_dict()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), f"{_name(a)}: {key} differs between two builds with seed 0"
    assert any(not torch.equal(sa[k], so[k]) for k in sa), f"{_name(a)}: seeds 0 and 1 give the same weights"
    inputs = make_inputs(a, sizes)
    for mode in ("train", "eval"):
        a.train(mode == "train")
        b.train(mode == "train")
        torch.manual_seed(11)
        ya = as_tuple(a(*inputs))
        torch.manual_seed(11)
        yb = as_tuple(b(*inputs))
        for i, (p, q) in enumerate(zip(ya, yb)):
            assert torch.equal(p, q), f"{_name(a)}: output {i} differs between identical {mode}-mode runs"


def check_state_dict_roundtrip(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """Weights saved with ``torch.save`` and loaded into a fresh network reproduce its outputs exactly."""
    a, b = build(cls, config, sizes, seed=0).eval(), build(cls, config, sizes, seed=1).eval()
    inputs = make_inputs(a, sizes)
    ya = as_tuple(a(*inputs))
    assert any(not torch.equal(p, q) for p, q in zip(ya, as_tuple(b(*inputs)))), (
        f"{_name(a)}: differently seeded networks give identical outputs"
    )
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    for i, (p, q) in enumerate(zip(ya, as_tuple(b(*inputs)))):
        assert torch.equal(p, q), f"{_name(a)}: output {i} differs after a state_dict round trip"


def check_float64(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """After ``.double()`` the network computes in float64 and agrees with its float32 self."""
    net = build(cls, config, sizes).eval()
    inputs = make_inputs(net, sizes)
    y32 = as_tuple(net(*inputs))
    net64 = copy.deepcopy(net).double()
    y64 = as_tuple(net64(*(i.double() for i in inputs)))
    for i, (p, q) in enumerate(zip(y32, y64)):
        assert q.dtype == torch.float64, f"{_name(net)}: output {i} is {q.dtype} after .double()"
        assert torch.allclose(q, p.double(), rtol=1e-4, atol=1e-5), (
            f"{_name(net)}: float64 output {i} differs from float32 by {float((q - p.double()).abs().max()):.3g}"
        )


def check_gradcheck(cls: type[nn.Module], config: Config = None, sizes: Sizes = TINY) -> None:
    """Analytic input gradients match central finite differences in float64."""
    net = build(cls, config, sizes).double().eval()
    inputs = tuple(i.requires_grad_(True) for i in make_inputs(net, sizes, dtype=torch.float64, seed=5))
    ok = torch.autograd.gradcheck(
        lambda *args: as_tuple(net(*args)), inputs, atol=1e-6, rtol=1e-4, raise_exception=False
    )
    assert ok, f"{_name(net)}: analytic input gradients disagree with finite differences in float64"


def check_causality(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """Sequence outputs before step ``t0`` do not change when inputs from ``t0`` on change (but later ones do)."""
    net = build(cls, config, sizes).double().eval()
    inputs = make_inputs(net, sizes, dtype=torch.float64)
    if net.input_kind == "static":
        raise AssertionError(f"{_name(net)} reads no sequence; causality does not apply")
    t0 = sizes.n_time // 2
    x = inputs[0].clone()
    x[t0:] += torch.randn(x[t0:].shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    with torch.no_grad():
        before = sequence_outputs(as_tuple(net(*inputs)))
        after = sequence_outputs(as_tuple(net(x, *inputs[1:])))
    assert before, f"{_name(net)} returns no [time, unit, ...] output"
    for i, (p, q) in enumerate(zip(before, after)):
        leak = float((p[:t0] - q[:t0]).abs().max())
        assert leak <= 1e-10, f"{_name(net)}: output {i} before step {t0} changes by {leak:.3g} with later inputs"
        assert not torch.allclose(p[t0:], q[t0:]), f"{_name(net)}: output {i} ignores its inputs from step {t0} on"


def check_compile(cls: type[nn.Module], config: Config = None, sizes: Sizes = Sizes()) -> None:
    """``torch.compile(net)`` gives the eager outputs and parameter gradients."""
    net = build(cls, config, sizes).eval()
    inputs = make_inputs(net, sizes)
    compiled = torch.compile(net)
    results = []
    for module in (net, compiled):
        net.zero_grad()
        outputs = as_tuple(module(*inputs))
        _weighted_sum(outputs).backward()
        results.append((outputs, {k: p.grad.clone() for k, p in net.named_parameters()}))
    (eager, eager_grads), (comp, comp_grads) = results
    for i, (p, q) in enumerate(zip(eager, comp)):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), f"{_name(net)}: compiled output {i} differs from eager"
    for key in eager_grads:
        assert torch.allclose(eager_grads[key], comp_grads[key], rtol=1e-4, atol=1e-5), (
            f"{_name(net)}: compiled gradient of {key} differs from eager"
        )


# -------------------------------------------------------------- learning
def synthetic_task(net: nn.Module, sizes: Sizes = LEARN, *, seed: int = 0) -> tuple[Tensors, Tensors]:
    """Inputs and targets of a small task suited to ``net``'s input and output kinds.

    * dynamic target (sequence inputs): a leaky integrator of the first feature,
      ``s_t = a s_{t-1} + sqrt(1 - a²) x_t`` (unit variance), so the network needs memory;
      with static inputs too, the memory ``a = 0.55 + 0.35 c_0`` and a gain ``1 + 0.6 c_1``
      depend on the attributes;
    * static target (static inputs): ``sin(2.5 c_0) + c_0 c_1``;
    * for a pointwise network on a sequence, an instantaneous target ``sin(2 x_0) + x_0 x_1``
      (it has no memory).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sizes.n_time, sizes.n_units, sizes.n_features, generator=g)
    c = 2 * torch.rand(sizes.n_units, sizes.n_static, generator=g) - 1
    if net.input_kind == "sequence+static":
        a, gain = 0.55 + 0.35 * c[:, 0], 1 + 0.6 * c[:, 1]
    else:
        a, gain = torch.full((sizes.n_units,), 0.8), torch.ones(sizes.n_units)
    s = x[0, :, 0]
    series = [s]
    for x_t in x[1:, :, 0]:
        s = a * s + torch.sqrt(1 - a**2) * x_t
        series.append(s)
    dynamic = (gain * torch.stack(series)).unsqueeze(-1)
    if getattr(type(net), "pointwise", False):
        dynamic = (torch.sin(2 * x[..., 0]) + x[..., 0] * x[..., 1]).unsqueeze(-1)
    static = (torch.sin(2.5 * c[:, 0]) + c[:, 0] * c[:, 1]).unsqueeze(-1)
    if type(net).output_kind == "split":
        return (x, c), (dynamic, static)
    if net.input_kind == "static":
        return (c,), (static,)
    return ((x, c) if net.input_kind == "sequence+static" else (x,)), (dynamic,)


def normalised_mse(outputs: Tensors, targets: Tensors) -> torch.Tensor:
    """Mean over outputs of ``MSE / var(target)``: 1 is the skill of predicting the mean."""
    terms = [((o - t) ** 2).mean() / t.var() for o, t in zip(outputs, targets)]
    return torch.stack(terms).mean()


def check_learns(
    cls: type[nn.Module],
    config: Config = None,
    *,
    steps: int = 200,
    lr: float = 1e-2,
    threshold: float = 0.1,
    sizes: Sizes = LEARN,
) -> float:
    """Trained with Adam on :func:`synthetic_task`, the normalised MSE falls below ``threshold``.

    Returns the final normalised MSE (evaluation mode).
    """
    net = build(cls, config, sizes, seed=0)
    inputs, targets = synthetic_task(net, sizes)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.eval()
    with torch.no_grad():
        initial = float(normalised_mse(as_tuple(net(*inputs)), targets))
    net.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = normalised_mse(as_tuple(net(*inputs)), targets)
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        final = float(normalised_mse(as_tuple(net(*inputs)), targets))
    assert math.isfinite(final), f"{_name(net)}: training diverged (loss {final})"
    assert final < threshold, (
        f"{_name(net)}: normalised MSE {final:.3f} after {steps} steps (from {initial:.3f}), "
        f"expected below {threshold} (1 = predicting the mean)"
    )
    return final


CHECKS: dict[str, Callable[..., Any]] = {
    "config": check_config,
    "shapes": check_shapes,
    "pointwise": check_pointwise,
    "gradient_flow": check_gradient_flow,
    "determinism": check_determinism,
    "state_dict_roundtrip": check_state_dict_roundtrip,
    "float64": check_float64,
    "gradcheck": check_gradcheck,
    "causality": check_causality,
    "compile": check_compile,
    "learns": check_learns,
}
"""Every check by name; each takes ``(cls, config=None)``."""


def applicable(cls: type[nn.Module], check: str, config: Config = None) -> str | None:
    """``None`` if ``check`` applies to ``cls`` built with ``config``, else the reason it does not."""
    if check == "pointwise" and not getattr(cls, "pointwise", False):
        return f"{_name(cls)} is not pointwise"
    if check == "causality":
        kind = getattr(cls.Config.model_validate(dict(config or {})), "input_kind", cls.input_kind)  # type: ignore[attr-defined]
        if kind == "static":
            return f"{_name(cls)} reads static inputs only; there is no time axis"
    if check == "compile":
        ok, why = compile_available()
        if not ok:
            return why
    return None


def check_network(cls: type[nn.Module], config: Config = None, skip: tuple[str, ...] = ("compile",)) -> None:
    """Run every applicable check in :data:`CHECKS` except those in ``skip``."""
    for name, check in CHECKS.items():
        if name not in skip and applicable(cls, name, config) is None:
            check(cls, config)


class NetworkTestKit:
    """Subclass in a pytest module; set ``network`` (and ``config`` for small sizes).

    ``compile = True`` adds the ``torch.compile`` check; ``learn_steps``, ``learn_lr`` and
    ``learn_threshold`` tune the learning check.
    """

    network: ClassVar[type[nn.Module]]
    config: ClassVar[dict[str, Any]] = {}
    compile: ClassVar[bool] = False
    learn_steps: ClassVar[int] = 200
    learn_lr: ClassVar[float] = 1e-2
    learn_threshold: ClassVar[float] = 0.1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Drop the tests that do not apply to the network (pytest collects no ``None`` attribute)."""
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "network"):
            return
        if not cls.compile:
            cls.test_compile = None  # type: ignore[assignment]
        for check in ("pointwise", "causality"):
            if applicable(cls.network, check, cls.config) is not None:
                setattr(cls, f"test_{check}", None)

    def _check(self, name: str, **kwargs: Any) -> Any:
        import pytest

        reason = applicable(self.network, name, self.config)
        if reason is not None:
            pytest.skip(reason)
        return CHECKS[name](self.network, self.config, **kwargs)

    def test_config(self) -> None:
        self._check("config")

    def test_shapes(self) -> None:
        self._check("shapes")

    def test_pointwise(self) -> None:
        self._check("pointwise")

    def test_gradient_flow(self) -> None:
        self._check("gradient_flow")

    def test_determinism(self) -> None:
        self._check("determinism")

    def test_state_dict_roundtrip(self) -> None:
        self._check("state_dict_roundtrip")

    def test_float64(self) -> None:
        self._check("float64")

    def test_gradcheck(self) -> None:
        self._check("gradcheck")

    def test_causality(self) -> None:
        self._check("causality")

    def test_compile(self) -> None:
        self._check("compile")

    def test_learns(self) -> None:
        self._check("learns", steps=self.learn_steps, lr=self.learn_lr, threshold=self.learn_threshold)
