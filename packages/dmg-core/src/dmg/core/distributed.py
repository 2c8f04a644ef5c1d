"""Data-parallel training across processes started by ``torchrun``.

``torchrun --nproc_per_node N -m dmg.core.cli train run.yaml`` starts N processes; each builds the
same model, draws its own minibatches (the sampler is seeded per rank) and DistributedDataParallel
averages the gradients, so every process holds the same weights. The first process (rank 0) writes
the run folder; checkpoints carry the sampler and random states of every rank for an exact resume
with the same number of processes. Without ``torchrun`` everything runs in one process unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from dmg.core.errors import ConfigError, DmgError, InputError

T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """The device a run asks for: ``auto`` picks CUDA when available; a bad name is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: {name!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available; use 'cpu' or 'auto'")
    return device


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Distributed:
        """Read ``torchrun``'s variables and join the process group (gloo on CPU, NCCL on GPUs)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(rank, world_size, local_rank)

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """The device of this process: its own GPU (``LOCAL_RANK``) when CUDA is requested."""
        if self.enabled and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds in every process (so they all take the same branch)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1 if flag else 0])
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return bool(tensor)

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` in every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, work: Callable[[], T]) -> T:
        """Run ``work`` in rank 0 and give its result to every process.

        Parameters
        ----------
        work
            What only rank 0 does (e.g. write a file); its result must be picklable.

        Returns
        -------
        T
            The result of ``work`` in rank 0, in every process.

        Raises
        ------
        DmgError
            Without ``torchrun``, whatever error of dmg ``work`` raised, unchanged.
        InputError
            Under ``torchrun``, in every process, if ``work`` raised an error of dmg (its message),
            instead of leaving the other processes waiting.
        """
        status: tuple[str, Any] | None = None
        if self.is_main:
            try:
                status = ("ok", work())
            except DmgError as exc:
                if not self.enabled:
                    raise
                status = ("error", str(exc))
        kind, detail = self.broadcast(status)
        if kind == "error":
            raise InputError(detail)
        return detail

    def barrier(self) -> None:
        """Wait until every process arrives here."""
        if self.enabled:
            dist.barrier()

    def own(self, saved: Any, what: str) -> Any:
        """This rank's entry of a per-rank list saved in a checkpoint (a single entry without ``torchrun``)."""
        entries = saved if isinstance(saved, list) else [saved]
        if len(entries) != self.world_size:
            raise InputError(
                f"the checkpoint's {what} comes from {len(entries)} training process(es); resume it with the same "
                f"number (now {self.world_size})"
            )
        return entries[self.rank]
