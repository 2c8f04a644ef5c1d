"""Tracing a model's ``step`` into per-lane graphs: the raw material of generated kernels.

Most process models (HBV and the other conceptual models among them) compute each of their
``unit × nmul`` *lanes* independently with elementwise tensor operations. :func:`trace_step` records
one step, with every input a 1-D tensor of lanes, as an ATen graph (``torch.fx``, functionalised, fake
tensors: nothing is computed), and the vector-Jacobian product of that step the same way. A code
generator then turns each graph into scalar code applied lane by lane.

A step that is not purely elementwise — a reduction over components, an indexing or reshaping
operation, Python control flow on tensor values, a network filling a process slot — cannot be traced
this way; :class:`UnsupportedStepError` says why and the engine runs the model eagerly instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import fx
from torch.fx.experimental.proxy_tensor import make_fx

from dmg.core.signature import NO_PROCESSES

if TYPE_CHECKING:
    from dmg.core.physics import StepModel

TRACE_LANES = 4
"""Lanes of the example inputs a step is traced with (any number above one works)."""

aten = torch.ops.aten

ELEMENTWISE: frozenset[Any] = frozenset(
    {
        aten.add,
        aten.sub,
        aten.rsub,
        aten.mul,
        aten.div,
        aten.neg,
        aten.abs,
        aten.exp,
        aten.expm1,
        aten.log,
        aten.log1p,
        aten.log2,
        aten.sqrt,
        aten.rsqrt,
        aten.reciprocal,
        aten.sin,
        aten.cos,
        aten.tan,
        aten.atan,
        aten.tanh,
        aten.floor,
        aten.ceil,
        aten.pow,
        aten.sigmoid,
        aten.relu,
        aten.sign,
        aten.minimum,
        aten.maximum,
        aten.clamp,
        aten.clamp_min,
        aten.clamp_max,
        aten.where,
        aten.lt,
        aten.le,
        aten.gt,
        aten.ge,
        aten.eq,
        aten.ne,
        aten.logical_and,
        aten.logical_or,
        aten.logical_not,
        aten.bitwise_and,
        aten.bitwise_or,
        aten.bitwise_not,
        aten.masked_fill,
        aten.scalar_tensor,
        aten.full_like,
        aten.zeros_like,
        aten.ones_like,
        aten._to_copy,
        aten.clone,
        aten.alias,
        aten.expand,
        aten.expand_copy,
        aten.view,
        aten.view_copy,
        aten.alias_copy,
        aten._unsafe_view,
        aten.threshold_backward,
        aten.sigmoid_backward,
        aten.tanh_backward,
    }
)
"""ATen operations (by overload packet) a lane-wise kernel can express."""


class UnsupportedStepError(Exception):
    """A step cannot become a lane-wise kernel; the message says why."""


@dataclass(frozen=True)
class LaneLayout:
    """Names of a step's inputs and outputs, in the order of the traced graphs' arguments.

    Attributes
    ----------
    states
        The model's states.
    forcings
        Forcings, one value per unit and step.
    static
        Values constant in time (static parameters, attributes).
    dynamic
        Time-varying parameters.
    fluxes
        Every flux ``step`` returns, sorted by name.
    """

    states: tuple[str, ...]
    forcings: tuple[str, ...]
    static: tuple[str, ...]
    dynamic: tuple[str, ...]
    fluxes: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input of a step: states, forcings, static values, dynamic values."""
        return self.states + self.forcings + self.static + self.dynamic


@dataclass(frozen=True)
class StepGraphs:
    """One step as lane-wise graphs.

    Attributes
    ----------
    layout
        Input and output names.
    forward
        ``inputs -> (new states..., fluxes...)``.
    backward
        ``inputs, cotangents of (new states..., fluxes...) -> gradients of inputs``.
    dtype
        The floating dtype the graphs were traced in.
    """

    layout: LaneLayout
    forward: fx.GraphModule
    backward: fx.GraphModule
    dtype: torch.dtype


