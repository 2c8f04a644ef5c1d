"""Memory policies: what the backward pass keeps of a loop, independent of the backend that runs it.

:class:`StoreAll` keeps whatever the backend's autograd graph keeps (the fastest choice).
:class:`Recompute` runs the loop in chunks of ``chunk_size`` steps under activation
checkpointing: backward keeps only the state at each chunk boundary and recomputes the rest, so
memory falls from one graph of ``time`` steps to one of ``chunk_size`` steps, for about one more
forward pass of time. Results are identical to :class:`StoreAll`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from dmg.core.engine.backends import Backend, Loop
from dmg.core.errors import SpecError
from dmg.core.signature import TensorDict


class MemoryPolicy:
    """How a loop's backward pass trades memory for time."""

    def run(self, backend: Backend, loop: Loop) -> tuple[TensorDict, TensorDict]:
        """Run ``loop`` on ``backend`` under this policy."""
        raise NotImplementedError


@dataclass(frozen=True)
class StoreAll(MemoryPolicy):
    """Keep the backend's whole graph for backward."""

    def run(self, backend: Backend, loop: Loop) -> tuple[TensorDict, TensorDict]:
        return backend.run(loop)


@dataclass(frozen=True)
class Recompute(MemoryPolicy):
    """Recompute chunks of ``chunk_size`` steps in backward instead of storing them.

    Parameters
    ----------
    chunk_size
        Steps per chunk: memory of one chunk's graph plus one state per chunk.
    """

    chunk_size: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise SpecError(f"engine.chunk_size must be a positive integer, got {self.chunk_size!r}")

    def run(self, backend: Backend, loop: Loop) -> tuple[TensorDict, TensorDict]:
        if not torch.is_grad_enabled() or loop.n_time <= self.chunk_size:
            return backend.run(loop)
        state = dict(loop.state)
        pieces: dict[str, list[torch.Tensor]] = {}
        for start in range(0, loop.n_time, self.chunk_size):
            window = loop.window(start, min(start + self.chunk_size, loop.n_time), state)

            def run_window(state: TensorDict, window: Loop = window) -> tuple[TensorDict, TensorDict]:
                return backend.run(window.window(0, window.n_time, state))

            state, fluxes = checkpoint(run_window, state, use_reentrant=False)
            for name, value in fluxes.items():
                pieces.setdefault(name, []).append(value)
        return state, {name: torch.cat(values) for name, values in pieces.items()}
