"""``dmg simulate`` of a domain in chunks: killed with SIGKILL and continued, and shared by torchrun processes.

A trained δHBV run simulates 8 units 3 at a time. One simulation is killed inside the write of a
chunk, then continued to the end (kills inside the final file's write: tests/test_large_domain.py); its
predictions must equal an uninterrupted simulation 3 units at a time bit for bit, and one of all
units at once to float32 rounding; no chunk may have been simulated twice, and
no temporary file may be left. Two processes started by ``torchrun`` share the chunks of another
simulation, with the same result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")
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
        "test": {"start": "2001-01-01", "end": "2001-12-30"},
    },
    "model": {"physics": {"name": "hbv", "nmul": 2}, "nn": {"name": "lstm", "hidden_size": 8, "dropout": 0.0}},
    "train": {
        "epochs": 1,
        "batch_size": 4,
        "window": 60,
        "iterations_per_epoch": 2,
        "optimizer": {"name": "adam", "lr": 0.01},
        "progress": False,
    },
    "evaluate": {"plots": False},
    "output": {"predictions": "netcdf"},
}


def _dmg(
    args: list[str], cwd: Path, kill_at: int | None = None, log: Path | None = None, launch=(), fails: bool = False
) -> str:
    """Run ``dmg ARGS`` in ``cwd``; its standard output (with ``fails``: output and errors, as it must fail)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DMG_FAULT_KILL_AT", None)
    env.pop("DMG_FAULT_LOG", None)
    if log is not None:
        env["DMG_FAULT_LOG"] = str(log)
    if kill_at is not None:
        env["DMG_FAULT_KILL_AT"] = str(kill_at)
    done = subprocess.run(
        [sys.executable, *launch, "-m", "dmg.core.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if fails:
        assert done.returncode not in (0, -signal.SIGKILL), f"dmg {' '.join(args)} did not fail\n{done.stdout}"
        return done.stdout + done.stderr
    expected = 0 if kill_at is None else -signal.SIGKILL
    assert done.returncode == expected, f"dmg {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _points(log: Path) -> list[str]:
    return [line.split("\t", 1)[1] for line in log.read_text().splitlines()]


def _predictions(path: Path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        values = {name: ds[name].values for name in ds.data_vars}
        values["unit"], values["time"] = ds["unit"].values.astype(str), ds["time"].values
    return values


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], exact: bool = True) -> None:
    """Bit for bit, or (``exact=False``: other chunk sizes, whose batched products round differently) to
    float32 rounding, 1e-6 of each output's largest value."""
    assert sorted(a) == sorted(b)
    for name in a:
        if exact or a[name].dtype.kind != "f":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        else:
            scale = float(np.nanmax(np.abs(a[name]))) or 1.0
            np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6 * scale, err_msg=name)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A trained run with two simulations: all units at once (``whole``), 3 at a time (``straight``)."""
    from dmg.core.cli import main

    tmp = tmp_path_factory.mktemp("large_domain")
    (tmp / "run.yaml").write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(tmp / "run.yaml"), "--run-dir", str(tmp / "run"), "--no-evaluate"]) == 0
    for name, size in (("whole", "8"), ("straight", "3")):
        assert main(["simulate", str(tmp / "run"), "--name", name, "--chunk-units", size]) == 0
    return tmp / "run"


def test_a_killed_simulation_continues_to_the_uninterrupted_result(run):
    tmp, simulations = run.parent, run / "simulations"
    args = ["simulate", "run", "--name", "killed", "--chunk-units", "3"]
    killed, continued = tmp / "killed.points", tmp / "continued.points"
    # plan.json (2 points), chunk 0 (simulated, written, renamed), chunk 1 simulated, then inside its write
    _dmg(args, tmp, kill_at=7, log=killed)
    assert _points(killed)[-1] == "written, not yet renamed: 000001.npz"
    assert not (simulations / "killed.nc").exists()
    assert list((simulations / "killed.partial" / "chunks").glob(".000001.npz.*.tmp"))  # the killed write
    out = _dmg(args, tmp, log=continued)
    assert "continuing" in out and "1 of 3 chunks already done" in out
    assert [p for p in _points(continued) if p.startswith("simulated")] == ["simulated chunk 1", "simulated chunk 2"]
    _assert_same(_predictions(simulations / "straight.nc"), _predictions(simulations / "killed.nc"))
    _assert_same(_predictions(simulations / "whole.nc"), _predictions(simulations / "killed.nc"), exact=False)
    assert not (simulations / "killed.partial").exists() and not list(run.rglob("*.tmp"))


def test_torchrun_processes_share_the_chunks(run):
    launch = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    args = ["simulate", "run", "--name", "shared", "--chunk-units", "3"]
    log = run.parent / "shared.points"
    out = _dmg(args, run.parent, log=log, launch=launch)
    assert out.count("predictions:") == 1
    simulated = sorted(p for p in _points(log) if p.startswith("simulated"))
    assert simulated == ["simulated chunk 0", "simulated chunk 1", "simulated chunk 2"]  # each chunk once
    _assert_same(_predictions(run / "simulations" / "straight.nc"), _predictions(run / "simulations" / "shared.nc"))


def test_a_chunk_failing_in_one_process_stops_every_process_with_its_message(run):
    """Rank 1 simulates chunk 1 (units 3 to 5), whose unit twin0004 has no rain on one day: both processes stop
    with that message instead of waiting for each other, no final file is written, and the chunks rank 0
    finished are kept for the run that follows once the data are mended."""
    from dmg.core.build import load_dataset
    from dmg.core.config import load_config

    dataset = load_dataset(load_config(run / "config.yaml"))
    broken = dataset.data.copy()
    broken[4, 400, dataset.variable_index("prcp")] = np.nan  # 2001-02-04, in the simulated year
    replace(dataset, data=broken).save(run.parent / "broken.npz")
    launch = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    args = ["simulate", "run", "--name", "broken", "--chunk-units", "3", "--start-date", "2001-01-01"]
    args += ["--set", f"data.dataset={{name: npz, path: {run.parent / 'broken.npz'}}}"]
    out = _dmg(args, run.parent, launch=launch, fails=True)
    assert out.count("twin0004") >= 2, out[-3000:]  # every process reports the unit at fault
    assert "2001-02-04" in out
    assert not (run / "simulations" / "broken.nc").exists()
    assert (run / "simulations" / "broken.partial" / "chunks" / "000000.npz").is_file()
