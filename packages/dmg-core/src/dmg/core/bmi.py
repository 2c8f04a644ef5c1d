"""The CSDMS Basic Model Interface (BMI 2.0) for any trained run: :class:`DmgBmi`.

Frameworks such as NOAA-OWP's NextGen drive models through BMI: they initialise a model from a
configuration file, set its inputs, advance it step by step and read its outputs. :class:`DmgBmi`
does this for any run folder ``dmg train`` wrote, whatever its physics model, with the stepping of
:mod:`dmg.core.stepping`: at each update the networks read the step's inputs (dynamic parameters come
from the inputs seen so far; static ones were set at the end of the warm-up) and the physics advances
one step. A run updated day by day equals ``dmg simulate`` over the same period.

The configuration file is a small YAML file::

    run: runs/dhbv                 # the run folder (relative: to this file's folder)
    start: 2001-07-01              # the first date simulated by update()
    forcings: forcings.npz         # forcing source: a dataset .npz (ArrayDataset.save); default: the run's data
    units: [01022500, 01030500]    # optional: these units, in this order (default: every unit of the source)
    end: 2001-12-30                # optional: the last date (default: the source's last date)
    checkpoint: best               # optional: best, last or a checkpoint file
    state: runs/dhbv/states/2001-06-30.pt   # optional: start from a saved state (no warm-up)
    standard_names: {P: atmosphere_water__precipitation_leq-volume_flux}   # optional

Before the start date the model warms up over ``data.warmup`` steps of the source, as ``dmg simulate``
does, unless it starts from a state. Variables:

* inputs: the dataset variables the model reads at each step (physics forcings and network inputs),
  named by the physics forcing they feed (``P``) or else by the dataset's name, each ``[unit]``; they
  hold the next step's values from the source, and values set with :meth:`DmgBmi.set_value` (or written
  into :meth:`DmgBmi.get_value_ptr`'s array) replace them for that step;
* outputs: the physics outputs of the last step (``output.<name>`` where an input has the name, e.g. a
  forcing the model passes through), and its states (mean over components) as ``state.<name>``,
  each ``[unit]``.

A variable is called by its CSDMS standard name where the model declares one (a mapping
``standard_names`` on the physics model or a member, or ``standard_names`` in the file). Every
variable lives on grid 0: the units as ``N`` points of an unstructured grid (coordinates from the
``lon``/``lat`` attributes when the source has them, else the unit index). Time is counted in steps'
units (``d`` for daily data, ``h`` for hourly) from 0 at the start date.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

try:
    from bmipy import Bmi
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("dmg.core.bmi needs bmipy; install the bmi extra: pip install 'dmg-core[bmi]'") from exc

from dmg.core.build import load_dataset
from dmg.core.config import RunConfig, make_period
from dmg.core.data.batching import make_batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.errors import ConfigError, InputError
from dmg.core.evaluation import load_trained
from dmg.core.run_data import period_data
from dmg.core.runfolder import RunFolder
from dmg.core.states import check_state_file, date_text, read_state
from dmg.core.stepping import Stepper, member_paths

__all__ = ["BmiConfig", "DmgBmi"]

GRID = 0
"""The one grid every variable lives on."""
STATE_PREFIX = "state."
"""Prefix of the names of the physics states among the outputs."""
OUTPUT_PREFIX = "output."
"""Prefix of an output whose name is also an input's (a forcing a model passes through)."""
TIME_UNITS = {3600: "h", 86400: "d"}
"""Time units by step length (seconds); other steps count seconds."""


