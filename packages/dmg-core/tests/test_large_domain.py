"""Simulation of large domains: units in chunks, written as they finish, continued after an interruption."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dmg.core import simulation, states
from dmg.core.cli import main
from dmg.core.data import ArrayDataset
from dmg.core.errors import ConfigError, InputError
from dmg.core.io import TEMPORARY_SUFFIX
from dmg.core.workflows import simulate

N_UNITS = 10
HAS_NETCDF = importlib.util.find_spec("netCDF4") is not None and importlib.util.find_spec("xarray") is not None
HAS_ZARR = importlib.util.find_spec("zarr") is not None and importlib.util.find_spec("xarray") is not None


def wide_dataset() -> ArrayDataset:
    """Rain, evaporation and a made-up flow of :data:`N_UNITS` units over 120 days."""
    rng = np.random.default_rng(1)
    dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-04-30"))
    shape = (N_UNITS, dates.size)
    p = (rng.random(shape) < 0.4) * rng.exponential(4.0, shape)
    return ArrayDataset.from_dicts(
        {"P": p, "PET": np.full(shape, 2.0), "Q": 0.3 * p + 0.1},
        [f"u{i}" for i in range(N_UNITS)],
        dates,
        attributes={"wetness": np.linspace(0.0, 1.0, N_UNITS)},
    )


class Interrupted(BaseException):
    """Stands for the process being killed at a fault point (raised, so the test process survives)."""


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    """A trained tiny run over :data:`N_UNITS` units."""
    wide_dataset().save(tiny_run.folder / "wide.npz")
    config = tiny_run.config()
    config["data"]["dataset"]["path"] = str(tiny_run.folder / "wide.npz")
    path = tiny_run.write(config, "wide.yaml")
    folder = tiny_run.folder / "runs" / "wide"
    assert main(["train", path, "--run-dir", str(folder), "--no-evaluate"]) == 0
    return folder


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every array of a predictions file of any format, with ``unit`` ids and ``time`` dates."""
    if path.suffix == ".npz":
        with np.load(path) as saved:
            values = {k: saved[k] for k in saved.files}
        values["unit"], values["time"] = values.pop("unit_ids"), values.pop("dates").astype("datetime64[ns]")
        return values
    import xarray as xr

    opened = xr.open_zarr(path) if path.suffix == ".zarr" else xr.open_dataset(path)
    with opened as ds:
        values = {name: ds[name].values for name in ds.data_vars}
        values["unit"], values["time"] = np.array(ds["unit"].values.tolist(), dtype=str), ds["time"].values
    return values


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], exact: bool = True) -> None:
    """The same arrays: bit for bit, or (``exact=False``) to float32 rounding (1e-6 of each output's largest value).

    Units simulated in batches of another size may differ in the last bits: batched matrix products
    round differently with the batch's size.
    """
    assert sorted(a) == sorted(b)
    for name in a:
        if exact or a[name].dtype.kind not in "f":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        else:
            scale = float(np.nanmax(np.abs(a[name]))) or 1.0
            np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6 * scale, err_msg=name)


def _interrupt_at(monkeypatch, label: str) -> list[str]:
    """Make the first fault point whose label starts with ``label`` raise :class:`Interrupted`; returns the labels."""
    reached: list[str] = []

    def point(text: str) -> None:
        reached.append(text)
        if text.startswith(label) and sum(r.startswith(label) for r in reached) == 1:
            raise Interrupted(text)

    monkeypatch.setattr(simulation, "fault_point", point)
    monkeypatch.setattr("dmg.core.io.fault_point", point)
    return reached


def test_chunked_equals_one_shot(run):
    one = simulate(run, "2000-02-01", None, name="one", chunk_units=N_UNITS)
    chunked = simulate(run, "2000-02-01", None, name="chunked", chunk_units=3)
    assert one.name == "one.npz" and chunked.name == "chunked.npz"
    _assert_same(_read(one), _read(chunked), exact=False)
    assert list(_read(one)["unit"]) == [f"u{i}" for i in range(N_UNITS)]
    assert not (run / "simulations" / "chunked.partial").exists()


@pytest.mark.skipif(not HAS_NETCDF, reason="needs xarray and netCDF4 (the netcdf extra)")
def test_netcdf_is_written_chunk_by_chunk_and_equals_npz(run):
    reference = simulate(run, "2000-02-01", None, name="ref_nc", chunk_units=4)
    path = simulate(run, "2000-02-01", None, overrides=["simulate.format=netcdf"], name="nc", chunk_units=4)
    assert path.name == "nc.nc"
    _assert_same(_read(reference), _read(path))


