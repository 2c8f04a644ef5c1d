"""Writing files so that nothing a user has is ever half-written: one atomic-write mechanism.

Every file dmg writes goes through :func:`atomic_path`: the content is written to a temporary
file next to the target, flushed to disk, given the mode the user's umask asks for, and renamed
over the target only when complete. A reader (or a process started after a crash) sees the old
file or the complete new one, never a part. A write that fails (a full disk, a quota) raises a
:class:`WriteError` naming the file and saying that its previous version is intact.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from dmg.core.errors import DmgError
from dmg.core.faults import fault_point

__all__ = [
    "TEMPORARY_SUFFIX",
    "WriteError",
    "atomic_open",
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_text",
    "file_mode",
]

TEMPORARY_SUFFIX = ".tmp"
"""Suffix of the temporary files of unfinished writes (``.<name>.<random>.tmp``)."""


class WriteError(DmgError, OSError):
    """A file could not be written; its previous version, if any, is untouched."""


def file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temporary_name(target: Path) -> Path:
    """A fresh temporary path next to ``target`` for an unfinished write of it."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it replaces ``path`` on success.

    For libraries that write by file name (``xarray.Dataset.to_netcdf``); prefer
    :func:`atomic_open` otherwise. The temporary file is removed if the block raises.

    Raises
    ------
    WriteError
        If writing fails with an ``OSError`` (full disk, permissions) or the ``RuntimeError``
        torch's writer raises for one; the message names ``path``.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create the folder {target.parent} for {target}: {exc.strerror or exc}") from None
    tmp = temporary_name(target)
    try:
        yield tmp
        _sync(tmp)
        os.chmod(tmp, file_mode())
        fault_point(f"written, not yet renamed: {target.name}")
        os.replace(tmp, target)
        fault_point(f"renamed: {target.name}")
    except (OSError, RuntimeError) as exc:
        _remove(tmp)
        if isinstance(exc, DmgError):
            raise
        raise WriteError(_failure(target, exc)) from exc
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open ``path`` for writing atomically (see :func:`atomic_path`); ``mode`` is ``"w"`` or ``"wb"``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` atomically: a reader sees the old file or the complete new one."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _failure(target: Path, exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    if not isinstance(exc, OSError) or exc.strerror is None:
        reason += "; is the disk full?"
    kept = f"the previous {target.name} is intact" if target.exists() else f"no {target.name} was written"
    return f"could not write {target}: {reason}; {kept}"