class BmiConfig(BaseModel):
    """The configuration file of :class:`DmgBmi` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    run: str = Field(description="The run folder (relative: to the configuration file's folder).")
    start: str = Field(description="The first date update() simulates (YYYY-MM-DD).")
    forcings: str | None = Field(None, description="A dataset .npz file with the inputs; default: the run's data.")
    units: list[str] | None = Field(None, description="Unit ids, in order; default: every unit of the source.")
    end: str | None = Field(None, description="The last date; default: the last date of the source.")
    checkpoint: str = Field("best", description="best, last or a checkpoint file.")
    state: str | None = Field(None, description="A state file to start from (no warm-up).")
    standard_names: dict[str, str] = Field(
        default_factory=dict, description="Model or dataset variable name -> CSDMS standard name."
    )


@dataclass(frozen=True)
class _Var:
    """One BMI variable: its model name, unit and where its values come from."""

    name: str
    unit: str
    kind: str
    """``input`` (a dataset variable), ``output`` (a physics output) or ``state``."""
    key: str
    """The dataset variable, output or state name."""


class DmgBmi(Bmi):
    """A trained dmg run behind the Basic Model Interface 2.0 (see the module docstring)."""

    def __init__(self) -> None:
        self._stepper: Stepper | None = None
        self._vars: dict[str, _Var] = {}
        self._inputs: tuple[str, ...] = ()
        self._outputs: tuple[str, ...] = ()
        self._buffers: dict[str, np.ndarray] = {}
        self._coords: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
        self._index = 0
        self._first = 0
        self._n_steps = 0
        self._step_seconds = 86400

    # ------------------------------------------------------------------ control
    def initialize(self, config_file: str) -> None:
        """Load the run, the forcing source and the start state (warm-up or a state file) named in ``config_file``.

        Raises
        ------
        ConfigError
            For an unreadable file, an unknown key or a missing one, naming it.
        InputError
            For a run, unit, date or state that does not fit, naming it.
        """
        path = Path(config_file)
        cfg = _read_config(path)
        base = path.resolve().parent
        folder = RunFolder.existing(_resolve(base, cfg.run))
        config, model, normalizer, _ = load_trained(folder, cfg.checkpoint)
        source = _source(config, base, cfg)
        ids = list(cfg.units) if cfg.units else list(source.unit_ids)
        unknown = [u for u in ids if u not in source.unit_ids]
        if unknown:
            raise InputError(f"{path}: units: the forcing source has no unit {', '.join(unknown[:5])}")
        period = make_period(cfg.start, cfg.end, f"{path}: start/end")
        data, warmup = period_data(config, source, period, ids, strict_warmup=False, key=f"{path}: start/end")
        self._stepper = stepper = Stepper(model)
        self._config, self._normalizer, self._data = config, normalizer, data
        self._roles = config.data.roles.model_copy(update={"targets": {}})
        self._dtype = next(iter(model.parameters())).dtype
        if cfg.state is not None:
            state_file = _resolve(base, cfg.state)
            saved = read_state(state_file)
            saved = check_state_file(state_file, saved, config, model, data.unit_ids, data.dates[warmup])
            stepper.load(saved.state)
        elif warmup:
            stepper.warm_up(self._batch(0, warmup))
        if source.step is None:
            raise InputError(f"{path}: the forcing source needs at least two dates to set the time step")
        self._step_seconds = int(np.timedelta64(source.step, "s").astype(np.int64))
        self._first = self._index = warmup
        self._n_steps = data.n_time - warmup
        self._define_variables(config, cfg.standard_names)
        self._coords = _coordinates(data)

    def update(self) -> None:
        """Advance the model one step."""
        stepper = self._require()
        if self._index >= self._data.n_time:
            raise InputError(
                f"the simulation has reached its end, {date_text(self._data.dates[-1])}: the forcing source "
                "has no later date (extend it, or set end in the configuration file)"
            )
        data = self._data.isel_time(slice(self._index, self._index + 1))
        array = np.array(data.data, dtype=np.float64)
        for var in self._vars.values():
            if var.kind == "input":
                array[:, 0, data.variable_index(var.key)] = self._buffers[var.name]
        out = stepper.advance(self._step_batch(replace(data, data=array), 1))
        self._index += 1
        self._refresh({key: value[0] for key, value in out.items()})

    def update_until(self, time: float) -> None:
        """Advance the model to ``time`` (a whole number of steps later than now, in the time units)."""
        self._require()
        steps = (time - self.get_current_time()) / self.get_time_step()
        if steps < -1e-9 or abs(steps - round(steps)) > 1e-6:
            raise InputError(
                f"update_until({time}): give a time at a whole number of steps (of {self.get_time_step()} "
                f"{self.get_time_units()}) from the current time {self.get_current_time()}"
            )
        for _ in range(round(steps)):
            self.update()

    def finalize(self) -> None:
        """Release the model."""
        self._stepper = None
        self._buffers.clear()

    # ------------------------------------------------------------------ information
    def get_component_name(self) -> str:
        return "dmg differentiable model"

    def get_input_item_count(self) -> int:
        return len(self._inputs)

    def get_output_item_count(self) -> int:
        return len(self._outputs)

    def get_input_var_names(self) -> tuple[str, ...]:  # type: ignore[override]  # bmipy declares tuple[str]
        return self._inputs

    def get_output_var_names(self) -> tuple[str, ...]:  # type: ignore[override]  # bmipy declares tuple[str]
        return self._outputs

    # ------------------------------------------------------------------ variables
    def get_var_grid(self, name: str) -> int:
        self._var(name)
        return GRID

    def get_var_type(self, name: str) -> str:
        self._var(name)
        return "float64"

    def get_var_units(self, name: str) -> str:
        return self._var(name).unit or "1"

    def get_var_itemsize(self, name: str) -> int:
        self._var(name)
        return np.dtype("float64").itemsize

    def get_var_nbytes(self, name: str) -> int:
        return self.get_var_itemsize(name) * self._n_units

    def get_var_location(self, name: str) -> str:
        self._var(name)
        return "node"

    # ------------------------------------------------------------------ time
    def get_current_time(self) -> float:
        return float(self._index - self._first) * self.get_time_step()

    def get_start_time(self) -> float:
        return 0.0

    def get_end_time(self) -> float:
        return float(self._n_steps) * self.get_time_step()

    def get_time_units(self) -> str:
        return TIME_UNITS.get(self._step_seconds, "s")

    def get_time_step(self) -> float:
        return 1.0 if self._step_seconds in TIME_UNITS else float(self._step_seconds)

    # ------------------------------------------------------------------ values
    def get_value(self, name: str, dest: np.ndarray) -> np.ndarray:
        dest[:] = self.get_value_ptr(name)
        return dest

    def get_value_ptr(self, name: str) -> np.ndarray:
        """The variable's array, ``[unit]`` float64: outputs and states are refreshed after every update,
        inputs hold the next step's values (from the source; what is written into them is used)."""
        self._var(name)
        return self._buffers[name]

    def get_value_at_indices(self, name: str, dest: np.ndarray, inds: np.ndarray) -> np.ndarray:
        dest[:] = self.get_value_ptr(name)[np.asarray(inds, dtype=np.int64)]
        return dest

    def set_value(self, name: str, src: np.ndarray) -> None:
        values = np.asarray(src, dtype=np.float64).reshape(-1)
        if values.shape != (self._n_units,):
            raise InputError(f"set_value({name!r}): give {self._n_units} values (one per unit), got {values.size}")
        self._input(name)[:] = values

    def set_value_at_indices(self, name: str, inds: np.ndarray, src: np.ndarray) -> None:
        self._input(name)[np.asarray(inds, dtype=np.int64)] = np.asarray(src, dtype=np.float64).reshape(-1)

    # ------------------------------------------------------------------ grid
    def get_grid_rank(self, grid: int) -> int:
        self._grid(grid)
        return 2

    def get_grid_size(self, grid: int) -> int:
        self._grid(grid)
        return self._n_units

    def get_grid_type(self, grid: int) -> str:
        self._grid(grid)
        return "unstructured"

    def get_grid_shape(self, grid: int, shape: np.ndarray) -> np.ndarray:
        raise NotImplementedError("get_grid_shape: grid 0 is unstructured (unit points)")

    def get_grid_spacing(self, grid: int, spacing: np.ndarray) -> np.ndarray:
        raise NotImplementedError("get_grid_spacing: grid 0 is unstructured (unit points)")

    def get_grid_origin(self, grid: int, origin: np.ndarray) -> np.ndarray:
        raise NotImplementedError("get_grid_origin: grid 0 is unstructured (unit points)")

    def get_grid_x(self, grid: int, x: np.ndarray) -> np.ndarray:
        self._grid(grid)
        x[:] = self._coords[0]
        return x

    def get_grid_y(self, grid: int, y: np.ndarray) -> np.ndarray:
        self._grid(grid)
        y[:] = self._coords[1]
        return y

    def get_grid_z(self, grid: int, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError("get_grid_z: grid 0 has two dimensions")

    def get_grid_node_count(self, grid: int) -> int:
        return self.get_grid_size(grid)

    def get_grid_edge_count(self, grid: int) -> int:
        self._grid(grid)
        return 0

    def get_grid_face_count(self, grid: int) -> int:
        self._grid(grid)
        return 0

    def get_grid_edge_nodes(self, grid: int, edge_nodes: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return edge_nodes

    def get_grid_face_edges(self, grid: int, face_edges: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return face_edges

    def get_grid_face_nodes(self, grid: int, face_nodes: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return face_nodes

    def get_grid_nodes_per_face(self, grid: int, nodes_per_face: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return nodes_per_face

    # ------------------------------------------------------------------ helpers
    @property
    def _n_units(self) -> int:
        self._require()
        return self._data.n_units

    def _require(self) -> Stepper:
        if self._stepper is None:
            raise InputError("the model is not initialized: call initialize(config_file) first")
        return self._stepper

    def _var(self, name: str) -> _Var:
        self._require()
        try:
            return self._vars[name]
        except KeyError:
            known = f"inputs: {list(self._inputs)}; outputs: {list(self._outputs)}"
            raise InputError(f"no variable {name!r}; {known}") from None

    def _grid(self, grid: int) -> None:
        if grid != GRID:
            raise InputError(f"no grid {grid}: every variable lives on grid {GRID}")

    def _input(self, name: str) -> np.ndarray:
        if self._var(name).kind != "input":
            raise InputError(f"set_value({name!r}): only inputs can be set ({', '.join(self._inputs)})")
        return self._buffers[name]

    def _refresh(self, outputs: Mapping[str, torch.Tensor]) -> None:
        """Fill every variable's array: inputs with the source's next step, outputs and states from the model."""
        stepper = self._require()
        physics = stepper.state().physics
        if not physics:  # not yet advanced: the declared initial states
            like = next(iter(stepper.model.parameters()))
            physics = stepper.model.phy_model.initial_state(self._data.n_units, dtype=like.dtype, device=like.device)
        for var in self._vars.values():
            buffer = self._buffers[var.name]
            if var.kind == "input":
                inside = self._index < self._data.n_time
                buffer[:] = self._data.variable(var.key)[:, self._index] if inside else np.nan
            elif var.kind == "state":
                value = physics.get(var.key)
                buffer[:] = np.nan if value is None else _per_unit(value)
            else:
                value = outputs.get(var.key)
                buffer[:] = np.nan if value is None else value.double().cpu().numpy()

    def _batch(self, start: int, length: int) -> Any:
        return self._step_batch(self._data.isel_time(slice(start, start + length)), length)

    def _step_batch(self, data: ArrayDataset, length: int) -> Any:
        units = np.arange(data.n_units)
        return make_batch(data, self._roles, self._normalizer, units, 0, length, 0, dtype=self._dtype)

    def _define_variables(self, config: RunConfig, extra_names: dict[str, str]) -> None:
        stepper = self._require()
        phy = stepper.model.phy_model
        declared: dict[str, str] = {}
        for path, member in member_paths(phy):
            prefix = f"{path}." if path else ""
            for key, standard in dict(getattr(member, "standard_names", {}) or {}).items():
                declared.setdefault(key, standard)
                declared.setdefault(prefix + key, standard)
        declared.update(extra_names)
        roles = config.data.roles
        forcing_of = {dataset: model_name for model_name, dataset in roles.forcings.items()}
        units = {v.name: v.unit for v in phy.signature.forcings}
        variables: list[_Var] = []
        for key in dict.fromkeys([*roles.forcings.values(), *roles.nn_inputs]):
            name = forcing_of.get(key, key)
            unit = units.get(name) or self._data.units.get(key, "")
            variables.append(_Var(declared.get(name, declared.get(key, name)), unit, "input", key))
        probe = stepper.state()
        first = stepper.advance(self._batch(self._index, 1)) if self._index < self._data.n_time else {}
        stepper.load(probe)
        output_units = {v.name: v.unit for v in phy.signature.outputs}
        taken = {v.name for v in variables}
        for key in first:
            called = declared.get(str(key), str(key))
            called = OUTPUT_PREFIX + called if called in taken else called  # e.g. a forcing passed through
            variables.append(_Var(called, output_units.get(str(key), ""), "output", str(key)))
        for state in phy.signature.states:
            name = declared.get(state.name, STATE_PREFIX + state.name)
            variables.append(_Var(name, state.unit, "state", state.name))
        names = [v.name for v in variables]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ConfigError(f"standard_names: several variables would be called {clashes}; give each its own name")
        self._vars = {v.name: v for v in variables}
        self._inputs = tuple(v.name for v in variables if v.kind == "input")
        self._outputs = tuple(v.name for v in variables if v.kind != "input")
        self._buffers = {v.name: np.full(self._data.n_units, np.nan) for v in variables}
        self._refresh({})


def _per_unit(state: torch.Tensor) -> np.ndarray:
    """A state ``[unit, nmul]`` (or ``[unit]``) as its mean over components, ``[unit]`` float64."""
    return (state.mean(-1) if state.dim() == 2 else state).double().cpu().numpy()


def _read_config(path: Path) -> BmiConfig:
    if not path.is_file():
        raise ConfigError(f"BMI configuration file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"BMI configuration file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"BMI configuration file {path} must hold a mapping (run:, start:, forcings:, ...)")
    raw = {k: (str(v) if k in ("start", "end") and v is not None else v) for k, v in raw.items()}
    if raw.get("units") is not None:
        raw["units"] = [str(u) for u in raw["units"]]
    try:
        return BmiConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"BMI configuration file {path}: {problems}") from None


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _source(config: RunConfig, base: Path, cfg: BmiConfig) -> ArrayDataset:
    """The forcing source: the ``forcings`` file, else the run's dataset over its whole record."""
    if cfg.forcings is not None:
        path = _resolve(base, cfg.forcings)
        if not path.is_file():
            raise InputError(f"forcings: forcing file {path} does not exist")
        return ArrayDataset.load(path)
    from dmg.core.workflows import widen_dataset  # the workflows sit above the interface

    return load_dataset(widen_dataset(config, cfg.units, make_period(cfg.start, cfg.end, "start/end")))


def _coordinates(data: ArrayDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of each unit: ``lon``/``lat`` attributes when present, else the unit index and zeros."""
    names = data.attribute_names
    if "lon" in names and "lat" in names:
        x, y = data.attribute("lon"), data.attribute("lat")
        if np.isfinite(x).all() and np.isfinite(y).all():
            return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.arange(data.n_units, dtype=np.float64), np.zeros(data.n_units, dtype=np.float64)
