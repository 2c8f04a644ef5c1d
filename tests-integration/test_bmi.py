"""The Basic Model Interface: the CSDMS bmi-tester passes against :class:`dmg.core.bmi.DmgBmi` for a trained
δHBV run and a trained SIR run, and a BMI run stepped day by day equals ``dmg simulate`` over the same period."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("bmipy")

from dmg.core import workflows
from dmg.core.bmi import DmgBmi
from dmg.core.build import load_dataset
from dmg.core.config import load_config
from dmg.core.errors import ConfigError, InputError

RAIN = "atmosphere_water__precipitation_leq-volume_flux"
PET = "land_surface_water__potential_evapotranspiration_volume_flux"
PERIODS = {"hbv": ("2001-07-01", "2001-09-30"), "sir": ("2000-01-01", "2000-04-30")}


def _config_file(folder: Path, **entries: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bmi.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in entries.items() if v is not None}), encoding="utf-8")
    return path


def _stepped(config_file: Path, output: str) -> np.ndarray:
    """``output`` after every update of a BMI run from start to end, ``[time, unit]``."""
    bmi = DmgBmi()
    bmi.initialize(str(config_file))
    values = []
    buffer = np.empty(bmi.get_grid_size(bmi.get_var_grid(output)))
    while bmi.get_current_time() < bmi.get_end_time():
        bmi.update()
        values.append(bmi.get_value(output, buffer).copy())
    bmi.finalize()
    return np.array(values)


def _simulated(run: Path, start: str | None, end: str, output: str, **options: object) -> np.ndarray:
    """``output`` of ``dmg simulate`` (with ``from_state``: of ``dmg simulate --from-state``), ``[time, unit]``."""
    path = workflows.simulate(run, start, end, name="bmi_reference", overwrite=True, chunk_units=3, **options)
    if path.suffix == ".npz":
        with np.load(path) as saved:
            return saved[output]
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return ds[output].values


@pytest.mark.parametrize("kind", ["hbv", "sir"])
def test_bmi_tester_passes(kind, hbv_run, sir_run, tmp_path):
    run = {"hbv": hbv_run, "sir": sir_run}[kind]
    start, end = PERIODS[kind]
    _config_file(tmp_path / "stage", run=str(run), start=start, end=end)
    result = subprocess.run(
        [sys.executable, "-m", "bmi_tester", "dmg.core.bmi:DmgBmi", "--root-dir", ".", "--config-file", "bmi.yaml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path / "stage",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "All tests passed" in result.stderr
    assert " failed" not in result.stdout


@pytest.mark.parametrize(("kind", "output"), [("hbv", "Q"), ("sir", "new_infections")])
def test_bmi_stepped_day_by_day_equals_simulate(kind, output, hbv_run, sir_run, tmp_path):
    run = {"hbv": hbv_run, "sir": sir_run}[kind]
    start, end = PERIODS[kind]
    stepped = _stepped(_config_file(tmp_path, run=str(run), start=start, end=end), output)
    simulated = _simulated(run, start, end, output)
    assert stepped.shape == simulated.shape
    assert np.abs(stepped - simulated).max() <= 1e-6 * np.abs(simulated).max()


def test_bmi_reads_a_forcing_file_and_starts_from_a_saved_state(hbv_run, tmp_path):
    dataset = load_dataset(load_config(hbv_run / "config.yaml"))
    dataset.save(tmp_path / "forcings.npz")
    workflows.simulate(hbv_run, "2001-07-01", "2001-08-15", name="bmi_state", save_state="2001-08-15", overwrite=True)
    state = hbv_run / "states" / "2001-08-15.pt"
    config = _config_file(
        tmp_path, run=str(hbv_run), start="2001-08-16", end="2001-09-30", forcings="forcings.npz", state=str(state)
    )
    stepped = _stepped(config, "Q")
    simulated = _simulated(hbv_run, None, "2001-09-30", "Q", from_state=state)
    assert np.abs(stepped - simulated).max() <= 1e-6 * np.abs(simulated).max()


def test_bmi_variables_time_and_set_value(hbv_run, tmp_path):
    bmi = DmgBmi()
    bmi.initialize(str(_config_file(tmp_path, run=str(hbv_run), start="2001-07-01", end="2001-07-31", units=None)))
    assert bmi.get_input_var_names() == (RAIN, "land_surface_air__temperature", PET)  # HBV declares them
    outputs = bmi.get_output_var_names()
    assert {"Q", f"output.{PET}", "snowpack__liquid-equivalent_depth", "state.runoff.SM"} <= set(outputs)
    assert bmi.get_var_units(RAIN) == "mm/day" and bmi.get_var_units("state.runoff.SM") == "mm"
    assert (bmi.get_time_units(), bmi.get_time_step(), bmi.get_end_time()) == ("d", 1.0, 31.0)
    assert bmi.get_grid_type(0) == "unstructured" and bmi.get_grid_node_count(0) == 4
    rain = np.full(4, 80.0)
    bmi.set_value(RAIN, rain)
    assert np.array_equal(bmi.get_value(RAIN, np.empty(4)), rain)
    bmi.update()
    assert not np.array_equal(bmi.get_value(RAIN, np.empty(4)), rain)  # a set value holds for one update
    bmi.get_value_ptr(RAIN)[:2] = 80.0  # what is written into an input's array is used too
    soil = bmi.get_value_ptr("state.runoff.SM")
    bmi.update()
    wet = bmi.get_value("state.runoff.SM", np.empty(4)).copy()
    assert np.array_equal(soil, wet)  # the arrays are refreshed in place
    bmi.update_until(10.0)
    assert bmi.get_current_time() == 10.0 and np.isfinite(bmi.get_value_ptr("Q")).all()
    with pytest.raises(InputError, match="whole number of steps"):
        bmi.update_until(10.5)
    with pytest.raises(InputError, match="only inputs can be set"):
        bmi.set_value("Q", np.zeros(4))
    dry = DmgBmi()
    dry.initialize(str(_config_file(tmp_path / "dry", run=str(hbv_run), start="2001-07-01", end="2001-07-31")))
    dry.update_until(2.0)
    assert (wet > dry.get_value("state.runoff.SM", np.empty(4))).all()


def test_bmi_configuration_errors_name_the_key(hbv_run, tmp_path):
    with pytest.raises(ConfigError, match="statr"):
        DmgBmi().initialize(str(_config_file(tmp_path / "a", run=str(hbv_run), statr="2001-07-01")))
    with pytest.raises(InputError, match="no unit nowhere"):
        DmgBmi().initialize(str(_config_file(tmp_path / "b", run=str(hbv_run), start="2001-07-01", units=["nowhere"])))
    with pytest.raises(InputError, match="not initialized"):
        DmgBmi().update()
