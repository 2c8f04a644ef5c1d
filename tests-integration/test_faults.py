"""A run killed with SIGKILL anywhere, then resumed, ends exactly as an uninterrupted run.

Every write and every training step of dmg is a fault point (:mod:`dmg.core.faults`): with
``DMG_FAULT_KILL_AT=N`` a process kills itself with SIGKILL at its N-th point, so the kill lands
at an exact place: inside a checkpoint write (the temporary file complete, not yet renamed),
between ``best.pt`` and ``last.pt``, inside the log write, between minibatches.

One run is killed inside each checkpoint and log write an uninterrupted run makes, then resumed. Two more
chains of runs are killed again and again at points drawn from a seeded generator, each kill
followed by ``dmg train --resume`` (or ``dmg train`` again when the start was killed before its
config was written), until a resume completes. Every final pair of checkpoints must equal the
uninterrupted run's tensor for tensor, ``log.csv`` must have the same rows (wall-clock seconds
aside), and no temporary file may be left.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

CONFIG = {
    "seed": 0,
    "device": "cpu",
    "data": {
        "dataset": {"name": "hbv_twin", "n_units": 8, "start": "2000-01-01", "years": 2, "noise": 0.05, "seed": 0},
        "roles": {
            "forcings": {"P": "prcp", "T": "tmean", "PET": "pet"},
            "nn_inputs": ["prcp", "tmean", "pet"],
            "nn_static": ["lat", "elevation", "aridity"],
            "targets": {"Q": "streamflow"},
        },
        "warmup": 30,
        "train": {"start": "2000-03-01", "end": "2000-12-31"},
        "valid": {"start": "2001-01-01", "end": "2001-06-30"},
        "test": {"start": "2001-07-01", "end": "2001-12-30"},
    },
    "model": {"physics": {"name": "hbv", "nmul": 1}, "nn": {"name": "lstm", "hidden_size": 8, "dropout": 0.0}},
    "train": {
        "epochs": 3,
        "batch_size": 4,
        "window": 60,
        "iterations_per_epoch": 3,
        "checkpoint_every": 1,
        "optimizer": {"name": "adam", "lr": 0.01},
        "progress": False,
    },
    "evaluate": {"plots": False},
}

KILLS_WANTED = 20
CHAIN_KILLS = 5
"""Kills per chain of resumed runs (besides one kill inside each checkpoint and log write of the run)."""
MAX_LOCAL_POINT = 6
"""Each process is killed at one of its first points: a run needs many kills to finish."""

CHECKPOINT_PLACES = (
    "written, not yet renamed: last.pt",
    "written, not yet renamed: best.pt",
    "renamed: best.pt",
    "written, not yet renamed: log.csv",
    "after a minibatch",
)
"""Places the kills must have hit (a chain of kills from the seed below does)."""


def _dmg(args: list[str], cwd: Path, kill_at: int | None, log: Path) -> int:
    env = {**os.environ, "DMG_FAULT_LOG": str(log), "OMP_NUM_THREADS": "1"}
    env.pop("DMG_FAULT_KILL_AT", None)
    if kill_at is not None:
        env["DMG_FAULT_KILL_AT"] = str(kill_at)
    done = subprocess.run(
        [sys.executable, "-m", "dmg.core.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"dmg {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode


def _last_point(log: Path) -> str:
    lines = log.read_text().splitlines() if log.exists() else []
    return lines[-1].split("\t", 1)[1] if lines else "(no point reached)"


def _chain(tmp: Path, name: str, seed: int, kills_wanted: int) -> list[str]:
    """Kill a run again and again until a resume completes; returns where each kill landed."""
    rng = random.Random(seed)
    run = tmp / name
    landed: list[str] = []
    fresh = True
    for attempt in range(200):
        log = tmp / f"{name}.{attempt}.points"
        kill_at = rng.randint(1, MAX_LOCAL_POINT) if len(landed) < kills_wanted else None
        if fresh or not (run / "config.yaml").exists():
            args = ["train", str(tmp / "tiny.yaml"), "--run-dir", str(run), "--no-evaluate"]
        else:
            args = ["train", "--resume", str(run), "--no-evaluate"]
        code = _dmg(args, tmp, kill_at, log)
        fresh = False
        if code == 0:
            return landed
        landed.append(_last_point(log))
    raise AssertionError(f"chain {name} did not finish")


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same(a: Any, b: Any, where: str) -> None:
    """Equal tensors (torch.equal) and values, except wall-clock ``seconds``."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            if key != "seconds":
                _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _log_rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open() as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def _targeted(tmp: Path, name: str, point: int, label: str) -> list[str]:
    """Kill a fresh run at its ``point``-th fault point (numbered as in the uninterrupted run), then resume."""
    run, log = tmp / name, tmp / f"{name}.points"
    code = _dmg(["train", str(tmp / "tiny.yaml"), "--run-dir", str(run), "--no-evaluate"], tmp, point, log)
    assert code == -signal.SIGKILL and _last_point(log) == label, (name, code, _last_point(log), label)
    assert _dmg(["train", "--resume", str(run), "--no-evaluate"], tmp, None, tmp / f"{name}.resumed") == 0
    return [label]


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    reference = tmp_path / "reference.points"
    assert _dmg(["train", "tiny.yaml", "--run-dir", "straight", "--no-evaluate"], tmp_path, None, reference) == 0
    points = [line.split("\t", 1) for line in reference.read_text().splitlines()]
    inside_writes = [
        (int(i), label) for i, label in points if label.startswith("written") and label.endswith((".pt", ".csv"))
    ]
    jobs = [lambda c=c: _chain(tmp_path, f"chain{c}", 100 + c, CHAIN_KILLS) for c in range(2)]
    jobs += [lambda i=i, label=label: _targeted(tmp_path, f"write{i}", i, label) for i, label in inside_writes]
    with ThreadPoolExecutor(2) as pool:
        landed = [point for kills in pool.map(lambda job: job(), jobs) for point in kills]
    assert len(landed) >= KILLS_WANTED
    for place in CHECKPOINT_PLACES:
        assert any(place in point for point in landed), f"no kill landed at {place!r}: {landed}"

    straight = tmp_path / "straight"
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name != "straight")
    print(f"{len(points)} fault points in a run; {len(landed)} kills in {len(runs)} runs, each resumed to the end")
    assert len(runs) == len(jobs)
    for run in runs:
        for name in ("last", "best"):
            _assert_same(
                _load(straight / "checkpoints" / f"{name}.pt"),
                _load(run / "checkpoints" / f"{name}.pt"),
                f"{run.name}/{name}.pt",
            )
        assert _log_rows(run) == _log_rows(straight), run.name
        leftovers = list(run.rglob("*.tmp"))
        assert not leftovers, leftovers
