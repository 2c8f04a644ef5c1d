"""Writing files so that nothing a user has is ever half-written: every write is atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dmg.core.data._files import atomic_open

__all__ = ["atomic_open", "atomic_torch_save", "atomic_write_text"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` atomically: a reader sees the old file or the complete new one."""
    with atomic_open(Path(path), "wb") as fh:
        torch.save(obj, fh)
