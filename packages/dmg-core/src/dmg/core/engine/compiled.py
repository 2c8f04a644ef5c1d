"""The ``compiled`` backend: the step (or a chunk of unrolled steps) compiled with ``torch.compile``.

The Python loop over time stays; each call runs the compiled step, forward and (through
AOTAutograd) backward, as one fused kernel per direction instead of about a hundred small ones.
It works for any step ``torch.compile`` can trace, on the CPU and on GPUs, including steps whose
process slots are filled by networks. Compiled code is specialised on tensor shapes: each new number
of units (say, a last smaller batch) compiles once more. Compilation happens on the first call for each input layout
and is cached by PyTorch's compiler cache (``TORCHINDUCTOR_CACHE_DIR``) across processes;
:attr:`CompiledBackend.compile_seconds` reports the time it took.
"""

from __future__ import annotations

import itertools
import shutil
import time
import types
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
import torch._functorch.config  # a submodule torch does not import on its own
from pydantic import Field

from dmg.core.engine.backends import Backend, BackendConfig, Loop
from dmg.core.signature import TensorDict


class CompiledConfig(BackendConfig):
    """Options of the ``compiled`` backend."""

    steps: int = Field(
        1, ge=1, description="Steps unrolled in one compiled call (more run faster per step but compile slower)."
    )
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode."
    )


_NUMBERS = itertools.count()


def _own_code(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with a code object of its own.

    ``torch.compile`` keeps its compiled variants, and its limit on recompilations, per code object;
    every model's loop body would otherwise share one code object (and one limit) with every other's.
    """
    code = function.__code__.replace(co_name=f"{function.__name__}_{next(_NUMBERS)}")
    return types.FunctionType(code, function.__globals__, code.co_name, function.__defaults__, function.__closure__)


class CompiledBackend(Backend):
    """The step (or chunks of unrolled steps) compiled with ``torch.compile`` inside the engine's loop."""

    Config: ClassVar[type[CompiledConfig]] = CompiledConfig

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self._functions: weakref.WeakKeyDictionary[Any, dict[tuple, Callable[..., Any]]] = weakref.WeakKeyDictionary()
        self._seen: set[tuple] = set()
        self.compile_seconds = 0.0
        """Seconds the first call of each compiled function took (compilation included)."""
        # Backward graphs compiled lazily with buffers donated to them fail under ``retain_graph=True``
        # (which the test kit and users' own gradient checks use); keep gradients working everywhere.
        torch._functorch.config.donated_buffer = False

    @property
    def name(self) -> str:
        return "compiled"

    def unavailable(self, loop: Loop) -> str | None:
        device = next(iter((*loop.state.values(), *loop.forcings.values(), *loop.static.values())), None)
        if device is not None and device.device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
            return "torch.compile needs a C++ compiler on the CPU and none was found"
        return None

    def _chunk(self, loop: Loop, length: int) -> Callable[..., Any]:
        functions = self._functions.setdefault(loop.model, {})
        key = (length, loop.save)
        function = functions.get(key)
        if function is None:
            model, save = loop.model, loop.save

            def chunk(
                state: TensorDict, forcings: TensorDict, static: TensorDict, dynamic: TensorDict, processes: Any
            ) -> tuple[TensorDict, TensorDict]:
                collected: dict[str, list[torch.Tensor]] = {}
                for t in range(length):
                    params_t = dict(static)
                    params_t.update({k: v[t] for k, v in dynamic.items()})
                    state, fluxes = model.step(state, {k: v[t] for k, v in forcings.items()}, params_t, processes)
                    for name in fluxes if save is None else sorted(save):
                        collected.setdefault(name, []).append(fluxes[name])
                return state, {name: torch.stack(values) for name, values in collected.items()}

            function = torch.compile(_own_code(chunk), mode=self.config.mode, dynamic=False)
            functions[key] = function
        return function

    def run(self, loop: Loop) -> tuple[TensorDict, TensorDict]:
        steps = self.config.steps
        state = dict(loop.state)
        pieces: dict[str, list[torch.Tensor]] = {}
        for start in range(0, loop.n_time, steps):
            stop = min(start + steps, loop.n_time)
            function = self._chunk(loop, stop - start)
            forcings = {k: v[start:stop] for k, v in loop.forcings.items()}
            dynamic = {k: v[start:stop] for k, v in loop.dynamic.items()}
            signature = (id(function), torch.is_grad_enabled(), *(tuple(v.shape) for v in state.values()))
            first = signature not in self._seen
            began = time.perf_counter()
            state, fluxes = function(state, forcings, dict(loop.static), dynamic, loop.processes)
            if first:
                self._seen.add(signature)
                self.compile_seconds += time.perf_counter() - began
            for name, value in fluxes.items():
                pieces.setdefault(name, []).append(value)
        return state, {name: torch.cat(values) for name, values in pieces.items()}
