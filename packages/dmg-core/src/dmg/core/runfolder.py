"""The run folder: every path a run writes, its lock, and its atomic writes.

A run folder is self-contained and relocatable (every path inside it is relative)::

    run/
      config.yaml          the resolved configuration (data paths absolute)
      versions.json        the dmg, torch, numpy, pydantic and Python versions and git commit (dmg.core.provenance)
      normalizer.json      statistics fitted on the training split
      checkpoints/         last.pt and best.pt (model, optimizer, scheduler, sampler, RNG, progress)
      log.csv              one row per finished epoch
      tensorboard/         the same rows for TensorBoard (when it is installed)
      evaluations/<period>_<checkpoint>/   written by evaluate: metrics.json, metrics.csv,
                           predictions.nc|.npz, plots/
      simulations/         written by simulate
      .lock                held by the process writing the folder

Only one process writes a run folder at a time: :meth:`RunFolder.lock` takes an exclusive lock
that the operating system releases when the process ends, however it ends, so a killed run never
leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmg.core.errors import InputError
from dmg.core.io import TEMPORARY_SUFFIX, WriteError, atomic_write_text

CONFIG_FILE = "config.yaml"
VERSIONS_FILE = "versions.json"
NORMALIZER_FILE = "normalizer.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAMES = ("last", "best")

STARTED_FILES = frozenset(
    {CONFIG_FILE, VERSIONS_FILE, NORMALIZER_FILE, LOG_FILE, LOCK_FILE, CHECKPOINT_DIR, "tensorboard"}
)
"""What a run writes before its first checkpoint: a folder holding only these is an unfinished start."""

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Evaluation:
    """The files of one evaluation of a run (a period with a checkpoint)."""

    path: Path

    @property
    def metrics(self) -> Path:
        """The report: every metric per unit and summarised (JSON)."""
        return self.path / METRICS_FILE

    @property
    def metrics_table(self) -> Path:
        """Every metric per unit, one row per unit (CSV)."""
        return self.path / "metrics.csv"

    @property
    def predictions(self) -> Path:
        """Stem (no suffix) of the predictions file (``.nc`` or ``.npz``)."""
        return self.path / "predictions"

    @property
    def plots(self) -> Path:
        return self.path / "plots"


class RunFolderBusyError(InputError):
    """Another process holds the run folder's lock."""


