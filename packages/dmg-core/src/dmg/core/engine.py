"""The time-stepping engine: one entry point, :func:`integrate`, over a registry of backends.

Every physics model with a ``step`` function is run through :func:`integrate`, so a faster
backend added here speeds up every model without touching it.  A backend is a function
with the signature of :func:`integrate` minus ``backend``; register it with
:func:`register_backend`.

Built-in backends
-----------------
``eager``
    The reference: a plain Python loop over time steps.
``checkpoint``
    Memory-saving: runs chunks of ``chunk_size`` steps under activation checkpointing,
    so backward stores only the states at chunk boundaries and recomputes the rest.
    Identical results to ``eager``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch.utils.checkpoint import checkpoint

from dmg.core.errors import SpecError

TensorDict = dict[str, torch.Tensor]


class StepFunction(Protocol):
    """``step(state, forcing_t, params_t) -> (new_state, fluxes_t)``, pure tensor code."""

    def __call__(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict
    ) -> tuple[TensorDict, TensorDict]: ...


Backend = Callable[..., tuple[TensorDict, TensorDict]]

_BACKENDS: dict[str, Backend] = {}


def register_backend(name: str) -> Callable[[Backend], Backend]:
    """Decorator registering ``fn`` as the engine backend called ``name``."""

    def decorate(fn: Backend) -> Backend:
        _BACKENDS[name] = fn
        return fn

    return decorate


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends."""
    return tuple(sorted(_BACKENDS))


def integrate(
    step: StepFunction,
    state: Mapping[str, torch.Tensor],
    forcings: Mapping[str, torch.Tensor],
    static: Mapping[str, torch.Tensor],
    dynamic: Mapping[str, torch.Tensor],
    *,
    backend: str = "eager",
    **options: object,
) -> tuple[TensorDict, TensorDict]:
    """Run ``step`` over the leading (time) dimension of ``forcings`` and ``dynamic``.

    Parameters
    ----------
    step
        The model's step function.
    state
        Initial state, name -> tensor.
    forcings
        Time series, name -> ``[time, ...]``; ``forcing_t`` gets ``forcings[name][t]``.
    static
        Values passed unchanged at every step (static parameters, attributes).
    dynamic
        Time series, name -> ``[time, ...]``, passed as ``params_t[name] = dynamic[name][t]``.
    backend
        Name of a registered backend (see :func:`available_backends`).
    **options
        Backend options (e.g. ``chunk_size`` for ``checkpoint``).

    Returns
    -------
    final_state, fluxes
        The state after the last step and every flux stacked over time, ``[time, ...]``.
    """
    try:
        run = _BACKENDS[backend]
    except KeyError:
        raise SpecError(f"unknown engine backend {backend!r}; available: {list(available_backends())}") from None
    n_time = _series_length(forcings, dynamic)
    return run(step, dict(state), forcings, static, dynamic, n_time=n_time, **options)


def _series_length(forcings: Mapping[str, torch.Tensor], dynamic: Mapping[str, torch.Tensor]) -> int:
    lengths = {name: int(v.shape[0]) for name, v in {**forcings, **dynamic}.items()}
    if not lengths:
        raise SpecError("integrate needs at least one forcing or dynamic parameter series")
    if len(set(lengths.values())) > 1:
        raise SpecError(f"time series differ in length: {lengths}")
    return next(iter(lengths.values()))


def _run_steps(
    step: StepFunction,
    state: TensorDict,
    forcing_steps: Mapping[str, tuple[torch.Tensor, ...]],
    static: Mapping[str, torch.Tensor],
    dynamic_steps: Mapping[str, tuple[torch.Tensor, ...]],
    times: range,
) -> tuple[TensorDict, dict[str, list[torch.Tensor]]]:
    collected: dict[str, list[torch.Tensor]] = {}
    for t in times:
        forcing_t = {k: v[t] for k, v in forcing_steps.items()}
        params_t = dict(static)
        params_t.update({k: v[t] for k, v in dynamic_steps.items()})
        state, fluxes = step(state, forcing_t, params_t)
        for name, value in fluxes.items():
            collected.setdefault(name, []).append(value)
    return state, collected


def _stack(collected: Mapping[str, list[torch.Tensor]]) -> TensorDict:
    return {name: torch.stack(values) for name, values in collected.items()}


@register_backend("eager")
def _eager(step, state, forcings, static, dynamic, *, n_time):
    forcing_steps = {k: v.unbind(0) for k, v in forcings.items()}
    dynamic_steps = {k: v.unbind(0) for k, v in dynamic.items()}
    state, collected = _run_steps(step, state, forcing_steps, static, dynamic_steps, range(n_time))
    return state, _stack(collected)


@register_backend("checkpoint")
def _checkpointed(step, state, forcings, static, dynamic, *, n_time, chunk_size: int = 64):
    if int(chunk_size) < 1:
        raise SpecError(f"checkpoint backend: chunk_size must be >= 1, got {chunk_size}")
    collected: dict[str, list[torch.Tensor]] = {}
    for start in range(0, n_time, chunk_size):
        stop = min(start + chunk_size, n_time)
        f_chunk = {k: v[start:stop] for k, v in forcings.items()}
        d_chunk = {k: v[start:stop] for k, v in dynamic.items()}

        def run_chunk(state, f_chunk, static, d_chunk, n=stop - start):
            f_steps = {k: v.unbind(0) for k, v in f_chunk.items()}
            d_steps = {k: v.unbind(0) for k, v in d_chunk.items()}
            new_state, fluxes = _run_steps(step, state, f_steps, static, d_steps, range(n))
            return new_state, _stack(fluxes)

        if torch.is_grad_enabled():
            state, fluxes = checkpoint(run_chunk, state, f_chunk, dict(static), d_chunk, use_reentrant=False)
        else:
            state, fluxes = run_chunk(state, f_chunk, static, d_chunk)
        for name, value in fluxes.items():
            collected.setdefault(name, []).append(value)
    return state, {name: torch.cat(values) for name, values in collected.items()}
