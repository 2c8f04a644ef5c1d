"""Simulation of domains of any size: units in chunks, each kept as it finishes, resumable.

``dmg simulate`` runs a trained model over ``simulate.chunk_units`` units at a time, so its memory
is that of one chunk (the chunk's inputs over the period and its ``[time, unit]`` outputs) whatever
the number of units. Each finished chunk is written at once, atomically, into a folder next to the
final file; the final file is assembled from these chunks when all are done, one chunk at a time,
and appears only when complete::

    RUN/simulations/
      NAME.partial/            while the simulation is unfinished
        plan.json              what is simulated: units, dates, chunk size, format, checkpoint, config
        chunks/000012.npz      one file per finished chunk: the record of finished chunks
        chunks/000012.state.pt the chunk's state at --save-state's date, written before its outputs
      NAME.nc | NAME.zarr | NAME.npz     the predictions, once every chunk is done
    RUN/states/DATE.pt         with --save-state: every unit's state, joined from the chunks' states

Running the same command again after an interruption continues the simulation: the chunks already
written are not computed again, and the result equals an uninterrupted simulation. Under
``torchrun`` every process takes its share of the unfinished chunks (round robin) and the first
process assembles the final file.

Each chunk is simulated as :mod:`dmg.core.stepping` steps a model forward (``simulate.parameters:
causal``, the default): a warm-up (or a saved state, ``--from-state``) and then the whole period in
one block, which equals a BMI run of the same units stepped day by day; ``simulate.parameters:
window`` runs the period as one window instead, as ``dmg evaluate`` does.

The predictions are ``[time, unit]`` arrays of every output of the model (or of those
``simulate.outputs`` names), float32, with the dates
(``time``) and the unit ids (``unit``): NetCDF (through netCDF4), zarr (format 3, through zarr, the
``zarr`` extra) or npz (assembled in memory, so only for domains whose outputs fit in it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from dmg.core.config import Period, RunConfig, dump_config
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.distributed import Distributed
from dmg.core.errors import ConfigError, DmgError, InputError, SpecError
from dmg.core.evaluation import predict
from dmg.core.faults import fault_point
from dmg.core.io import TEMPORARY_SUFFIX, atomic_open, atomic_path, atomic_write_text
from dmg.core.model import DeltaModel
from dmg.core.run_data import period_data
from dmg.core.runfolder import RunFolder
from dmg.core.states import (
    SavedState,
    as_seconds,
    check_state_file,
    date_text,
    read_state,
    simulate_data,
    state_path,
    write_state,
)
from dmg.core.stepping import ModelState, Stepper

__all__ = [
    "FORMATS",
    "PartialSimulation",
    "SimulationPlan",
    "UnitSource",
    "output_format",
    "simulate_domain",
]

FORMATS = ("netcdf", "zarr", "npz")
"""Formats of a simulation's predictions file; ``simulate.format: auto`` follows ``output.predictions``."""

SUFFIXES = {"netcdf": ".nc", "zarr": ".zarr", "npz": ".npz"}
PARTIAL_SUFFIX = ".partial"
PLAN_FILE = "plan.json"
CHUNKS_DIR = "chunks"
PERIOD_KEY = "simulate --start/--end"
TIME_UNITS = "seconds since 1970-01-01 00:00:00"
"""How the dates are stored in NetCDF and zarr files (CF convention; xarray decodes them to datetime64)."""

Report = Callable[[str], None]


class UnitSource(Protocol):
    """Where the inputs of a simulation's units come from, one chunk at a time.

    :class:`~dmg.core.data.dataset.ArrayDataset` is one; a source that reads or generates each
    chunk on demand keeps even the inputs of a domain out of memory.
    """

    @property
    def unit_ids(self) -> tuple[str, ...]:
        """Every unit's id."""
        ...

    def select_units(self, ids_or_indices: Sequence[Any] | np.ndarray) -> ArrayDataset:
        """The data of some units (ids, in the order given), over the whole record."""
        ...


# --------------------------------------------------------------------------- format


