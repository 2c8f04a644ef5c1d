"""One NetCDF file per unit (the Caravan layout) as a dmg dataset component.

::

    <root>/timeseries/netcdf/<source>/<unit>.nc       time series of one unit along a time coordinate
    <root>/attributes/<source>/attributes_*.csv       static attributes, one row per unit (id column)

Both locations are options: ``pattern`` is a glob relative to ``root`` in which ``{unit}``
stands for the unit id (``*`` matches any folder or name part), ``attributes_files`` a list
of globs. Files are read with xarray (``pip install 'dmg-hydro-adapter[netcdf]'``), the
attribute CSV files with the standard library.

Each file holds 1-D variables along one datetime coordinate (``time`` option, or the only
datetime coordinate of the file). The files may cover different periods but must share the
time step; values are placed on a common axis from ``start`` to ``end`` (default: the period
every unit covers). A unit whose file does not cover the requested period is an error naming
the file and its dates; NaN inside a file stays NaN. Physical units come from each
variable's ``units`` attribute when the file has one. Variables are stored as float32,
attributes as float64.

``open()`` (what ``dmg simulate`` uses) gives the same units, dates and values as ``load()``
without holding them all: the cache file when there is one, read a chunk of units at a time, else
a :class:`NetCDFUnitSource`, which reads a unit's values from its file when the unit is selected
(after opening every file once for its times, variable names and units).
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from dmg.core.data import ArrayDataset
from dmg.core.data.lazy import FileUnitSource, without_values
from dmg.core.errors import DmgError, InputError
from dmg.hydro.datasets._tables import read_table, read_text, reference_attributes, select_attributes
from dmg.hydro.datasets.cache import FolderDataset, FolderDatasetOptions
from dmg.hydro.metrics import HYDROLOGY_METRICS

if TYPE_CHECKING:
    from dmg.core.simulation import UnitSource

INSTALL_HINT = "pip install 'dmg-hydro-adapter[netcdf]'"

_Read = tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]
"""What :meth:`PerUnitNetCDF._read` gives: times, values by variable and physical units by variable."""


class MissingDependencyError(DmgError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


def import_xarray() -> Any:
    """The ``xarray`` module, or an error telling how to install the ``netcdf`` extra."""
    try:
        import xarray
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading NetCDF files needs xarray and netCDF4, which are not installed: {INSTALL_HINT}"
        ) from exc
    return xarray


NETCDF_ENGINES = (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf"))
"""xarray engines that read NetCDF-4 files, in order of preference, and the module each needs."""


def netcdf_engine() -> str:
    """The first installed of :data:`NETCDF_ENGINES`, named explicitly when opening files.

    xarray guesses the engine from a file's first bytes when none is named, so a damaged file
    would read as "no installed backend"; with the engine named, it reads as a damaged file.
    """
    for engine, module in NETCDF_ENGINES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return engine
    raise MissingDependencyError(
        f"reading NetCDF files needs netCDF4 (or h5netcdf): no NetCDF backend is installed; {INSTALL_HINT}"
    )


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching relative POSIX paths of ``pattern``, capturing ``{unit}`` as group ``unit``."""
    if pattern.count("{unit}") != 1:
        raise InputError(f"pattern: {pattern!r} must contain '{{unit}}' exactly once (where the unit id is)")
    parts = []
    for piece in re.split(r"(\{unit\}|\*\*/|\*|\?)", pattern):
        if piece == "{unit}":
            parts.append(r"(?P<unit>[^/]+?)")
        elif piece == "**/":
            parts.append(r"(?:[^/]+/)*")
        elif piece == "*":
            parts.append(r"[^/]*")
        elif piece == "?":
            parts.append(r"[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


def _coarsest(times: np.ndarray) -> np.ndarray:
    """``times`` at the coarsest of day, hour, minute, second resolution that keeps every value."""
    for unit in ("D", "h", "m", "s"):
        converted = times.astype(f"datetime64[{unit}]")
        if np.array_equal(converted.astype(times.dtype), times):
            return converted
    return times


class PerUnitNetCDF(FolderDataset):
    """Time series from one NetCDF file per unit plus attributes from CSV files.

    See the module documentation for the layout and the rules.

    Examples
    --------
    >>> ds = PerUnitNetCDF.from_config(
    ...     {"root": "Caravan", "pattern": "timeseries/netcdf/camels/{unit}.nc",
    ...      "variables": ["total_precipitation_sum", "streamflow"],
    ...      "attributes_files": ["attributes/camels/attributes_caravan_camels.csv"],
    ...      "attributes": ["aridity"]}
    ... ).load()  # doctest: +SKIP
    """

    cache_name: ClassVar[str] = "netcdf_units"
    default_metrics: ClassVar[tuple[str, ...]] = HYDROLOGY_METRICS
    """Metrics ``dmg evaluate`` reports when the run config lists none."""
    cache_version: ClassVar[int] = 2

    class Config(FolderDatasetOptions):
        """Options of the per-unit NetCDF dataset."""

        root: str = Field(description="Folder the patterns are relative to.", json_schema_extra={"dmg_role": "path"})
        pattern: str = Field(
            "timeseries/netcdf/*/{unit}.nc",
            description="Glob of the unit files relative to root; '{unit}' marks the unit id in the path.",
        )
        units: list[str] | str | None = Field(
            None,
            description="Unit ids, or a text file with one id per line; default: every file matching the pattern.",
            json_schema_extra={"dmg_role": "units"},
        )
        variables: list[str] | None = Field(
            None, description="Variables to read; default: every variable along the time coordinate."
        )
        rename: dict[str, str] = Field(default_factory=dict, description="File variable name -> dataset name.")
        time: str | None = Field(None, description="Name of the time coordinate; default: the only datetime one.")
        start: dt.date | None = Field(
            None,
            description="First date; default: the latest first date over the units.",
            json_schema_extra={"dmg_role": "start"},
        )
        end: dt.date | None = Field(
            None,
            description="Last date (inclusive, whole day); default: the earliest last date over the units.",
            json_schema_extra={"dmg_role": "end"},
        )
        attributes_files: list[str] = Field(
            default_factory=lambda: ["attributes/*/attributes_*.csv"],
            description="Globs of the attribute CSV files, relative to root.",
        )
        id_column: str = Field("gauge_id", description="Column of the attribute files holding the unit id.")
        attributes: list[str] = Field(default_factory=list, description="Numeric attributes to read.")

    # ----------------------------------------------------------------- locating files

    def _unit_list_file(self) -> Path | None:
        if not isinstance(self.config.units, str):
            return None
        path = Path(self.config.units).expanduser()
        if not path.is_absolute() and not path.is_file() and (self.root / path).is_file():
            path = self.root / path
        if not path.is_file():
            raise InputError(f"units: unit list file {path} does not exist (give several ids as a list)")
        return path

    def locate(self) -> tuple[list[str], dict[str, Path], list[Path]]:
        """Unit ids, their files and the attribute files."""
        if not self.root.is_dir():
            raise InputError(f"root: folder {self.root} does not exist")
        regex = pattern_regex(self.config.pattern)
        found: dict[str, Path] = {}
        for path in sorted(self.root.glob(self.config.pattern.replace("{unit}", "*"))):
            match = regex.match(path.relative_to(self.root).as_posix())
            if match is None:
                continue
            unit = match.group("unit")
            if unit in found:
                raise InputError(f"pattern: two files for unit {unit!r}: {found[unit]} and {path}")
            found[unit] = path
        if not found:
            raise InputError(f"pattern: no file matches {self.config.pattern!r} under {self.root}")
        listed = self._unit_list_file()
        if listed is not None:
            lines = read_text(listed, "units: unit list file").splitlines()
            units = [ln.split("#", 1)[0].strip() for ln in lines]
            units = [u for u in units if u]
        elif self.config.units is not None:
            units = [str(u) for u in self.config.units]
        else:
            units = sorted(found)
        if not units:
            raise InputError("units: no unit id given")
        for unit in units:
            if unit not in found:
                hint = get_close_matches(unit, list(found), n=1, cutoff=0.6)
                close = f" Closest: {hint[0]!r}." if hint else ""
                raise InputError(
                    f"units: no file for unit {unit!r} (pattern {self.config.pattern!r} under {self.root}, "
                    f"{len(found)} units found).{close}"
                )
        attribute_files: list[Path] = []
        if self.config.attributes:
            for pattern in self.config.attributes_files:
                attribute_files += sorted(self.root.glob(pattern))
            if not attribute_files:
                raise InputError(
                    f"attributes_files: no file matches {self.config.attributes_files} under {self.root}, "
                    f"but attributes {self.config.attributes} were requested"
                )
        return units, {u: found[u] for u in units}, attribute_files

    def source_files(self) -> list[Path]:
        """The unit list file (if any), each unit's NetCDF file and the attribute files."""
        units, files, attribute_files = self.locate()
        listed = self._unit_list_file()
        return ([listed] if listed else []) + [files[u] for u in units] + attribute_files

    # ----------------------------------------------------------------- reading

    def _read(
        self, xr: Any, path: Path, with_values: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
        """Times, the chosen variables (float64; empty unless ``with_values``) and their ``units`` from one file."""
        engine = netcdf_engine()
        try:
            opened = xr.open_dataset(path, engine=engine)
        except ImportError as exc:
            raise MissingDependencyError(f"cannot open {path}: no NetCDF backend ({exc}); {INSTALL_HINT}") from exc
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise InputError(f"{path} is not a readable NetCDF file ({reason})") from None
        except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
            raise InputError(f"cannot read NetCDF file {path}: {exc}") from None
        try:
            with opened as ds:
                return self._extract(ds, path, with_values)
        except DmgError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"cannot read NetCDF file {path}: {exc}") from None

    def _extract(
        self, ds: Any, path: Path, with_values: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
        """Times, the chosen variables (empty unless ``with_values``) and their units from the open file ``ds``."""
        time_name = self.config.time
        if time_name is None:
            candidates = [n for n in ds.coords if ds[n].dtype.kind == "M"]
            if len(candidates) != 1:
                raise InputError(
                    f"time: NetCDF file {path} has {len(candidates)} datetime coordinates {candidates}; "
                    "name the time coordinate with the 'time' option"
                )
            time_name = candidates[0]
        elif time_name not in ds.variables:
            hint = get_close_matches(time_name, [str(n) for n in ds.variables], n=1)
            close = f" (closest: {hint[0]!r})" if hint else ""
            raise InputError(f"time: NetCDF file {path} has no coordinate {time_name!r}{close}")
        times = np.asarray(ds[time_name].values)
        if times.dtype.kind != "M" or times.ndim != 1:
            raise InputError(
                f"time: {time_name!r} in {path} is not a 1-D datetime coordinate (dtype {times.dtype}); "
                "non-standard calendars are not supported"
            )
        along_time = [str(n) for n, v in ds.data_vars.items() if v.dims == (time_name,)]
        names = self.config.variables if self.config.variables is not None else along_time
        if not names:
            raise InputError(f"variables: NetCDF file {path} has no variable along {time_name!r}")
        values, units = {}, {}
        for name in names:
            if name not in ds.data_vars:
                hint = get_close_matches(name, [str(n) for n in ds.data_vars], n=1)
                close = f" Closest: {hint[0]!r}." if hint else ""
                raise InputError(
                    f"variables: NetCDF file {path} has no variable {name!r}.{close} Variables: {list(ds.data_vars)}"
                )
            if ds[name].dims != (time_name,):
                raise InputError(
                    f"variables: {name!r} in {path} has dimensions {ds[name].dims}, expected only ({time_name!r},)"
                )
            values[name] = np.asarray(ds[name].values if with_values else (), dtype=np.float64)
            if "units" in ds[name].attrs:
                units[name] = str(ds[name].attrs["units"])
        return _coarsest(times), values, units

    def build(self) -> ArrayDataset:
        """Read every unit file, align them on one time axis and join the attributes."""
        xr = import_xarray()
        units, files, attribute_files = self.locate()
        read = {u: self._read(xr, files[u]) for u in units}
        names = self._variable_names(units, files, read)
        dates, step = self._time_axis(units, files, {u: r[0] for u, r in read.items()})
        out = self._place(units, read, names, dates, step)
        attributes, reference = self._attributes(units, attribute_files)
        return ArrayDataset(
            data=np.stack([out[name] for name in out], axis=2).astype(np.float32),
            variables=tuple(out),
            unit_ids=tuple(units),
            dates=dates,
            attributes=np.stack([attributes[n] for n in attributes], axis=1) if attributes else None,
            attribute_names=tuple(attributes),
            units=self._physical_units(units, read),
            reference_attributes=reference,
        )

    def open(self) -> UnitSource:
        """The units, each unit's file read when it is selected.

        From the cache file when there is one (read lazily too); otherwise every unit file is opened
        once for its times, variable names and units (not its values), and the attribute files are read.
        """
        cached = self._open_cache()
        return cached if cached is not None else NetCDFUnitSource(self)

    def _variable_names(self, units: list[str], files: dict[str, Path], read: dict[str, _Read]) -> list[str]:
        """The variables of the files (the same in every file), checked against ``rename``."""
        names = list(read[units[0]][1])
        for unit in units[1:]:
            if list(read[unit][1]) != names:
                raise InputError(
                    f"variables: {files[unit]} has variables {list(read[unit][1])} but {files[units[0]]} has {names}; "
                    "list the variables to read with the 'variables' option"
                )
        unknown = [k for k in self.config.rename if k not in names]
        if unknown:
            raise InputError(f"rename: {unknown} are not among the variables read: {names}")
        return names

    def _place(
        self, units: Sequence[str], read: dict[str, _Read], names: list[str], dates: np.ndarray, step: np.timedelta64
    ) -> dict[str, np.ndarray]:
        """Every variable ``[unit, time]`` of ``units`` on ``dates`` (float64), by its dataset name."""
        out = {self.config.rename.get(n, n): np.full((len(units), len(dates)), np.nan) for n in names}
        for i, unit in enumerate(units):
            times, values, _ = read[unit]
            offset = (times - dates[0]) // step
            inside = (offset >= 0) & (offset < len(dates))
            for name in names:
                out[self.config.rename.get(name, name)][i, offset[inside].astype(np.int64)] = values[name][inside]
        return out

    def _physical_units(self, units: list[str], read: dict[str, _Read]) -> dict[str, str]:
        """Each variable's ``units`` attribute, from the first file that has one."""
        physical: dict[str, str] = {}
        for unit in units:
            for name, unit_text in read[unit][2].items():
                physical.setdefault(self.config.rename.get(name, name), unit_text)
        return physical

    def _attributes(self, units: list[str], attribute_files: list[Path]) -> tuple[dict[str, np.ndarray], Any]:
        """The attributes ``name -> [unit]`` and the reference attributes (``None`` without attributes)."""
        if not self.config.attributes:
            return {}, None
        tables = [read_table(p, ",", self.config.id_column) for p in attribute_files]
        attributes = select_attributes(tables, self.config.attributes, units)
        return attributes, reference_attributes(tables, tuple(attributes))

    def _time_axis(
        self, units: list[str], files: dict[str, Path], times: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.timedelta64]:
        first_unit = units[0]
        reference = times[first_unit]
        if len(reference) < 2:
            raise InputError(f"time: {files[first_unit]} has fewer than two time steps; cannot infer the step")
        step = reference[1] - reference[0]
        for unit in units:
            t = times[unit]
            steps = np.diff(t)
            if len(t) < 2 or np.any(steps <= np.timedelta64(0)) or np.any(steps % step != np.timedelta64(0)):
                raise InputError(
                    f"time: {files[unit]} does not have increasing times on the step {step} of {files[first_unit]}"
                )
        resolution = np.result_type(*[times[u].dtype for u in units])
        first = {u: times[u][0].astype(resolution) for u in units}
        last = {u: times[u][-1].astype(resolution) for u in units}
        step = step.astype(np.dtype(resolution.str.replace("M8", "m8")))
        common_start, common_end = max(first.values()), min(last.values())
        start = np.datetime64(self.config.start).astype(resolution) if self.config.start else common_start
        if self.config.end:
            end = (np.datetime64(self.config.end, "D") + np.timedelta64(1, "D")).astype(resolution) - step
        else:
            end = common_end
        outside = [u for u in units if start < first[u] or end > last[u]]
        if outside or end < start:
            shown = "; ".join(f"{u}: {first[u]} to {last[u]} ({files[u]})" for u in outside[:5])
            more = f" (and {len(outside) - 5} more units)" if len(outside) > 5 else ""
            common = f"{common_start} to {common_end}" if common_start <= common_end else "none (no overlap)"
            raise InputError(
                f"start/end: the period {start} to {end} is outside the record of {shown or 'the units'}{more}. "
                f"Dates available for all units: {common}"
            )
        for unit in units:
            if np.any((times[unit].astype(resolution) - start) % step != np.timedelta64(0)):
                raise InputError(f"time: the times of {files[unit]} are not on the grid of step {step} from {start}")
        return np.arange(start, end + step, step), step


class NetCDFUnitSource(FileUnitSource):
    """The units of a :class:`PerUnitNetCDF`, each unit's file read when it is selected.

    Opening reads every file's times, variable names and ``units`` attributes (not the values) and
    the attribute files. :meth:`select_units` gives what ``PerUnitNetCDF.build().select_units(ids)``
    gives; a fault in a file's values is found when its unit is selected.
    """

    def __init__(self, dataset: PerUnitNetCDF) -> None:
        self.dataset = dataset
        self._xr = import_xarray()
        units, self._files, attribute_files = dataset.locate()
        scan = {u: dataset._read(self._xr, self._files[u], with_values=False) for u in units}
        self._names = dataset._variable_names(units, self._files, scan)
        dates, self._step = dataset._time_axis(units, self._files, {u: r[0] for u, r in scan.items()})
        attributes, reference = dataset._attributes(units, attribute_files)
        super().__init__(
            without_values(
                tuple(dataset.config.rename.get(n, n) for n in self._names),
                units,
                dates,
                attributes=np.stack([attributes[n] for n in attributes], axis=1) if attributes else None,
                attribute_names=tuple(attributes),
                units=dataset._physical_units(units, scan),
                reference_attributes=reference,
            )
        )

    def read_values(self, unit_ids: list[str]) -> dict[str, np.ndarray]:
        """The variables of ``unit_ids``, each read from its own file."""
        read = {u: self.dataset._read(self._xr, self._files[u]) for u in unit_ids}
        for unit in unit_ids:
            if list(read[unit][1]) != self._names:
                raise InputError(
                    f"variables: {self._files[unit]} has variables {list(read[unit][1])} but the files have "
                    f"{self._names}; list the variables to read with the 'variables' option"
                )
        return self.dataset._place(unit_ids, read, self._names, self.template.dates, self._step)
