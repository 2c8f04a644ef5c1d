"""The ``kernel`` backend: each model's step generated into one compiled loop over time, forward and backward.

For a step made of elementwise operations (:mod:`dmg.core.engine.trace`), the backend generates C
code for the whole loop (:mod:`dmg.core.engine.ccode`), compiles it once with the system C compiler
(:mod:`dmg.core.engine.cbuild`, cached on disk) and runs it through a custom autograd function:

* forward: one call runs every step of every lane, keeping in memory only the fluxes that are asked
  for and, when a gradient will be needed, the state entering each step;
* backward: one call walks time backwards through the step's vector-Jacobian product, recomputed
  from the kept states, and accumulates every gradient in place — memory of the states only, none of
  autograd's per-step graph.

The results equal the eager loop's (the same operations, in the same order, in the same precision;
only the rounding of library functions such as ``exp`` may differ in the last bit). Where the backend
cannot run a loop — a step that is not elementwise, a process slot filled by a network, a tensor not
on the CPU, no C compiler — :meth:`KernelBackend.unavailable` says why and the engine runs that loop
eagerly.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import Field

from dmg.core.engine.backends import Backend, BackendConfig, Loop
from dmg.core.engine.cbuild import Built, CompilerError, build, find_compiler
from dmg.core.engine.ccode import KernelSpec, kernel_source
from dmg.core.engine.trace import LaneLayout, StepGraphs, UnsupportedStepError, trace_step
from dmg.core.signature import TensorDict

_POINTERS = ctypes.POINTER(ctypes.c_void_p)


class KernelConfig(BackendConfig):
    """Options of the ``kernel`` backend."""

    threads: int | None = Field(None, ge=1, description="Threads of the kernels; default: torch's intra-op threads.")
    vector_math: bool = Field(
        True,
        description="Vectorise math functions (exp, log, pow, ...) with the C library's vector math library where "
        "there is one (accurate to a few ulp; IEEE semantics otherwise kept).",
    )
    fast_math: bool = Field(
        False,
        description="Let the compiler reorder floating-point arithmetic (results may differ in the last digits, "
        "and NaN/inf are assumed absent).",
    )


@dataclass
class _Plan:
    """One model's traced step for one input layout and dtype, and its compiled variants."""

    graphs: StepGraphs
    per_lane: tuple[bool, ...]
    libraries: dict[KernelSpec, Built] = field(default_factory=dict)
    compile_seconds: float = 0.0

    def library(self, spec: KernelSpec, config: KernelConfig) -> Built:
        built = self.libraries.get(spec)
        if built is None:
            built = build(kernel_source(self.graphs, spec), fast_math=config.fast_math, vector_math=config.vector_math)
            _declare(built.library)
            self.libraries[spec] = built
            self.compile_seconds += built.seconds
        return built


def _declare(library: ctypes.CDLL) -> None:
    common = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
    for name in ("dmg_forward", "dmg_forward_keep"):
        getattr(library, name).argtypes = [
            *common,
            ctypes.c_void_p,
            _POINTERS,
            _POINTERS,
            _POINTERS,
            _POINTERS,
            ctypes.c_void_p,
        ]
        getattr(library, name).restype = None
    library.dmg_backward.argtypes = [
        *common,
        ctypes.c_void_p,
        _POINTERS,
        _POINTERS,
        _POINTERS,
        _POINTERS,
        ctypes.c_void_p,
        _POINTERS,
        _POINTERS,
        _POINTERS,
    ]
    library.dmg_backward.restype = None


def _pointers(tensors: list[torch.Tensor | None] | tuple[torch.Tensor | None, ...]) -> Any:
    """A C array of the tensors' data pointers (``NULL`` for ``None``), or ``NULL`` for no tensors."""
    if not tensors:
        return None
    return (ctypes.c_void_p * len(tensors))(*(None if t is None else t.data_ptr() for t in tensors))


