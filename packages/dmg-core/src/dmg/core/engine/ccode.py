"""C source of a whole-loop kernel from a step's lane-wise graphs (:mod:`dmg.core.engine.trace`).

The forward kernel runs every step of every lane in one call: units are shared among threads,
each unit's ``nmul`` lanes form the innermost loop (so the compiler vectorises across components),
and the state of a lane never leaves the cache. With ``keep`` it also records the state entering
each step, which is all the backward kernel needs: it walks time backwards, recomputing each
step's vector-Jacobian product from the recorded state, and accumulates the gradients of the
static values in place. Nothing else of the forward pass is stored.

Inputs given once per unit (a forcing, a shared parameter, an attribute) are loaded once per unit
and step, and their gradients are summed over the unit's lanes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from dmg.core.engine.trace import LaneLayout, StepGraphs, UnsupportedStepError

aten = torch.ops.aten

_C_TYPES = {torch.float32: "float", torch.float64: "double", torch.bool: "int", torch.int64: "long long"}
_SUFFIX = {"float": "f", "double": ""}
_UNARY = {
    aten.exp: "exp",
    aten.expm1: "expm1",
    aten.log: "log",
    aten.log1p: "log1p",
    aten.log2: "log2",
    aten.sqrt: "sqrt",
    aten.sin: "sin",
    aten.cos: "cos",
    aten.tan: "tan",
    aten.atan: "atan",
    aten.tanh: "tanh",
    aten.floor: "floor",
    aten.ceil: "ceil",
    aten.abs: "fabs",
}
_LIBRARY = {
    "exp": 1,
    "expm1": 1,
    "log": 1,
    "log1p": 1,
    "log2": 1,
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "atan": 1,
    "tanh": 1,
    "pow": 2,
}
"""C library math functions (name: number of arguments) that have vector variants in a vector math library."""
_COMPARE = {aten.lt: "<", aten.le: "<=", aten.gt: ">", aten.ge: ">=", aten.eq: "==", aten.ne: "!="}
_IDENTITY = {
    aten.clone,
    aten.alias,
    aten.alias_copy,
    aten.expand,
    aten.expand_copy,
    aten.view,
    aten.view_copy,
    aten._unsafe_view,
}


@dataclass(frozen=True)
class KernelSpec:
    """What one generated kernel is specialised on.

    Attributes
    ----------
    layout
        Names of the step's inputs and fluxes.
    per_lane
        For each of ``layout.static + layout.dynamic``: ``True`` if it has one value per lane,
        ``False`` if one per unit.
    saved
        Fluxes the forward kernel stores.
    flux_grads
        Fluxes whose gradients reach the backward kernel (the others count as zero).
    input_grads
        For each of ``layout.inputs``: whether the backward kernel computes its gradient.
    """

    layout: LaneLayout
    per_lane: tuple[bool, ...]
    saved: tuple[str, ...]
    flux_grads: tuple[str, ...]
    input_grads: tuple[bool, ...]


def c_type(dtype: torch.dtype) -> str:
    """The C type of values of ``dtype``."""
    try:
        return _C_TYPES[dtype]
    except KeyError:
        raise UnsupportedStepError(f"values of dtype {dtype} have no C type here") from None


def literal(value: Any, ctype: str) -> str:
    """``value`` (a Python number) as a C literal of type ``ctype``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if ctype in ("int", "long long"):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return f"(({ctype})NAN)"
    if math.isinf(value):
        return f"(({ctype})INFINITY)" if value > 0 else f"(-({ctype})INFINITY)"
    return f"(({ctype}){value!r})"