def output_format(requested: str, predictions: str = "auto") -> str:
    """The format of a simulation's file: ``netcdf``, ``zarr`` or ``npz``.

    Parameters
    ----------
    requested
        ``simulate.format``: one of :data:`FORMATS`, or ``auto`` to follow ``predictions``.
    predictions
        ``output.predictions``: ``auto`` (NetCDF when xarray and netCDF4 are installed, else npz),
        ``netcdf`` or ``npz``.

    Raises
    ------
    ConfigError
        If the format asked for needs a package that is not installed, naming the key and the extra.
    """
    if requested == "auto":
        if predictions != "auto":
            return predictions
        return "netcdf" if _installed("netCDF4") and _installed("xarray") else "npz"
    if requested not in FORMATS:
        raise ConfigError(f"simulate.format: {requested!r} is not one of {['auto', *FORMATS]}")
    if requested == "netcdf" and not _installed("netCDF4"):
        raise ConfigError(
            'simulate.format: netcdf needs netCDF4; install the netcdf extra: pip install "dmg-core[netcdf]"'
        )
    if requested == "zarr" and not _installed("zarr"):
        raise ConfigError('simulate.format: zarr needs zarr; install the zarr extra: pip install "dmg-core[zarr]"')
    return requested


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --------------------------------------------------------------------------- plan and record