class KernelBackend(Backend):
    """Each step generated into one compiled C loop over time, forward and backward, on the CPU."""

    Config: ClassVar[type[KernelConfig]] = KernelConfig

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self._plans: weakref.WeakKeyDictionary[Any, dict[tuple, _Plan | str]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "kernel"

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling (or loading cached) kernels by this backend so far."""
        return sum(p.compile_seconds for plans in self._plans.values() for p in plans.values() if isinstance(p, _Plan))

    # ------------------------------------------------------------------ planning
    def unavailable(self, loop: Loop) -> str | None:
        if loop.processes:
            return "its process slots are filled by networks, which a generated kernel cannot call"
        tensors = [*loop.state.values(), *loop.forcings.values(), *loop.static.values(), *loop.dynamic.values()]
        if not tensors:
            return "it has no inputs"
        if any(t.device.type != "cpu" for t in tensors):
            return "generated kernels run on the CPU only"
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) != 1 or next(iter(dtypes)) not in (torch.float32, torch.float64):
            return f"its inputs are not all float32 or all float64 ({sorted(map(str, dtypes))})"
        plan = self._plan(loop)
        return plan if isinstance(plan, str) else None

    def _plan(self, loop: Loop) -> _Plan | str:
        model = loop.model
        k = model.nmul
        per_lane = tuple(v.shape[-1] == k for v in (*loop.static.values(), *loop.dynamic.values()))
        dtype = next(
            iter((*loop.state.values(), *loop.forcings.values(), *loop.static.values(), *loop.dynamic.values()))
        ).dtype
        key = (tuple(loop.state), tuple(loop.forcings), tuple(loop.static), tuple(loop.dynamic), per_lane, dtype)
        with self._lock:
            plans = self._plans.setdefault(model, {})
            plan = plans.get(key)
            if plan is None:
                layout = LaneLayout(tuple(loop.state), tuple(loop.forcings), tuple(loop.static), tuple(loop.dynamic))
                try:
                    find_compiler()
                    plan = _Plan(trace_step(model, layout, dtype), per_lane)
                except (UnsupportedStepError, CompilerError) as exc:
                    plan = str(exc)
                plans[key] = plan
        return plan

    # ------------------------------------------------------------------- running
    def run(self, loop: Loop) -> tuple[TensorDict, TensorDict]:
        plan = self._plan(loop)
        if isinstance(plan, str):
            raise UnsupportedStepError(plan)
        layout = plan.graphs.layout
        saved = layout.fluxes if loop.save is None else tuple(n for n in layout.fluxes if n in loop.save)
        missing = sorted(set(loop.save or ()) - set(layout.fluxes))
        if missing:
            raise UnsupportedStepError(f"{type(loop.model).__name__}.step returns no flux {missing}")
        threads = self.config.threads or torch.get_num_threads()
        tensors = _flatten(loop, layout, plan.per_lane)
        needs = tuple(t.requires_grad for t in tensors)
        run = _Run(plan, self.config, threads, saved, loop.n_time, loop.model.nmul, layout)
        if torch.is_grad_enabled() and any(needs):
            outputs = _KernelFunction.apply(run, *tensors)
        else:
            outputs = run.forward(tensors, keep=False)[0]
        n_states = len(layout.states)
        k = loop.model.nmul
        final = {name: outputs[i].view(-1, k) for i, name in enumerate(layout.states)}
        fluxes = {name: outputs[n_states + j].view(loop.n_time, -1, k) for j, name in enumerate(saved)}
        return final, fluxes


def _flatten(loop: Loop, layout: LaneLayout, per_lane: tuple[bool, ...]) -> list[torch.Tensor]:
    """The loop's tensors in kernel layout: states ``[L]``, forcings ``[T, U]``, static ``[L]`` or ``[U]``,
    dynamic ``[T, L]`` or ``[T, U]``, all contiguous."""
    n_static = len(layout.static)
    out = [loop.state[n].reshape(-1).contiguous() for n in layout.states]
    out += [loop.forcings[n].reshape(loop.n_time, -1).contiguous() for n in layout.forcings]
    for i, n in enumerate(layout.static):
        value = loop.static[n]
        out.append((value if per_lane[i] else value[..., 0]).reshape(-1).contiguous())
    for i, n in enumerate(layout.dynamic):
        value = loop.dynamic[n]
        out.append((value if per_lane[n_static + i] else value[..., 0]).reshape(loop.n_time, -1).contiguous())
    return out


@dataclass
class _Run:
    """One call of a kernel: the plan, options and sizes."""

    plan: _Plan
    config: KernelConfig
    threads: int
    saved: tuple[str, ...]
    n_time: int
    nmul: int
    layout: LaneLayout

    def spec(self, flux_grads: tuple[str, ...], input_grads: tuple[bool, ...]) -> KernelSpec:
        return KernelSpec(self.layout, self.plan.per_lane, self.saved, flux_grads, input_grads)

    def split(self, tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> tuple[list, list, list, list]:
        n_s, n_f, n_a = len(self.layout.states), len(self.layout.forcings), len(self.layout.static)
        tensors = list(tensors)
        return tensors[:n_s], tensors[n_s : n_s + n_f], tensors[n_s + n_f : n_s + n_f + n_a], tensors[n_s + n_f + n_a :]

    def forward(
        self, tensors: list[torch.Tensor] | tuple[torch.Tensor, ...], keep: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        states, forcings, static, dynamic = self.split(tensors)
        like = tensors[0]
        n_lanes = self._lanes(tensors)
        n_units = n_lanes // self.nmul
        state = (
            torch.stack([s.detach() for s in states]).contiguous()
            if states
            else torch.empty(0, n_lanes, dtype=like.dtype)
        )
        fluxes = [torch.empty(self.n_time, n_lanes, dtype=like.dtype) for _ in self.saved]
        history = torch.empty(self.n_time, len(states), n_lanes, dtype=like.dtype) if keep else None
        library = self.plan.library(self.spec((), (False,) * len(tensors)), self.config).library
        function = library.dmg_forward_keep if keep else library.dmg_forward
        function(
            self.n_time,
            n_units,
            self.nmul,
            self.threads,
            state.data_ptr() if states else None,
            _pointers([f.detach() for f in forcings]),
            _pointers([a.detach() for a in static]),
            _pointers([d.detach() for d in dynamic]),
            _pointers(fluxes),
            history.data_ptr() if history is not None and states else None,
        )
        return [row.clone() for row in state.unbind(0)] + fluxes, history

    def _lanes(self, tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> int:
        states, forcings, static, dynamic = self.split(tensors)
        if states:
            return states[0].numel()
        for i, a in enumerate(static):
            if self.plan.per_lane[i]:
                return a.numel()
        for i, d in enumerate(dynamic):
            if self.plan.per_lane[len(static) + i]:
                return d.shape[1]
        for value in (*forcings, *dynamic):
            return value.shape[1] * self.nmul
        return static[0].numel() * self.nmul

    def backward(
        self,
        tensors: tuple[torch.Tensor, ...],
        history: torch.Tensor,
        grads: tuple[torch.Tensor | None, ...],
        input_grads: tuple[bool, ...],
    ) -> list[torch.Tensor | None]:
        states, forcings, static, dynamic = self.split(tensors)
        like = tensors[0]
        n_lanes = self._lanes(tensors)
        n_units = n_lanes // self.nmul
        n_states = len(states)
        state_grads, flux_grads = grads[:n_states], grads[n_states:]
        gstate = torch.zeros(n_states, n_lanes, dtype=like.dtype)
        for i, g in enumerate(state_grads):
            if g is not None:
                gstate[i] = g
        present = tuple(name for name, g in zip(self.saved, flux_grads) if g is not None)
        gflux = [g.reshape(self.n_time, n_lanes).contiguous() for g in flux_grads if g is not None]
        out: list[torch.Tensor | None] = [None] * len(tensors)
        for i in range(n_states, len(tensors)):
            if input_grads[i]:  # static gradients accumulate in place; the others are written once
                static_input = n_states + len(forcings) <= i < n_states + len(forcings) + len(static)
                out[i] = torch.zeros_like(tensors[i]) if static_input else torch.empty_like(tensors[i])
        f0, a0, d0 = n_states, n_states + len(forcings), n_states + len(forcings) + len(static)
        gforcing, gstat, gdyn = out[f0:a0], out[a0:d0], out[d0:]
        library = self.plan.library(self.spec(present, input_grads), self.config).library
        library.dmg_backward(
            self.n_time,
            n_units,
            self.nmul,
            self.threads,
            history.data_ptr() if n_states else None,
            _pointers(forcings),
            _pointers(static),
            _pointers(dynamic),
            _pointers(gflux),
            gstate.data_ptr() if n_states else None,
            _pointers(gforcing),
            _pointers(gstat),
            _pointers(gdyn),
        )
        for i in range(n_states):
            if input_grads[i]:
                out[i] = gstate[i]
        return out


class _KernelFunction(torch.autograd.Function):
    """The whole loop as one differentiable operation: outputs are final states then saved fluxes."""

    @staticmethod
    def forward(ctx: Any, run: _Run, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        needs = tuple(ctx.needs_input_grad[1:])
        outputs, history = run.forward(tensors, keep=True)
        ctx.run = run
        ctx.needs = needs
        ctx.save_for_backward(history, *tensors)
        ctx.set_materialize_grads(False)
        return tuple(outputs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        history, *tensors = ctx.saved_tensors
        detached = tuple(t.detach() for t in tensors)
        return (None, *ctx.run.backward(detached, history, grads, ctx.needs))
