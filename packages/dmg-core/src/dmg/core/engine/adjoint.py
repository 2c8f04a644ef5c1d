"""The ``adjoint`` backend: the whole loop as one differentiable operation, memory of the states only.

Forward runs every step without building a graph and keeps only the state entering each step (and
the fluxes asked for). Backward walks time backwards: at each step it recomputes that step from the
kept state and applies its vector-Jacobian product to the incoming gradients, accumulating the
gradients of the static parameters and writing those of the time series. Memory grows with
``time × states`` instead of with every intermediate value of every step; with ``compile`` the
per-step vector-Jacobian product is compiled with ``torch.compile``.

It differentiates with respect to the loop's tensors (initial state, forcings, parameters,
attributes); steps whose process slots are filled by networks are run by the eager reference
instead, since the networks' weights are not among them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from dmg.core.engine.backends import Backend, BackendConfig, EagerBackend, Loop, run_steps
from dmg.core.signature import TensorDict


class AdjointConfig(BackendConfig):
    """Options of the ``adjoint`` backend."""

    compile: bool = Field(False, description="Compile each step's vector-Jacobian product with torch.compile.")


class AdjointBackend(Backend):
    """The loop as one differentiable operation keeping only the states; backward recomputes each step."""

    Config: ClassVar[type[AdjointConfig]] = AdjointConfig

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self._vjps: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return "adjoint"

    def unavailable(self, loop: Loop) -> str | None:
        if loop.processes:
            return "its process slots are filled by networks, whose weights the adjoint does not differentiate"
        return None

    def run(self, loop: Loop) -> tuple[TensorDict, TensorDict]:
        tensors = _Tensors.of(loop)
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors.flat)):
            return EagerBackend().run(loop)
        names: list[str] = []  # the forward fills in the names of the fluxes it returns
        outputs = _AdjointFunction.apply(self, loop, tensors, names, *tensors.flat)
        n_states = len(tensors.state_names)
        final = dict(zip(tensors.state_names, outputs[:n_states]))
        return final, dict(zip(names, outputs[n_states:]))

    def step_vjp(self, loop: Loop) -> Any:
        """``vjp(state, forcing_t, params_t, grad_state, grad_fluxes) -> (grad_state, grad_forcing, grad_params)``."""
        vjp = self._vjps.get(id(loop.model))
        if vjp is None:
            model, processes = loop.model, loop.processes

            def vjp(state, forcing_t, params_t, grad_state, grad_fluxes):
                def step(state, forcing_t, params_t):
                    new_state, fluxes = model.step(state, forcing_t, params_t, processes)
                    return new_state, {k: fluxes[k] for k in grad_fluxes}

                _, pullback = torch.func.vjp(step, state, forcing_t, params_t)
                return pullback((grad_state, grad_fluxes))

            if self.config.compile:
                vjp = torch.compile(vjp, dynamic=False)
            self._vjps[id(loop.model)] = vjp
        return vjp


class _Tensors:
    """A loop's tensors in a fixed order, for an autograd function."""

    def __init__(self, state: TensorDict, forcings: TensorDict, static: TensorDict, dynamic: TensorDict) -> None:
        self.state_names = tuple(state)
        self.forcing_names = tuple(forcings)
        self.static_names = tuple(static)
        self.dynamic_names = tuple(dynamic)
        self.flat = (*state.values(), *forcings.values(), *static.values(), *dynamic.values())

    @classmethod
    def of(cls, loop: Loop) -> _Tensors:
        return cls(loop.state, loop.forcings, loop.static, loop.dynamic)

    def split(self, values: tuple[Any, ...]) -> tuple[dict, dict, dict, dict]:
        names = (self.state_names, self.forcing_names, self.static_names, self.dynamic_names)
        out, offset = [], 0
        for group in names:
            out.append(dict(zip(group, values[offset : offset + len(group)])))
            offset += len(group)
        return out[0], out[1], out[2], out[3]


class _AdjointFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, backend: AdjointBackend, loop: Loop, tensors: _Tensors, names: list[str], *flat: torch.Tensor
    ) -> Any:
        history: list[TensorDict] = []
        state, fluxes = run_steps(loop, history)
        kept = list(fluxes)
        names.extend(kept)
        ctx.backend, ctx.loop, ctx.tensors, ctx.kept = backend, loop, tensors, kept
        ctx.history = history
        ctx.set_materialize_grads(False)
        return (*[state[name] for name in tensors.state_names], *fluxes.values())

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        loop, tensors = ctx.loop, ctx.tensors
        n_states = len(tensors.state_names)
        state_grads, flux_grads = grads[:n_states], grads[n_states:]
        _, forcings, static, dynamic = tensors.split(tuple(t.detach() for t in tensors.flat))
        grad_state = {
            name: g if g is not None else torch.zeros_like(ctx.history[-1][name] if ctx.history else g)
            for name, g in zip(tensors.state_names, state_grads)
        }
        present = [(name, g) for name, g in zip(ctx.kept, flux_grads) if g is not None]
        grad_static = {k: torch.zeros_like(v) for k, v in static.items()}
        grad_dynamic = {k: torch.zeros_like(v) for k, v in dynamic.items()}
        grad_forcing = {k: torch.zeros_like(v) for k, v in forcings.items()}
        vjp = ctx.backend.step_vjp(loop)
        for t in range(loop.n_time - 1, -1, -1):
            state_t = {k: v.detach() for k, v in ctx.history[t].items()}
            params_t = dict(static)
            params_t.update({k: v[t] for k, v in dynamic.items()})
            forcing_t = {k: v[t] for k, v in forcings.items()}
            with torch.enable_grad():
                g_state, g_forcing, g_params = vjp(
                    state_t, forcing_t, params_t, grad_state, {name: g[t] for name, g in present}
                )
            grad_state = g_state
            for k, g in g_forcing.items():
                grad_forcing[k][t] = g
            for k, g in g_params.items():
                if k in grad_dynamic:
                    grad_dynamic[k][t] = g
                else:
                    grad_static[k].add_(g)
        ordered = (
            *[grad_state[k] for k in tensors.state_names],
            *[grad_forcing[k] for k in tensors.forcing_names],
            *[grad_static[k] for k in tensors.static_names],
            *[grad_dynamic[k] for k in tensors.dynamic_names],
        )
        needs = ctx.needs_input_grad[4:]
        return (None, None, None, None, *[g if need else None for g, need in zip(ordered, needs)])