@dataclass(frozen=True)
class SimulationPlan:
    """What one simulation computes; an unfinished simulation continues only under the same plan.

    Attributes
    ----------
    n_units
        Units simulated.
    units_sha256
        Digest of the unit ids, in order.
    first, last
        First and last date with predictions (after the warm-up), ISO text.
    n_time
        Steps with predictions.
    warmup
        Steps simulated before ``first`` to set the states.
    chunk_units
        Units simulated and written at a time.
    format
        Format of the final file (one of :data:`FORMATS`).
    checkpoint_sha256
        Digest of the checkpoint file the model was loaded from.
    config_sha256
        Digest of the resolved configuration (with ``--set`` overrides).
    save_state
        The date at whose end the state is saved (``--save-state``), ISO text, or ``None``.
    from_state_sha256
        Digest of the state file the simulation starts from (``--from-state``), or ``None``.
    """

    n_units: int
    units_sha256: str
    first: str
    last: str
    n_time: int
    warmup: int
    chunk_units: int
    format: str
    checkpoint_sha256: str
    config_sha256: str
    save_state: str | None = None
    from_state_sha256: str | None = None

    @property
    def n_chunks(self) -> int:
        """Chunks of at most ``chunk_units`` units."""
        return math.ceil(self.n_units / self.chunk_units)

    def chunk(self, index: int) -> slice:
        """Positions of the units of chunk ``index``."""
        start = index * self.chunk_units
        return slice(start, min(start + self.chunk_units, self.n_units))

    def differences(self, other: SimulationPlan) -> list[str]:
        """``key: this, not other`` for each field where the two plans differ."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{key} {theirs[key]}, not {mine[key]}" for key in mine if mine[key] != theirs[key]]


@dataclass(frozen=True)
class PartialSimulation:
    """The folder of an unfinished simulation: its plan and one file per finished chunk."""

    path: Path

    @property
    def plan_file(self) -> Path:
        return self.path / PLAN_FILE

    def part(self, index: int) -> Path:
        """The file holding chunk ``index``'s outputs (``chunks/<index>.npz``)."""
        return self.path / CHUNKS_DIR / f"{index:06d}.npz"

    def state_part(self, index: int) -> Path:
        """The file holding chunk ``index``'s saved state (``chunks/<index>.state.pt``), written before its outputs."""
        return self.path / CHUNKS_DIR / f"{index:06d}.state.pt"

    def finished(self, n_chunks: int) -> list[int]:
        """The chunks whose outputs are written."""
        return [i for i in range(n_chunks) if self.part(i).is_file()]

    def read_plan(self) -> SimulationPlan | None:
        """The recorded plan, or ``None`` when there is none (a start killed before writing it)."""
        if not self.plan_file.is_file():
            return None
        try:
            return SimulationPlan(**json.loads(self.plan_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{self.plan_file} is damaged and cannot be read ({exc}); remove {self.path} to start again"
            ) from None

    def prepare(self, plan: SimulationPlan, overwrite: bool) -> list[int]:
        """Start the folder for ``plan``, or continue it if it was started under the same plan.

        Returns the finished chunks. Leftovers of interrupted writes are removed.

        Raises
        ------
        InputError
            If the folder holds a simulation of another plan (naming what differs) and not ``overwrite``.
        """
        recorded = self.read_plan()
        if recorded is not None and recorded != plan:
            if not overwrite:
                raise InputError(
                    f"{self.path} holds an unfinished simulation with {'; '.join(plan.differences(recorded))}; "
                    "run the same command as before to continue it, or pass --overwrite to discard it"
                )
            recorded = None
        if recorded is None and self.path.exists():
            shutil.rmtree(self.path)
        (self.path / CHUNKS_DIR).mkdir(parents=True, exist_ok=True)
        for leftover in sorted(self.path.rglob(f"*{TEMPORARY_SUFFIX}")):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
        if recorded is None:
            atomic_write_text(self.plan_file, json.dumps(asdict(plan), indent=2))
        return self.finished(plan.n_chunks)

    def write_part(self, index: int, outputs: dict[str, np.ndarray]) -> None:
        """Write chunk ``index``'s ``[time, unit]`` outputs atomically: it counts as finished once renamed."""
        with atomic_open(self.part(index), "wb") as fh:
            np.savez(fh, **cast("dict[str, Any]", outputs))

    def read_part(self, index: int) -> dict[str, np.ndarray]:
        """Chunk ``index``'s outputs; a damaged file is an error naming it."""
        try:
            with np.load(self.part(index), allow_pickle=False) as saved:
                return {name: saved[name] for name in saved.files}
        except Exception as exc:  # numpy and zipfile raise many kinds on damaged bytes
            raise InputError(
                f"{self.part(index)} cannot be read ({exc}); remove it and run the same command again to recompute it"
            ) from None


# --------------------------------------------------------------------------- the simulation


def simulate_domain(
    folder: RunFolder,
    config: RunConfig,
    model: DeltaModel,
    normalizer: Normalizer,
    source: UnitSource,
    ids: Sequence[str],
    period: Period,
    checkpoint: Path,
    *,
    name: str | None = None,
    overwrite: bool = False,
    chunk_units: int | None = None,
    save_state: np.datetime64 | None = None,
    from_state: SavedState | None = None,
    distributed: Distributed | None = None,
    report: Report | None = None,
) -> Path:
    """Simulate ``ids`` over ``period`` chunk by chunk into ``simulations/<name>``; returns the file.

    The first process (the only one without ``torchrun``) must hold the run folder's lock.

    Parameters
    ----------
    folder
        The run folder.
    config, model, normalizer
        The trained run (see :func:`dmg.core.evaluation.load_trained`); ``model`` on its device.
    source
        The units' inputs, read one chunk at a time.
    ids
        The units to simulate, in the order of the file.
    period
        Dates with predictions; ``data.warmup`` steps before it set the states (none from a state).
    checkpoint
        The checkpoint file ``model`` was loaded from (recorded in the plan).
    name
        File name without suffix under ``simulations/`` (default: ``<first date>_<last date>``).
    overwrite
        Replace an existing file of that name (and state file), and discard an unfinished simulation of
        another plan.
    chunk_units
        Units simulated and written at a time (default ``simulate.chunk_units``).
    save_state
        A date of the period: the state of every unit at its end is written to ``RUN/states/<date>.pt``
        (:func:`~dmg.core.states.state_path`), gathered from the chunks.
    from_state
        A state read from its file (:func:`~dmg.core.states.read_state`) holding the units: the
        simulation starts from it at the step after its date, without warm-up.
    distributed
        This process's place under ``torchrun`` (default: read from the environment).
    report
        Called with one line of progress (a start, a continuation, each finished chunk).

    Raises
    ------
    InputError
        If the file exists and not ``overwrite``, an unfinished simulation of another plan is in the
        way, a state does not fit, or a chunk's inputs or outputs are not finite (naming the unit and
        the date).
    ConfigError
        If the model cannot be stepped forward as ``simulate.parameters: causal`` (the default) asks, or
        states are asked for with ``window``.
    """
    distributed = distributed or Distributed.from_environment()
    say = report if report is not None and distributed.is_main else (lambda line: None)
    units = [str(u) for u in ids]
    if not units:
        raise InputError("--units: no unit to simulate")
    size = chunk_units if chunk_units is not None else config.simulate.chunk_units
    if size < 1:
        raise InputError(f"--chunk-units must be at least 1, got {size}")
    fmt = output_format(config.simulate.format, config.output.predictions)
    _check_stepping(config, model, states_asked=save_state is not None or from_state is not None)
    first = source.select_units(units[:1])  # the period's dates, and its warnings once
    data, warmup = _period(config, first, period, from_state is not None)
    step = None if first.step is None else np.timedelta64(first.step, "s")  # the record's, kept in a state
    dates = data.dates[warmup:]
    if dates.size == 0:
        raise InputError(f"{PERIOD_KEY}: the period has no date after the warm-up of {warmup} steps")
    initial = None
    if from_state is not None:
        initial = check_state_file(_source(from_state), from_state, config, model, units, dates[0])
    if save_state is not None and not (dates == as_seconds(save_state).astype(dates.dtype)).any():
        raise InputError(
            f"--save-state {date_text(save_state)}: not a date of the simulated period {dates[0]} to {dates[-1]}"
        )
    stem = folder.simulation(name if name is not None else f"{dates[0]}_{dates[-1]}".replace(":", ""))
    plan = SimulationPlan(
        n_units=len(units),
        units_sha256=_digest("\n".join(units).encode()),
        first=str(dates[0]),
        last=str(dates[-1]),
        n_time=int(dates.size),
        warmup=int(warmup),
        chunk_units=int(size),
        format=fmt,
        checkpoint_sha256=_file_digest(checkpoint),
        config_sha256=_digest(dump_config(config).encode()),
        save_state=None if save_state is None else date_text(save_state),
        from_state_sha256=None if from_state is None else from_state.sha256,
    )
    partial = PartialSimulation(stem.with_name(stem.name + PARTIAL_SUFFIX))
    target = stem.with_name(stem.name + SUFFIXES[fmt])
    state_target = None if save_state is None else state_path(folder, save_state)

    def prepare() -> list[int]:
        existing = [p for p in (stem.with_name(stem.name + s) for s in SUFFIXES.values()) if p.exists()]
        if existing and not overwrite:
            raise InputError(f"{existing[0]} already exists; choose another --name, or pass --overwrite to replace it")
        if state_target is not None and state_target.exists() and not overwrite:
            raise InputError(f"{state_target} already exists; pass --overwrite to replace it")
        done = partial.prepare(plan, overwrite)
        _remove_leftovers(target)
        return done

    finished = set(distributed.on_main(prepare))
    todo = [i for i in range(plan.n_chunks) if i not in finished]
    if finished:
        say(f"continuing {partial.path}: {len(finished)} of {plan.n_chunks} chunks already done")
    elif plan.n_chunks > 1:
        say(f"simulating {plan.n_units} units in {plan.n_chunks} chunks of up to {size} units into {target}")
    failure: str | None = None
    try:
        for index in todo[distributed.rank :: distributed.world_size]:
            chunk_ids = units[plan.chunk(index)]
            chunk_initial = None if initial is None else initial.for_units(chunk_ids, _source(initial))
            outputs, saved = _simulate_chunk(
                config, model, normalizer, source, chunk_ids, period, plan, chunk_initial, save_state, step
            )
            fault_point(f"simulated chunk {index}")
            if saved is not None:
                write_state(partial.state_part(index), saved)
            partial.write_part(index, outputs)
            if plan.n_chunks > 1:
                say(f"chunk {index + 1} of {plan.n_chunks} written")
    except DmgError as exc:
        if not distributed.enabled:
            raise
        failure = str(exc)  # every process learns of it below, instead of waiting for this one
    failures = [f for f in distributed.gather(failure) if f is not None]
    if failures:
        raise InputError(failures[0])

    def assemble() -> None:
        missing = [i for i in range(plan.n_chunks) if not partial.part(i).is_file()]
        if missing:
            raise InputError(f"{partial.path}: chunks {missing[:10]} were not written; run the same command again")
        if state_target is not None:
            write_state(state_target, _joined_state(partial, plan))
            fault_point(f"state written: {state_target.name}")
        _assemble(partial, plan, target, units, dates)
        fault_point(f"assembled: {target.name}")
        shutil.rmtree(partial.path)

    distributed.on_main(assemble)  # the other processes wait for the final file, or its failure
    return target


def _source(saved: SavedState) -> str:
    """Where ``saved`` was read from, for messages."""
    return str(saved.source) if saved.source is not None else "the state"


def _check_stepping(config: RunConfig, model: DeltaModel, states_asked: bool) -> None:
    """Refuse, naming ``simulate.parameters``, a model that cannot be stepped forward, or states of a window run."""
    if config.simulate.parameters != "causal":
        if states_asked:
            raise ConfigError(
                f"simulate.parameters: {config.simulate.parameters!r} takes static parameters from the end of the "
                "period; --save-state and --from-state need 'causal' (a state holds what the model knows at its date)"
            )
        return
    try:
        Stepper(model)
    except SpecError as exc:
        raise ConfigError(
            f"simulate.parameters: causal steps the model forward, but {exc}; set simulate.parameters: window "
            "to simulate the period as one window"
        ) from None


def _period(config: RunConfig, data: ArrayDataset, period: Period, from_state: bool) -> tuple[ArrayDataset, int]:
    """``data`` over the period with its warm-up before it (none when the simulation starts from a state)."""
    with warnings.catch_warnings():
        if from_state:  # no warm-up is simulated: a short one is no matter
            warnings.simplefilter("ignore")
        data, warmup = period_data(config, data, period, data.unit_ids, strict_warmup=False, key=PERIOD_KEY)
    if from_state:
        return data.isel_time(slice(warmup, None)), 0
    return data, warmup


def _simulate_chunk(
    config: RunConfig,
    model: DeltaModel,
    normalizer: Normalizer,
    source: UnitSource,
    units: Sequence[str],
    period: Period,
    plan: SimulationPlan,
    initial: SavedState | None,
    save_state: np.datetime64 | None,
    step: np.timedelta64 | None,
) -> tuple[dict[str, np.ndarray], SavedState | None]:
    """The ``[time, unit]`` outputs the plan writes for ``units``, and their state at ``save_state``."""
    chunk = source.select_units(list(units))
    with warnings.catch_warnings():  # warned about once, when the period's dates were found
        warnings.simplefilter("ignore")
        data, warmup = _period(config, chunk, period, initial is not None)
    if warmup != plan.warmup or data.n_time - warmup != plan.n_time:
        raise InputError(
            f"{PERIOD_KEY}: units {units[0]} to {units[-1]} do not cover the dates {plan.first} to {plan.last}"
        )
    saved = None
    if config.simulate.parameters == "window":
        outputs = predict(config, model, normalizer, data, warmup, with_targets=False)
    else:
        outputs, saved = simulate_data(
            config,
            model,
            normalizer,
            data,
            warmup,
            initial=initial,
            save_at=save_state,
            step=step,
            units_per_batch=config.evaluate.units_per_batch,
        )
    wanted = config.simulate.outputs
    if wanted is None:
        return outputs, saved
    unknown = [name for name in wanted if name not in outputs]
    if unknown:
        raise ConfigError(
            f"simulate.outputs: the model has no [time, unit] output {', '.join(unknown)}; it has {sorted(outputs)}"
        )
    return {name: outputs[name] for name in dict.fromkeys(wanted)}, saved


def _joined_state(partial: PartialSimulation, plan: SimulationPlan) -> SavedState:
    """The state of every unit, joined from the chunks' states in the order of the units."""
    parts = []
    for index in range(plan.n_chunks):
        path = partial.state_part(index)
        if not path.is_file():
            raise InputError(
                f"{path} is missing: chunk {index} was written without its state; remove {partial.part(index)} and "
                "run the same command again to recompute it"
            )
        parts.append(read_state(path))
    return replace(
        parts[0],
        state=ModelState.concat([p.state for p in parts]),
        unit_ids=tuple(u for p in parts for u in p.unit_ids),
        source=None,
        sha256=None,
    )


# --------------------------------------------------------------------------- assembly


def _assemble(
    partial: PartialSimulation, plan: SimulationPlan, target: Path, units: list[str], dates: np.ndarray
) -> None:
    """Write the final file from the chunks, one chunk in memory at a time (npz: all at once)."""
    names = list(partial.read_part(0))
    if plan.format == "npz":
        values = {name: np.empty((plan.n_time, plan.n_units), dtype=np.float32) for name in names}
        for index, part in _parts(partial, plan, names):
            for name in names:
                values[name][:, plan.chunk(index)] = part[name]
        with atomic_open(target, "wb") as fh:  # the layout of dmg.core.evaluation.save_predictions
            np.savez(
                fh,
                unit_ids=np.asarray(units, dtype=str),
                dates=np.asarray(dates, dtype="datetime64[D]"),
                **cast("dict[str, Any]", values),
            )
    elif plan.format == "netcdf":
        with atomic_path(target) as tmp:
            _write_netcdf(tmp, partial, plan, names, units, dates)
    else:
        store = partial.path / f"assembly.zarr{TEMPORARY_SUFFIX}"
        _write_zarr(store, partial, plan, names, units, dates)
        _replace_folder(store, target, partial.path / f"replaced.zarr{TEMPORARY_SUFFIX}")


def _parts(
    partial: PartialSimulation, plan: SimulationPlan, names: list[str]
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    for index in range(plan.n_chunks):
        part = partial.read_part(index)
        width = plan.chunk(index).stop - plan.chunk(index).start
        if sorted(part) != sorted(names) or any(part[n].shape != (plan.n_time, width) for n in names):
            raise InputError(
                f"{partial.part(index)} does not hold the outputs {names} of {plan.n_time} steps x {width} units; "
                "remove it and run the same command again to recompute it"
            )
        yield index, part


def _seconds(dates: np.ndarray) -> np.ndarray:
    return np.asarray(dates).astype("datetime64[s]").astype(np.int64)


def _write_netcdf(
    path: Path, partial: PartialSimulation, plan: SimulationPlan, names: list[str], units: list[str], dates: np.ndarray
) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", plan.n_time)
        nc.createDimension("unit", plan.n_units)
        time = nc.createVariable("time", "i8", ("time",))
        time.units = TIME_UNITS
        time.calendar = "proleptic_gregorian"
        time[:] = _seconds(dates)
        unit = nc.createVariable("unit", str, ("unit",))
        unit[:] = np.asarray(units, dtype=object)
        chunks = (min(plan.n_time, 1024), min(plan.chunk_units, plan.n_units))
        variables = {
            name: nc.createVariable(name, "f4", ("time", "unit"), fill_value=np.float32(np.nan), chunksizes=chunks)
            for name in names
        }
        for index, part in _parts(partial, plan, names):
            for name in names:
                variables[name][:, plan.chunk(index)] = part[name]


def _write_zarr(
    store: Path, partial: PartialSimulation, plan: SimulationPlan, names: list[str], units: list[str], dates: np.ndarray
) -> None:
    import zarr

    if store.exists():
        shutil.rmtree(store)
    group = zarr.open_group(str(store), mode="w", zarr_format=3)
    attributes: dict[str, Any] = {"units": TIME_UNITS, "calendar": "proleptic_gregorian"}
    time = group.create_array(
        "time", shape=(plan.n_time,), dtype="int64", dimension_names=("time",), attributes=attributes
    )
    time[:] = _seconds(dates)
    unit = group.create_array("unit", shape=(plan.n_units,), dtype=str, dimension_names=("unit",))
    unit[:] = np.asarray(units)
    chunks = (min(plan.n_time, 1024), min(plan.chunk_units, plan.n_units))
    arrays = {
        name: group.create_array(
            name,
            shape=(plan.n_time, plan.n_units),
            chunks=chunks,
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("time", "unit"),
        )
        for name in names
    }
    for index, part in _parts(partial, plan, names):
        for name in names:
            arrays[name][:, plan.chunk(index)] = part[name]
    with warnings.catch_warnings():  # consolidated metadata is xarray's convention, not yet zarr 3's
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(store))


def _replace_folder(source: Path, target: Path, aside: Path) -> None:
    """Put the complete folder ``source`` at ``target`` by renames; an old ``target`` is removed after."""
    if aside.exists():
        shutil.rmtree(aside)
    fault_point(f"written, not yet renamed: {target.name}")
    if target.exists():
        target.rename(aside)
    source.rename(target)
    fault_point(f"renamed: {target.name}")
    if aside.exists():
        shutil.rmtree(aside)


def _remove_leftovers(target: Path) -> None:
    """Temporary files a killed assembly of ``target`` left next to it."""
    for leftover in target.parent.glob(f".{target.name}.*{TEMPORARY_SUFFIX}"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