class _Emitter:
    """Statements computing one graph, node by node, from C expressions of its inputs."""

    def __init__(self, graph: fx.GraphModule, prefix: str, ctype: str) -> None:
        self.graph = graph
        self.prefix = prefix
        self.real = ctype
        self.names: dict[fx.Node, str] = {}
        self.types: dict[fx.Node, str] = {}
        self.functions: set[tuple[str, str, int]] = set()
        """C library functions called: name, type, number of arguments."""

    def emit(self, inputs: Sequence[str]) -> tuple[list[str], list[str]]:
        """C statements and the expressions of the graph's outputs (``"0"`` for a missing one)."""
        lines: list[str] = []
        placeholders = [n for n in self.graph.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(inputs):
            raise UnsupportedStepError(f"graph takes {len(placeholders)} inputs, {len(inputs)} given")
        for node, expr in zip(placeholders, inputs):
            self.names[node] = expr
            self.types[node] = self.real
        outputs: list[str] = []
        for index, node in enumerate(self.graph.graph.nodes):
            if node.op == "get_attr":
                value = getattr(self.graph, node.target)
                ctype = c_type(value.dtype)
                self._define(node, index, ctype, literal(value.item(), ctype), lines)
            elif node.op == "call_function":
                ctype = c_type(node.meta["val"].dtype)
                self._define(node, index, ctype, self._expression(node, ctype), lines)
            elif node.op == "output":
                flat = node.args[0]
                flat = flat if isinstance(flat, (tuple, list)) else (flat,)
                outputs = [self.names[o] if isinstance(o, fx.Node) else "0" for o in flat]
        return lines, outputs

    def _define(self, node: fx.Node, index: int, ctype: str, expr: str, lines: list[str]) -> None:
        name = f"{self.prefix}{index}"
        self.names[node] = name
        self.types[node] = ctype
        lines.append(f"const {ctype} {name} = {expr};")

    def _arg(self, value: Any, ctype: str) -> str:
        if isinstance(value, fx.Node):
            return self.names[value]
        if value is None:
            raise UnsupportedStepError("an operation has a missing operand")
        return literal(value, ctype)

    def _fn(self, name: str, ctype: str) -> str:
        full = name + _SUFFIX.get(ctype, "")
        if name in _LIBRARY:
            self.functions.add((full, ctype, _LIBRARY[name]))
        return full

    def _expression(self, node: fx.Node, ctype: str) -> str:
        packet = node.target.overloadpacket
        args, kw = node.args, node.kwargs

        def operand(i: int, as_type: str | None = None) -> str:
            return self._arg(args[i], as_type or ctype)

        if packet in (aten.add, aten.sub):
            alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
            other = operand(1) if alpha == 1 else f"({literal(alpha, ctype)} * {operand(1)})"
            return f"({operand(0)} {'+' if packet is aten.add else '-'} {other})"
        if packet is aten.rsub:
            alpha = kw.get("alpha", args[2] if len(args) > 2 else 1)
            this = operand(0) if alpha == 1 else f"({literal(alpha, ctype)} * {operand(0)})"
            return f"({operand(1)} - {this})"
        if packet is aten.mul:
            return f"({operand(0)} * {operand(1)})"
        if packet is aten.div:
            return f"({operand(0)} / {operand(1)})"
        if packet is aten.neg:
            return f"(-{operand(0)})"
        if packet in _UNARY:
            return f"{self._fn(_UNARY[packet], ctype)}({operand(0)})"
        if packet is aten.rsqrt:
            return f"({literal(1, ctype)} / {self._fn('sqrt', ctype)}({operand(0)}))"
        if packet is aten.reciprocal:
            return f"({literal(1, ctype)} / {operand(0)})"
        if packet is aten.sigmoid:
            return f"({literal(1, ctype)} / ({literal(1, ctype)} + {self._fn('exp', ctype)}(-{operand(0)})))"
        if packet is aten.relu:
            x = operand(0)
            return f"({x} < {literal(0, ctype)} ? {literal(0, ctype)} : {x})"
        if packet is aten.sign:
            x = operand(0)
            return f"({x} != {x} ? {x} : ({ctype})(({x} > 0) - ({x} < 0)))"
        if packet is aten.pow:
            return self._pow(node, ctype)
        if packet in (aten.minimum, aten.maximum):
            a, b = operand(0), operand(1)
            op = "<" if packet is aten.minimum else ">"
            return f"({a} != {a} ? {a} : ({a} {op} {b} ? {a} : {b}))"  # NaN propagates, as in torch
        if packet in (aten.clamp, aten.clamp_min, aten.clamp_max):
            x = operand(0)
            low = args[1] if packet in (aten.clamp, aten.clamp_min) and len(args) > 1 else kw.get("min")
            high = (
                args[1]
                if packet is aten.clamp_max
                else (args[2] if packet is aten.clamp and len(args) > 2 else kw.get("max"))
            )
            if low is not None:
                lo = self._arg(low, ctype)
                x = f"({x} < {lo} ? {lo} : {x})"
            if high is not None:
                hi = self._arg(high, ctype)
                x = f"({x} > {hi} ? {hi} : {x})"
            return x
        if packet is aten.where:
            return f"({operand(0, 'int')} ? {operand(1)} : {operand(2)})"
        if packet in _COMPARE:
            kind = self._operand_type(args[0], args[1])
            return f"({self._arg(args[0], kind)} {_COMPARE[packet]} {self._arg(args[1], kind)})"
        if packet in (aten.logical_and, aten.bitwise_and):
            return f"({operand(0, 'int')} && {operand(1, 'int')})"
        if packet in (aten.logical_or, aten.bitwise_or):
            return f"({operand(0, 'int')} || {operand(1, 'int')})"
        if packet in (aten.logical_not, aten.bitwise_not):
            return f"(!{operand(0, 'int')})"
        if packet is aten.masked_fill:
            return f"({operand(1, 'int')} ? {operand(2)} : {operand(0)})"
        if packet is aten.scalar_tensor:
            return literal(args[0], ctype)
        if packet is aten.full_like:
            return literal(args[1], ctype)
        if packet is aten.zeros_like:
            return literal(0, ctype)
        if packet is aten.ones_like:
            return literal(1, ctype)
        if packet is aten._to_copy:
            return f"(({ctype}){operand(0, self.types.get(args[0], ctype))})"
        if packet in _IDENTITY:
            return operand(0)
        if packet is aten.threshold_backward:
            grad, x = operand(0), operand(1)
            return f"({x} <= {self._arg(args[2], ctype)} ? {literal(0, ctype)} : {grad})"
        if packet is aten.sigmoid_backward:
            grad, out = operand(0), operand(1)
            return f"(({grad} * ({literal(1, ctype)} - {out})) * {out})"
        if packet is aten.tanh_backward:
            grad, out = operand(0), operand(1)
            return f"({grad} * ({literal(1, ctype)} - {out} * {out}))"
        raise UnsupportedStepError(f"no C translation of {node.target}")

    def _operand_type(self, a: Any, b: Any) -> str:
        for value in (a, b):
            if isinstance(value, fx.Node) and self.types[value] in ("float", "double"):
                return self.types[value]
        for value in (a, b):
            if isinstance(value, fx.Node):
                return self.types[value]
        return self.real

    def _pow(self, node: fx.Node, ctype: str) -> str:
        base, exponent = node.args[0], node.args[1]
        if not isinstance(exponent, fx.Node) and isinstance(base, fx.Node):
            x = self.names[base]
            one = literal(1, ctype)
            special = {
                1.0: x,
                2.0: f"({x} * {x})",
                3.0: f"({x} * {x} * {x})",
                0.5: f"{self._fn('sqrt', ctype)}({x})",
                -0.5: f"({one} / {self._fn('sqrt', ctype)}({x}))",
                -1.0: f"({one} / {x})",
                -2.0: f"({one} / ({x} * {x}))",
            }
            if float(exponent) in special:
                return special[float(exponent)]
        return f"{self._fn('pow', ctype)}({self._arg(base, ctype)}, {self._arg(exponent, ctype)})"


def kernel_source(graphs: StepGraphs, spec: KernelSpec) -> str:
    """The C source of the forward (plain and state-keeping) and backward kernels for ``spec``.

    Compiled with ``-DDMG_VECTOR_MATH``, the C library's math functions it calls are declared
    ``omp declare simd``, so loops calling them vectorise against the vector math library.
    """
    real = c_type(graphs.dtype)
    layout = spec.layout
    n_states, n_forcings, n_static = len(layout.states), len(layout.forcings), len(layout.static)
    static_lane = spec.per_lane[:n_static]
    dynamic_lane = spec.per_lane[n_static:]
    functions: set[tuple[str, str, int]] = set()
    body = _forward(graphs, spec, real, keep=False, functions=functions)
    body += _forward(graphs, spec, real, keep=True, functions=functions)
    body += _backward(graphs, spec, real, n_states, n_forcings, static_lane, dynamic_lane, functions)
    head = ["#include <math.h>", "#include <stdint.h>", "#include <stddef.h>", f"typedef {real} real;", ""]
    if functions:
        head.append("#ifdef DMG_VECTOR_MATH")
        for name, ctype, n_args in sorted(functions):
            head += ["#pragma omp declare simd notinbranch", f"{ctype} {name}({', '.join([ctype] * n_args)});"]
        head += ["#endif", ""]
    return "\n".join(head + body) + "\n"


def _pointers(layout: LaneLayout, lanes: Sequence[bool], backward: bool, spec: KernelSpec) -> list[str]:
    """Local ``restrict`` pointers to every array a kernel touches, so the compiler may vectorise."""
    n_states, n_static = len(layout.states), len(layout.static)
    out = [f"const real *restrict fo{i} = forcing[{i}];" for i in range(len(layout.forcings))]
    out += [f"const real *restrict sa{i} = stat[{i}];" for i in range(n_static)]
    out += [f"const real *restrict dy{i} = dyn[{i}];" for i in range(len(layout.dynamic))]
    if not backward:
        out += [f"real *restrict st{i} = state + {i} * L;" for i in range(n_states)]
        out += [f"real *restrict fx{j} = flux[{j}];" for j in range(len(spec.saved))]
        return out
    f0, a0, d0 = n_states, n_states + len(layout.forcings), n_states + len(layout.forcings) + n_static
    need = spec.input_grads
    out += [f"real *restrict gst{i} = gstate + {i} * L;" for i in range(n_states)]
    out += [f"const real *restrict gfx{j} = gflux[{j}];" for j in range(len(spec.flux_grads))]
    out += [f"real *restrict gfo{i} = gforcing[{i}];" for i in range(len(layout.forcings)) if need[f0 + i]]
    out += [f"real *restrict gsa{i} = gstat[{i}];" for i in range(n_static) if need[a0 + i]]
    out += [f"real *restrict gdy{i} = gdyn[{i}];" for i in range(len(layout.dynamic)) if need[d0 + i]]
    return out


def _loads(
    layout: LaneLayout, static_lane: Sequence[bool], dynamic_lane: Sequence[bool]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Per-unit loads, per-unit-and-step loads (outside the lane loop), per-lane loads, input expressions."""
    unit = [f"const real a{i} = sa{i}[u];" for i, lane in enumerate(static_lane) if not lane]
    step = [f"const real f{i} = fo{i}[t * U + u];" for i in range(len(layout.forcings))]
    step += [f"const real d{i} = dy{i}[t * U + u];" for i, lane in enumerate(dynamic_lane) if not lane]
    lane = [f"const real a{i} = sa{i}[l];" for i, is_lane in enumerate(static_lane) if is_lane]
    lane += [f"const real d{i} = dy{i}[t * L + l];" for i, is_lane in enumerate(dynamic_lane) if is_lane]
    names = (
        [f"s{i}" for i in range(len(layout.states))]
        + [f"f{i}" for i in range(len(layout.forcings))]
        + [f"a{i}" for i in range(len(layout.static))]
        + [f"d{i}" for i in range(len(layout.dynamic))]
    )
    return unit, step, lane, names


_LANE_LOOP = ["#pragma omp simd", "for (int64_t l = u * K; l < u * K + K; ++l) {"]
"""The innermost loop, over the lanes (components) of one unit: independent, so vectorisable."""


def _forward(
    graphs: StepGraphs, spec: KernelSpec, real: str, keep: bool, functions: set[tuple[str, str, int]]
) -> list[str]:
    layout = spec.layout
    n_states, n_static = len(layout.states), len(layout.static)
    lanes = spec.per_lane
    unit, step, lane, names = _loads(layout, lanes[:n_static], lanes[n_static:])
    emitter = _Emitter(graphs.forward, "v", real)
    lines, outputs = emitter.emit(names)
    functions |= emitter.functions
    saved = [layout.fluxes.index(name) for name in spec.saved]
    name = "dmg_forward_keep" if keep else "dmg_forward"
    out = [
        f"void {name}(int64_t T, int64_t U, int64_t K, int nthreads, real *state, const real *const *forcing,",
        "        const real *const *stat, const real *const *dyn, real *const *flux, real *history)",
        "{",
        "    const int64_t L = U * K;",
        "    (void)history; (void)flux; (void)stat; (void)dyn; (void)forcing; (void)state;",
        *_indent(_pointers(layout, lanes, False, spec), 1),
        "    real *restrict hist = history;" if keep else "",
        "#pragma omp parallel for num_threads(nthreads) schedule(static)",
        "    for (int64_t u = 0; u < U; ++u) {",
        *_indent(unit, 2),
        "        for (int64_t t = 0; t < T; ++t) {",
        *_indent(step, 3),
        *_indent(_LANE_LOOP, 3),
        *_indent([f"const real s{i} = st{i}[l];" for i in range(n_states)], 4),
        *_indent(lane, 4),
    ]
    if keep:
        out += _indent([f"hist[(t * {n_states} + {i}) * L + l] = s{i};" for i in range(n_states)], 4)
    out += _indent(lines, 4)
    out += _indent([f"st{i}[l] = {outputs[i]};" for i in range(n_states)], 4)
    out += _indent([f"fx{j}[t * L + l] = {outputs[n_states + f]};" for j, f in enumerate(saved)], 4)
    out += ["            }", "        }", "    }", "}", ""]
    return out


def _backward(
    graphs: StepGraphs,
    spec: KernelSpec,
    real: str,
    n_states: int,
    n_forcings: int,
    static_lane: Sequence[bool],
    dynamic_lane: Sequence[bool],
    functions: set[tuple[str, str, int]],
) -> list[str]:
    layout = spec.layout
    n_static = len(layout.static)
    unit, step, lane, names = _loads(layout, static_lane, dynamic_lane)
    cotangents = [f"gs{i}" for i in range(n_states)]
    cotangents += [f"gf{j}" if name in spec.flux_grads else literal(0, real) for j, name in enumerate(layout.fluxes)]
    emitter = _Emitter(graphs.backward, "w", real)
    lines, grads = emitter.emit(names + cotangents)
    functions |= emitter.functions
    need = spec.input_grads
    f0, a0, d0 = n_states, n_states + n_forcings, n_states + n_forcings + n_static
    flux_loads = [
        f"const real gf{j} = gfx{spec.flux_grads.index(name)}[t * L + l];"
        for j, name in enumerate(layout.fluxes)
        if name in spec.flux_grads
    ]
    unit_acc = [f"real ga{i} = 0;" for i, is_lane in enumerate(static_lane) if not is_lane and need[a0 + i]]
    step_acc = [f"real gf_{i} = 0;" for i in range(n_forcings) if need[f0 + i]]
    step_acc += [f"real gd{i} = 0;" for i, is_lane in enumerate(dynamic_lane) if not is_lane and need[d0 + i]]
    reduced = [f"gf_{i}" for i in range(n_forcings) if need[f0 + i]]
    reduced += [f"gd{i}" for i, is_lane in enumerate(dynamic_lane) if not is_lane and need[d0 + i]]
    reduced += [f"ga{i}" for i, is_lane in enumerate(static_lane) if not is_lane and need[a0 + i]]
    lane_out = [f"gst{i}[l] = {grads[i]};" for i in range(n_states)]
    lane_out += [f"gf_{i} += {grads[f0 + i]};" for i in range(n_forcings) if need[f0 + i]]
    for i, is_lane in enumerate(static_lane):
        if need[a0 + i]:
            lane_out.append(f"gsa{i}[l] += {grads[a0 + i]};" if is_lane else f"ga{i} += {grads[a0 + i]};")
    for i, is_lane in enumerate(dynamic_lane):
        if need[d0 + i]:
            lane_out.append(f"gdy{i}[t * L + l] = {grads[d0 + i]};" if is_lane else f"gd{i} += {grads[d0 + i]};")
    step_out = [f"gfo{i}[t * U + u] = gf_{i};" for i in range(n_forcings) if need[f0 + i]]
    step_out += [
        f"gdy{i}[t * U + u] = gd{i};" for i, is_lane in enumerate(dynamic_lane) if not is_lane and need[d0 + i]
    ]
    unit_out = [f"gsa{i}[u] = ga{i};" for i, is_lane in enumerate(static_lane) if not is_lane and need[a0 + i]]
    lane_loop = list(_LANE_LOOP)
    if reduced:
        lane_loop[0] += " reduction(+:" + ", ".join(reduced) + ")"
    return [
        "void dmg_backward(int64_t T, int64_t U, int64_t K, int nthreads, const real *history,",
        "        const real *const *forcing, const real *const *stat, const real *const *dyn,",
        "        const real *const *gflux, real *gstate, real *const *gforcing, real *const *gstat, real *const *gdyn)",
        "{",
        "    const int64_t L = U * K;",
        "    (void)gflux; (void)gforcing; (void)gstat; (void)gdyn; (void)stat; (void)dyn; (void)forcing; (void)gstate;",
        *_indent(_pointers(layout, spec.per_lane, True, spec), 1),
        "    const real *restrict hist = history;",
        "#pragma omp parallel for num_threads(nthreads) schedule(static)",
        "    for (int64_t u = 0; u < U; ++u) {",
        *_indent(unit, 2),
        *_indent(unit_acc, 2),
        "        for (int64_t t = T - 1; t >= 0; --t) {",
        *_indent(step, 3),
        *_indent(step_acc, 3),
        *_indent(lane_loop, 3),
        *_indent([f"const real s{i} = hist[(t * {n_states} + {i}) * L + l];" for i in range(n_states)], 4),
        *_indent([f"const real gs{i} = gst{i}[l];" for i in range(n_states)], 4),
        *_indent(flux_loads, 4),
        *_indent(lane, 4),
        *_indent(lines, 4),
        *_indent(lane_out, 4),
        "            }",
        *_indent(step_out, 3),
        "        }",
        *_indent(unit_out, 2),
        "    }",
        "}",
        "",
    ]


def _indent(lines: Iterable[str], level: int) -> list[str]:
    pad = "    " * level
    return [pad + line for line in lines]
