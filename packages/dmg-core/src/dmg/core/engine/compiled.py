"""The ``compiled`` backend: the step (or a chunk of unrolled steps) compiled with ``torch.compile``.

The Python loop over time stays; each call runs the compiled step, forward and (through
AOTAutograd) backward, as one fused kernel per direction instead of about a hundred small ones.
It works for any step ``torch.compile`` can trace, on the CPU and on GPUs, including steps whose
process slots are filled by networks. Compilation happens on the first call for each input layout
and is cached by PyTorch's compiler cache (``TORCHINDUCTOR_CACHE_DIR``) across processes;
:attr:`CompiledBackend.compile_seconds` reports the time it took.
"""

from __future__ import annotations

import shutil
import time
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
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


class CompiledBackend(Backend):
    """The step (or chunks of unrolled steps) compiled with ``torch.compile`` inside the engine's loop."""

    Config: ClassVar[type[CompiledConfig]] = CompiledConfig

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self._functions: weakref.WeakKeyDictionary[Any, dict[tuple, Callable[..., Any]]] = weakref.WeakKeyDictionary()
        self._seen: set[tuple] = set()
        self.compile_seconds = 0.0
        """Seconds the first call of each compiled function took (compilation included)."""

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

            function = torch.compile(chunk, mode=self.config.mode, dynamic=False)
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