@pytest.mark.skipif(not HAS_ZARR, reason="needs zarr and xarray (the zarr extra)")
def test_zarr_is_written_chunk_by_chunk_and_equals_npz(run):
    reference = simulate(run, "2000-02-01", None, name="ref_zarr", chunk_units=4)
    path = simulate(run, "2000-02-01", None, overrides=["simulate.format=zarr"], name="z", chunk_units=4)
    assert path.name == "z.zarr" and path.is_dir()
    _assert_same(_read(reference), _read(path))
    again = simulate(
        run, "2000-02-01", None, overrides=["simulate.format=zarr"], name="z", chunk_units=3, overwrite=True
    )
    _assert_same(_read(reference), _read(again), exact=False)


@pytest.mark.parametrize("fmt", ["npz", "netcdf", "zarr"])
@pytest.mark.parametrize(
    "where",
    ["simulated chunk 2", "written, not yet renamed: 000001.npz", "renamed: 000003.npz", "written, not yet renamed: r"],
)
def test_an_interrupted_simulation_continues_without_recomputing(run, monkeypatch, fmt, where):
    if (fmt == "netcdf" and not HAS_NETCDF) or (fmt == "zarr" and not HAS_ZARR):
        pytest.skip(f"{fmt} is not installed")
    overrides = [f"simulate.format={fmt}"]
    reference = simulate(run, None, None, overrides=overrides, name=f"straight_{fmt}", chunk_units=3, overwrite=True)
    name = f"r_{fmt}_" + re.sub(r"[^a-z0-9]+", "_", where.removesuffix(": r"))
    reached = _interrupt_at(monkeypatch, where)
    with pytest.raises(Interrupted):
        simulate(run, None, None, overrides=overrides, name=name, chunk_units=3)
    final = run / "simulations" / (name + simulation.SUFFIXES[fmt])
    assert not final.exists()  # never half-written: the file appears only when complete
    partial = run / "simulations" / f"{name}.partial"
    finished = sorted(p.name for p in (partial / "chunks").glob("*.npz")) if partial.exists() else []
    (partial / "chunks").mkdir(parents=True, exist_ok=True)
    (partial / "chunks" / f".000009.npz.dead{TEMPORARY_SUFFIX}").write_bytes(b"a killed write")
    monkeypatch.undo()
    reached = _interrupt_at(monkeypatch, "never")
    path = simulate(run, None, None, overrides=overrides, name=name, chunk_units=3)
    assert path == final
    _assert_same(_read(reference), _read(path))
    computed = [text for text in reached if text.startswith("simulated chunk")]
    assert len(computed) == 4 - len(finished)  # finished chunks were not simulated again
    assert not partial.exists() and not list((run / "simulations").glob(f".{name}*"))


@pytest.mark.parametrize("where", ["simulated chunk 2", "renamed: 000001.state.pt", "state written: 2000-03-20.pt"])
def test_an_interrupted_simulation_saving_a_state_continues_to_the_same_state(run, monkeypatch, where):
    state = run / "states" / "2000-03-20.pt"
    simulate(run, None, None, name="state_straight", chunk_units=3, save_state="2000-03-20", overwrite=True)
    reference = states.read_state(state)
    state.unlink()
    _interrupt_at(monkeypatch, where)
    with pytest.raises(Interrupted):
        simulate(run, None, None, name="state_cut", chunk_units=3, save_state="2000-03-20", overwrite=True)
    monkeypatch.undo()
    simulate(run, None, None, name="state_cut", chunk_units=3, save_state="2000-03-20", overwrite=True)
    again = states.read_state(state)
    assert again.unit_ids == reference.unit_ids and again.date == reference.date
    for part in ("physics", "parameters"):
        for key, value in getattr(reference.state, part).items():
            torch.testing.assert_close(getattr(again.state, part)[key], value, rtol=0, atol=0)


def test_a_simulation_interrupted_once_its_file_is_written_is_completed_again_from_its_chunks(run, monkeypatch, capsys):
    _interrupt_at(monkeypatch, "assembled: late")
    with pytest.raises(Interrupted):
        simulate(run, None, None, name="late", chunk_units=3)
    assert (run / "simulations" / "late.npz").is_file() and (run / "simulations" / "late.partial").is_dir()
    monkeypatch.undo()
    assert main(["simulate", str(run), "--name", "late", "--chunk-units", "3"]) == 2
    assert "late.npz already exists" in capsys.readouterr().err
    reached = _interrupt_at(monkeypatch, "never")
    simulate(run, None, None, name="late", chunk_units=3, overwrite=True)
    assert not any(text.startswith("simulated chunk") for text in reached)
    assert not (run / "simulations" / "late.partial").exists()