def trace_step(model: StepModel, layout: LaneLayout, dtype: torch.dtype) -> StepGraphs:
    """Trace ``model.step`` lane by lane (no process fillers).

    Raises :class:`UnsupportedStepError` if the step is not elementwise.
    """
    n_states, n_forcings = len(layout.states), len(layout.forcings)
    params = layout.static + layout.dynamic
    fluxes: list[str] = []

    def step(*values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = dict(zip(layout.states, values[:n_states]))
        forcing = dict(zip(layout.forcings, values[n_states : n_states + n_forcings]))
        params_t = dict(zip(params, values[n_states + n_forcings :]))
        new_state, out = model.step(state, forcing, params_t, NO_PROCESSES)
        missing = [s for s in layout.states if s not in new_state]
        if missing:
            raise UnsupportedStepError(f"step returned no new value for states {missing}")
        if not fluxes:
            fluxes.extend(sorted(out))
        results = [new_state[s] for s in layout.states] + [out[name] for name in fluxes]
        if not all(isinstance(r, torch.Tensor) for r in results):
            raise UnsupportedStepError("step returned a value that is not a tensor")
        return tuple(r.expand(TRACE_LANES) if r.dim() == 0 else r for r in results)

    examples = [torch.ones(TRACE_LANES, dtype=dtype) for _ in layout.inputs]
    forward = _trace(step, examples, "the step")
    full = LaneLayout(layout.states, layout.forcings, layout.static, layout.dynamic, tuple(fluxes))
    n_inputs = len(examples)

    def vector_jacobian(*values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _, pullback = torch.func.vjp(step, *values[:n_inputs])
        return pullback(tuple(values[n_inputs:]))

    cotangents = [torch.ones(TRACE_LANES, dtype=dtype) for _ in range(len(full.states) + len(full.fluxes))]
    backward = _trace(vector_jacobian, examples + cotangents, "the gradient of the step")
    return StepGraphs(full, forward, backward, dtype)


def _trace(fn: Callable[..., Any], examples: list[torch.Tensor], what: str) -> fx.GraphModule:
    try:
        graph = make_fx(torch.func.functionalize(fn, remove="mutations_and_views"), tracing_mode="fake")(*examples)
    except UnsupportedStepError:
        raise
    except Exception as exc:  # data-dependent control flow, unsupported shapes, ...: say what torch said
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedStepError(f"{what} cannot be traced lane by lane ({type(exc).__name__}: {first})") from exc
    check_lanewise(graph, what)
    return graph


def check_lanewise(graph: fx.GraphModule, what: str) -> None:
    """Raise :class:`UnsupportedStepError` unless every operation of ``graph`` acts lane by lane."""
    for node in graph.graph.nodes:
        if node.op == "get_attr":
            value = getattr(graph, node.target)
            if not (isinstance(value, torch.Tensor) and value.dim() == 0):
                raise UnsupportedStepError(f"{what} uses a constant tensor of shape {tuple(value.shape)}")
        if node.op != "call_function":
            continue
        packet = getattr(node.target, "overloadpacket", None)
        if packet not in ELEMENTWISE:
            raise UnsupportedStepError(f"{what} uses {node.target}, which is not an elementwise operation")
        value = node.meta.get("val")
        shape = tuple(getattr(value, "shape", ()))
        if shape not in ((), (TRACE_LANES,)):
            raise UnsupportedStepError(f"{what} makes a value of shape {shape} ({node.target}): lanes would mix")
        if packet in (aten.expand, aten.expand_copy, aten.view, aten.view_copy, aten._unsafe_view):
            source = tuple(node.args[0].meta["val"].shape)
            if source not in ((), (TRACE_LANES,)):
                raise UnsupportedStepError(f"{what} reshapes lanes ({node.target})")
        if packet is aten.div and node.kwargs.get("rounding_mode") is not None:
            raise UnsupportedStepError(f"{what} divides with rounding ({node.target})")