@dataclass(frozen=True)
class RunFolder:
    """The layout of one run folder, and the only place that knows it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # ------------------------------------------------------------------ layout
    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def versions(self) -> Path:
        return self.path / VERSIONS_FILE

    @property
    def normalizer(self) -> Path:
        return self.path / NORMALIZER_FILE

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt`` (``name`` is ``"last"`` or ``"best"``)."""
        if name not in CHECKPOINT_NAMES:
            raise InputError(f"checkpoint must be one of {list(CHECKPOINT_NAMES)}, got {name!r}")
        return self.checkpoints / f"{name}.pt"

    def evaluation(self, period: str, checkpoint: str) -> Evaluation:
        """The folder of one evaluation, ``evaluations/<period>_<checkpoint>/``: one per period and checkpoint,
        so no evaluation overwrites another."""
        if not _PLAIN_NAME.fullmatch(checkpoint):
            raise InputError(f"checkpoint label {checkpoint!r} is not a plain name")
        return Evaluation(self.path / "evaluations" / f"{period}_{checkpoint}")

    def member(self, seed: int) -> Path:
        """The run folder of the member trained with ``seed`` of a seed ensemble (``train.seeds``)."""
        return self.path / "members" / f"seed_{seed}"

    def simulation(self, name: str) -> Path:
        """Stem of a ``simulate`` output, confined to ``simulations/``.

        ``name`` must be a plain file name (letters, digits, ``.``, ``_``, ``-``; no folders).
        """
        if not _PLAIN_NAME.fullmatch(name) or name in (".", ".."):
            raise InputError(
                f"--name {name!r}: give a plain file name (letters, digits, '.', '_', '-'); "
                f"simulations are written inside {self.path / 'simulations'}"
            )
        return self.path / "simulations" / name

    # ------------------------------------------------------------------ states
    def has_checkpoint(self) -> bool:
        """Whether any checkpoint has been written."""
        return any(self.checkpoint(n).is_file() for n in CHECKPOINT_NAMES)

    def is_unfinished_start(self) -> bool:
        """Whether the folder holds only what a run writes before its first checkpoint."""
        if not self.path.is_dir() or self.has_checkpoint():
            return False
        names = {p.name for p in self.path.iterdir() if not p.name.endswith(TEMPORARY_SUFFIX)}
        return names <= STARTED_FILES

    def temporary_files(self) -> list[Path]:
        """Leftovers of writes a killed process did not finish."""
        found: list[Path] = []
        for folder in (self.path, self.checkpoints, self.path / "simulations"):
            if folder.is_dir():
                found += [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(TEMPORARY_SUFFIX)]
        evaluations = self.path / "evaluations"
        if evaluations.is_dir():
            found += [p for p in evaluations.rglob(f".*{TEMPORARY_SUFFIX}") if p.is_file()]
        return sorted(found)

    def remove_temporary_files(self) -> list[Path]:
        """Delete :meth:`temporary_files` (call it holding the lock); returns what was removed."""
        removed = self.temporary_files()
        for path in removed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return removed

    def remove_unfinished_start(self) -> None:
        """Delete what an unfinished start wrote (only if :meth:`is_unfinished_start`)."""
        if not self.is_unfinished_start():
            return
        import shutil

        for path in self.path.iterdir():
            if path.name == LOCK_FILE:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    # ------------------------------------------------------------------ creation
    @classmethod
    def existing(cls, path: str | os.PathLike[str]) -> RunFolder:
        """An existing run folder, with a clear error if ``path`` is not one."""
        folder = cls(Path(path))
        if not folder.path.is_dir():
            raise InputError(f"{path} is not a run folder: no such folder")
        if not folder.config.is_file():
            started = " (a start interrupted before writing it: run `dmg train` again with --run-dir " + str(path) + ")"
            raise InputError(
                f"{path} is not a run folder: it has no {CONFIG_FILE}{started if folder.is_unfinished_start() else ''}"
            )
        return folder

    @classmethod
    def prepare_new(cls, path: str | os.PathLike[str]) -> RunFolder:
        """The folder for a new run at ``path``, created if needed.

        An existing folder is reused only when it is empty or holds nothing but an unfinished
        start (no checkpoint); anything else is refused so that no run is ever overwritten.
        """
        folder = cls(Path(path))
        if folder.path.exists() and not folder.path.is_dir():
            raise InputError(f"run folder {folder.path} exists and is a file; choose another output.name or --run-dir")
        if folder.path.is_dir() and any(folder.path.iterdir()) and not folder.is_unfinished_start():
            raise InputError(
                f"run folder {folder.path} already exists and is not empty; choose another output.name or --run-dir, "
                f"or continue it with `dmg train --resume {folder.path}`"
            )
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot create the run folder {folder.path}: {exc.strerror or exc}") from None
        return folder

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """Hold the folder's exclusive lock while writing it; refuse if another process holds it.

        The lock is an OS file lock on ``.lock``, released when the process ends even if killed.
        Re-entering it in the same process (training, then evaluating) is allowed.
        """
        key = self.path.resolve()
        if key in _HELD:
            yield
            return
        handle = _acquire(self.path / LOCK_FILE, purpose)
        _HELD[key] = handle
        try:
            yield
        finally:
            del _HELD[key]
            _release(handle)

    # ------------------------------------------------------------------ writes
    def write_text(self, path: Path, text: str) -> None:
        """Write ``text`` to ``path`` (inside the folder) atomically."""
        atomic_write_text(path, text)

    def write_log(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite ``log.csv`` from ``rows`` (one per finished epoch), atomically."""
        if not rows:
            if self.log.exists():
                self.log.unlink()
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.log, buffer.getvalue())


_HELD: dict[Path, Any] = {}
"""Run folders whose lock this process holds, and the open lock file of each."""


def _acquire(path: Path, purpose: str) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        _lock_file(handle)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "an unknown process"
        handle.close()
        raise RunFolderBusyError(
            f"run folder {path.parent} is in use by {holder}; wait for it to finish or stop it first (lock file {path})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} ({purpose})\n")
    handle.flush()
    return handle


def _release(handle: Any) -> None:
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.flush()
    _unlock_file(handle)
    handle.close()


try:
    import fcntl

    def _lock_file(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(handle: Any) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock_file(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]

    def _unlock_file(handle: Any) -> None:
        with contextlib.suppress(OSError):
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]
