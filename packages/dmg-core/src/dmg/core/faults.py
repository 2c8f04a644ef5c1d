"""Fault points: places where a test kills the process to prove that a run survives it.

Writes and training steps call :func:`fault_point`. Without the environment variables below it
does nothing. ``DMG_FAULT_LOG=FILE`` appends one line per point reached (its number and label), and
``DMG_FAULT_KILL_AT=N`` sends the process SIGKILL at its N-th point, so a test can kill a run at
an exact place: inside a checkpoint write, between two checkpoints, between minibatches, between a
simulation's chunks (``simulated chunk N``, before the chunk's file is written) or before its final file.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "DMG_FAULT_KILL_AT"
LOG = "DMG_FAULT_LOG"

_reached = 0


def fault_point(label: str) -> None:
    """Count a fault point; log it and kill the process here if the environment asks for it."""
    kill_at, log = os.environ.get(KILL_AT), os.environ.get(LOG)
    if kill_at is None and log is None:
        return
    global _reached
    _reached += 1
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{_reached}\t{label}\n")
    if kill_at is not None and _reached == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
