"""Saved states: a simulation split at a date, with the state carried over, equals the uninterrupted one.

For δHBV 1.0 with gamma routing (dmg-hydro-adapter: HBV states of every component, the unit
hydrograph's buffer, the LSTM's hidden and cell state) and for SIR (dmg-physics-examples, epidemiology).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmg.core import states, workflows
from dmg.core.cli import main

TOLERANCE = 1e-6
"""Largest difference allowed, relative to the largest value of the output."""


def _values(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path) as saved:
            return {k: saved[k] for k in saved.files if k not in ("unit_ids", "dates")}
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return {k: ds[k].values for k in ds.data_vars}


def _split_difference(run: Path, start: str, split: str, end: str) -> dict[str, float]:
    """``dmg simulate`` ``start``-``end`` in one go and split after ``split`` with a state (each in chunks of
    units, of other sizes); the largest relative difference per output."""
    whole = workflows.simulate(run, start, end, name="whole", overwrite=True, chunk_units=4)
    first = workflows.simulate(run, start, split, name="first", overwrite=True, chunk_units=3, save_state=split)
    saved = run / "states" / f"{split}.pt"
    assert saved.is_file()
    second = workflows.simulate(run, None, end, name="second", overwrite=True, chunk_units=2, from_state=saved)
    reference, a, b = _values(whole), _values(first), _values(second)
    assert set(reference) == set(a) == set(b)
    assert a[next(iter(a))].shape[0] + b[next(iter(b))].shape[0] == reference[next(iter(reference))].shape[0]
    assert saved.name == f"{split}.pt"
    return {
        k: float(np.abs(np.concatenate([a[k], b[k]]) - v).max() / max(np.abs(v).max(), 1e-12))
        for k, v in reference.items()
    }


@pytest.mark.parametrize("split", ["2001-07-01", "2001-10-17"])
def test_hbv_with_routing_split_equals_uninterrupted(hbv_run, split):
    differences = _split_difference(hbv_run, "2001-07-01", split, "2001-12-30")
    assert {"Q", "Q_unrouted", "SWE", "AET"} <= set(differences)
    assert max(differences.values()) <= TOLERANCE, differences


@pytest.mark.parametrize("split", ["2000-01-01", "2000-03-15"])
def test_sir_split_equals_uninterrupted(sir_run, split):
    differences = _split_difference(sir_run, "2000-01-01", split, "2000-07-18")
    assert {"new_infections", "I"} <= set(differences)
    assert max(differences.values()) <= TOLERANCE, differences


def test_the_state_holds_every_part_of_the_model(hbv_run):
    workflows.simulate(hbv_run, "2001-07-01", "2001-07-20", name="parts", chunk_units=3, save_state="2001-07-20")
    path = hbv_run / "states" / "2001-07-20.pt"
    saved = states.read_state(path)
    assert {"runoff.SP", "runoff.SM", "runoff.SUZ", "runoff.SLZ"} <= set(saved.state.physics)
    assert saved.state.physics["runoff.SM"].shape == (4, 4)  # [unit, nmul]
    assert set(saved.state.memory["routing"]) >= {"Q", "Q0", "Q1", "Q2"}
    assert saved.state.memory["routing"]["Q"].shape == (14, 4)  # the unit hydrograph's 15 days, less today
    assert set(saved.state.networks["default"]) == {"h", "c"}  # the LSTM's recurrent state
    assert saved.state.parameters["FC"].shape == (4, 4) and saved.state.parameters["route_a"].shape == (4,)
    assert str(saved.date) == "2001-07-20" and saved.unit_ids == ("twin0000", "twin0001", "twin0002", "twin0003")


def test_cli_saves_and_starts_from_a_state(hbv_run, capsys):
    period = ["--start", "2001-07-01", "--end", "2001-08-31"]
    assert main(["simulate", str(hbv_run), *period, "--save-state", "2001-08-31"]) == 0
    out = capsys.readouterr().out
    state = hbv_run / "states" / "2001-08-31.pt"
    assert f"state: {state}" in out
    assert main(["simulate", str(hbv_run), "--from-state", str(state), "--end", "2001-09-30", "--name", "sept"]) == 0
    assert any((hbv_run / "simulations").glob("sept.*"))
    assert main(["simulate", str(hbv_run), "--from-state", str(state), "--start", "2001-08-15"]) == 2
    err = capsys.readouterr().err
    assert "end of 2001-08-31" in err and "--start 2001-09-01" in err and "Traceback" not in err


def test_a_state_of_other_units_or_weights_is_refused(hbv_run, sir_run, tmp_path):
    units = ["twin0000", "twin0001"]
    workflows.simulate(hbv_run, "2001-07-01", "2001-07-10", units=units, name="refusals", save_state="2001-07-10")
    path = hbv_run / "states" / "2001-07-10.pt"
    with pytest.raises(states.StateError, match=r"holds 2 units and lacks 2 of the simulation's \(twin0002, twin0003"):
        workflows.simulate(hbv_run, None, "2001-07-20", units=[*units, "twin0002", "twin0003"], from_state=path)
    with pytest.raises(states.StateError, match="another model"):
        workflows.simulate(sir_run, "2000-01-01", "2000-03-01", from_state=path, name="r2")
    saved = torch.load(path, weights_only=True)
    saved["weights"] = "0" * 64
    other = tmp_path / "other_weights.pt"
    torch.save(saved, other)
    with pytest.raises(states.StateError, match="other weights"):
        workflows.simulate(hbv_run, None, "2001-07-20", from_state=other, name="r3")
    with pytest.raises(states.StateError, match="not a dmg model state file"):
        workflows.simulate(hbv_run, None, "2001-07-20", from_state=hbv_run / "checkpoints" / "best.pt", name="r4")