def test_a_partial_simulation_of_another_plan_is_refused(run, monkeypatch, capsys):
    _interrupt_at(monkeypatch, "simulated chunk 1")
    with pytest.raises(Interrupted):
        simulate(run, None, None, name="other", chunk_units=3)
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"other.partial holds an unfinished simulation with chunk_units 3, not 4"):
        simulate(run, None, None, name="other", chunk_units=4)
    plan = json.loads((run / "simulations" / "other.partial" / "plan.json").read_text())
    assert plan["chunk_units"] == 3 and plan["n_units"] == N_UNITS
    path = simulate(run, None, None, name="other", chunk_units=4, overwrite=True)
    assert path.is_file() and not (run / "simulations" / "other.partial").exists()
    assert main(["simulate", str(run), "--name", "other", "--chunk-units", "4"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_the_command_line_takes_the_chunk_size(run, capsys):
    assert main(["simulate", str(run), "--name", "cli", "--chunk-units", "4"]) == 0
    out = capsys.readouterr().out
    assert "in 3 chunks of up to 4 units" in out and "chunk 3 of 3 written" in out
    assert (run / "simulations" / "cli.npz").is_file()
    assert main(["simulate", str(run), "--name", "cli0", "--chunk-units", "0"]) == 2
    assert "--chunk-units must be at least 1, got 0" in capsys.readouterr().err
    assert main(["simulate", str(run), "--name", "cli_state", "--save-state", "2000-03-10", "--chunk-units", "4"]) == 0
    out = capsys.readouterr().out
    assert "in 3 chunks" in out and f"state: {run / 'states' / '2000-03-10.pt'}" in out


def test_only_the_outputs_asked_for_are_written(run):
    path = simulate(run, None, None, overrides=["simulate.outputs=[Q]"], name="only_q", chunk_units=4)
    assert sorted(_read(path)) == ["Q", "time", "unit"]
    with pytest.raises(ConfigError, match=r"^simulate.outputs: the model has no \[time, unit\] output Qx; it has \["):
        simulate(run, None, None, overrides=["simulate.outputs=[Q, Qx]"], name="bad_q", chunk_units=4)


def test_the_format_names_the_key_and_extra_when_missing(monkeypatch):
    assert simulation.output_format("auto", "npz") == "npz"
    assert simulation.output_format("zarr" if HAS_ZARR else "npz") in simulation.FORMATS
    monkeypatch.setattr(simulation, "_installed", lambda module: False)
    assert simulation.output_format("auto") == "npz"
    with pytest.raises(ConfigError, match=r"^simulate.format: zarr needs zarr; .*dmg-core\[zarr\]"):
        simulation.output_format("zarr")
    with pytest.raises(ConfigError, match=r"^simulate.format: netcdf needs netCDF4; .*dmg-core\[netcdf\]"):
        simulation.output_format("netcdf")


def test_a_lazy_unit_source_is_read_one_chunk_at_a_time(run):
    """Any object with ``unit_ids`` and ``select_units`` feeds a simulation; it is asked for one chunk at a time."""
    from dmg.core.config import make_period
    from dmg.core.evaluation import load_trained
    from dmg.core.runfolder import RunFolder

    folder = RunFolder(run)
    full = wide_dataset()
    asked: list[int] = []

    class Source:
        unit_ids = full.unit_ids

        def select_units(self, ids):
            asked.append(len(ids))
            return full.select_units(ids)

    config, model, normalizer, chosen = load_trained(folder)
    with folder.lock("test"):
        path = simulation.simulate_domain(
            folder,
            config,
            model,
            normalizer,
            Source(),
            full.unit_ids,
            make_period(None, None, "x"),
            chosen.path,
            name="lazy",
            chunk_units=4,
        )
    assert max(asked) == 4 and sum(asked) == 1 + N_UNITS  # the first unit once more, for the period's dates
    reference = simulate(run, None, None, name="lazy_ref", chunk_units=4)
    _assert_same(_read(reference), _read(path))


def test_the_plan_says_what_differs():
    plan = simulation.SimulationPlan(10, "a", "2000-01-01", "2000-12-31", 366, 30, 4, "npz", "c", "d")
    other = simulation.SimulationPlan(10, "a", "2000-01-01", "2001-12-31", 731, 30, 4, "npz", "c", "d")
    assert plan.differences(other) == ["last 2001-12-31, not 2000-12-31", "n_time 731, not 366"]
    assert plan.n_chunks == 3 and plan.chunk(2) == slice(8, 10)
