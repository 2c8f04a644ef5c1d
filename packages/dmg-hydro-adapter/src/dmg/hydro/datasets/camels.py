"""CAMELS-US (Newman et al., 2015; Addor et al., 2017) as a dmg dataset component.

Reads the official download as it unpacks, for any set of gauges::

    <root>/basin_mean_forcing/{daymet,maurer,nldas}/<HUC02>/<gauge>_lump_*_forcing_leap.txt
    <root>/usgs_streamflow/<HUC02>/<gauge>_streamflow_qc.txt
    <root>/camels_attributes_v2.0/camels_{clim,geol,hydro,name,soil,topo,vege}.txt

Files are found by globbing over the HUC folders, so the full 671-basin download and any
subset of it work alike. Parsing uses numpy only.

Variables (``[unit, time]``, daily, dates ``datetime64[D]``)
    ============== ======= =========================================================
    ``prcp``       mm/day  precipitation
    ``tmax``       °C      daily maximum air temperature
    ``tmin``       °C      daily minimum air temperature
    ``tmean``      °C      ``(tmax + tmin) / 2``
    ``srad``       W/m²    shortwave radiation (Daymet: mean over the daylight period)
    ``vp``         Pa      vapour pressure
    ``dayl``       s       day length
    ``swe``        mm      snow water equivalent
    ``pet``        mm/day  potential evapotranspiration (option ``pet``; absent for ``none``)
    ``streamflow`` mm/day  observed discharge, see below
    ============== ======= =========================================================

Static attributes (``[unit]``)
    ``header_lat`` (degrees north), ``header_elev`` (m above sea level) and ``header_area``
    (m²): the three header lines of the forcing file; then every name in the ``attributes``
    option, read from the attribute files (``;``-separated, keyed by ``gauge_id`` as text).
    ``NA`` cells become NaN. Text-valued attributes (``geol_1st_class``, ``dom_land_cover``,
    ``high_prec_timing``, ...) are refused with an error naming them.

Streamflow
    The USGS files give discharge in ft³/s. It is converted to a depth over the basin with
    the forcing-header area ``A`` (m²)::

        q [mm/day] = q [ft³/s] × 0.028316846592 m³/ft³ × 86400 s/day × 1000 mm/m / A [m²]

    (≈ 2446575.6 / A). ``-999`` values and any row whose quality flag contains ``M``
    (missing) become NaN, as do negative values; dates without a row in the file are NaN.

Storage
    Variables are float32 (the files have two decimals), attributes float64.

Missing values
    ``-999`` in a forcing file becomes NaN. The requested period must lie inside every
    gauge's forcing record (an error names the gauge, the file and its dates otherwise);
    streamflow outside its record is NaN, so periods without observations can be simulated.

PET
    ``hargreaves``: FAO-56 eq. 52 from ``tmin``, ``tmax``, the header latitude and the day of
    year (:func:`dmg.hydro.pet.hargreaves`). ``priestley_taylor``: from ``tmin``, ``tmax``,
    ``srad × dayl``, ``vp``, the header latitude and elevation
    (:func:`dmg.hydro.pet.priestley_taylor`). The CAMELS ``maurer`` and ``nldas`` files repeat
    the same value as ``tmax`` and ``tmin``; Hargreaves needs the daily range, so it is
    refused for such files (use ``priestley_taylor`` or the ``daymet`` forcing).

Reading gauges as they are selected
    ``open()`` (what ``dmg simulate`` uses) gives the same gauges, dates and values as ``load()``
    without holding them all: the cache file when there is one, read a chunk of gauges at a time,
    else a :class:`CamelsUnitSource`, which parses each gauge's forcing and streamflow files when
    the gauge is selected (after one pass over the forcing files for their dates and headers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from dmg.core.data import ArrayDataset
from dmg.core.data.lazy import FileUnitSource, without_values
from dmg.core.errors import InputError
from dmg.hydro.datasets._tables import AttributeTable, read_table, read_text, reference_attributes, select_attributes
from dmg.hydro.datasets.cache import FolderDataset, FolderDatasetOptions
from dmg.hydro.metrics import HYDROLOGY_METRICS
from dmg.hydro.pet import hargreaves, priestley_taylor

if TYPE_CHECKING:
    from dmg.core.simulation import UnitSource

CUBIC_METRES_PER_CUBIC_FOOT = 0.028316846592
"""m³ in one ft³ (exact by the definition of the foot, 0.3048 m)."""
SECONDS_PER_DAY = 86400.0
MILLIMETRES_PER_METRE = 1000.0
CFS_TO_MM_DAY_TIMES_AREA = CUBIC_METRES_PER_CUBIC_FOOT * SECONDS_PER_DAY * MILLIMETRES_PER_METRE
"""ft³/s → mm/day over a basin of area A (m²): multiply by this and divide by A."""
MISSING_VALUE = -999.0
"""Missing-value marker of the CAMELS text files."""

FORCING_DIR = "basin_mean_forcing"
STREAMFLOW_DIR = "usgs_streamflow"
FORCING_GLOB = "*/*_lump_*_forcing_leap.txt"
STREAMFLOW_GLOB = "*/*_streamflow_qc.txt"
ATTRIBUTE_GLOB = "camels_*.txt"
FORCING_PRODUCTS = ("daymet", "maurer", "nldas")

FORCING_COLUMNS = ("dayl", "prcp", "srad", "swe", "tmax", "tmin", "vp")
"""Forcing-file columns kept, by their name in lower case without the unit in brackets."""
DATE_COLUMNS = ("year", "mnth", "day")
HEADER_ATTRIBUTES = ("header_lat", "header_elev", "header_area")
UNITS = {
    "prcp": "mm/day",
    "tmax": "degC",
    "tmin": "degC",
    "tmean": "degC",
    "srad": "W/m2",
    "vp": "Pa",
    "dayl": "s",
    "swe": "mm",
    "pet": "mm/day",
    "streamflow": "mm/day",
    "header_lat": "degrees_north",
    "header_elev": "m",
    "header_area": "m2",
}
"""Physical unit of every variable and header attribute."""


def cfs_to_mm_per_day(discharge_cfs: np.ndarray, area_m2: float | np.ndarray) -> np.ndarray:
    """Discharge in ft³/s as a depth over a basin of ``area_m2`` (m²), in mm/day."""
    return np.asarray(discharge_cfs, dtype=np.float64) * CFS_TO_MM_DAY_TIMES_AREA / area_m2


def _dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """``datetime64[D]`` from integer year, month (1-12) and day (1-31) arrays."""
    months = (year - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (month - 1).astype("timedelta64[M]")
    out = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    bad = (month < 1) | (month > 12) | (day < 1) | (out.astype("datetime64[M]") != months)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"invalid date {int(year[i])}-{int(month[i])}-{int(day[i])} (row {i + 1})")
    return out


def day_of_year(dates: np.ndarray) -> np.ndarray:
    """Day of year (1-366) of ``datetime64[D]`` dates, as float64."""
    dates = dates.astype("datetime64[D]")
    return (dates - dates.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float64) + 1.0


# --------------------------------------------------------------------------- single files


@dataclass(frozen=True)
class ForcingRecord:
    """One parsed forcing file: header values, dates and the forcing columns."""

    path: Path
    lat: float
    elev: float
    area: float
    dates: np.ndarray
    columns: dict[str, np.ndarray]


def read_forcing(path: Path) -> ForcingRecord:
    """Parse one CAMELS forcing file (three header lines, a column-name line, daily rows).

    ``-999`` values become NaN. Errors name the file and the line at fault.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    parts = text.split("\n", 4)
    if len(parts) < 5:
        raise InputError(f"forcing file {path} is too short: expected 3 header lines, column names and data")
    header = []
    for line, what in zip(parts[:3], ("latitude", "elevation", "area")):
        try:
            header.append(float(line.strip()))
        except ValueError:
            raise InputError(
                f"forcing file {path}: header line for the {what} is {line.strip()!r}, not a number"
            ) from None
    names = [tok.lower().split("(")[0] for tok in parts[3].split()]
    missing = [c for c in (*DATE_COLUMNS, *FORCING_COLUMNS) if c not in names]
    if missing:
        raise InputError(f"forcing file {path}: no column(s) {missing} in its column line {parts[3].strip()!r}")
    tokens = parts[4].split()
    if len(tokens) % len(names):
        lines = [ln for ln in parts[4].splitlines() if ln.strip()]
        bad = next((i for i, ln in enumerate(lines) if len(ln.split()) != len(names)), 0)
        raise InputError(
            f"forcing file {path}, line {bad + 5}: {len(lines[bad].split())} values but {len(names)} columns"
        )
    try:
        table = np.array(tokens, dtype=np.float64).reshape(-1, len(names))
    except ValueError as exc:
        raise InputError(f"forcing file {path}: a value is not a number ({exc})") from None
    table[table == MISSING_VALUE] = np.nan
    col = {n: table[:, names.index(n)] for n in (*DATE_COLUMNS, *FORCING_COLUMNS)}
    try:
        dates = _dates(*(col[c].astype(np.int64) for c in DATE_COLUMNS))
    except (ValueError, OverflowError) as exc:
        raise InputError(f"forcing file {path}: {exc}") from None
    lat, elev, area = header
    if not area > 0:
        raise InputError(f"forcing file {path}: basin area {area} m² in the header must be positive")
    return ForcingRecord(path, lat, elev, area, dates, {c: col[c] for c in FORCING_COLUMNS})


def read_streamflow(path: Path, gauge: str) -> tuple[np.ndarray, np.ndarray]:
    """Dates and discharge (ft³/s) of one USGS file: ``gauge year month day Q flag`` rows.

    ``-999``, negative values and rows flagged ``M`` (missing) give NaN.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tokens = text.split()
    if len(tokens) == 6 * len(lines):
        rows = [tokens[i::6] for i in range(6)]
    else:  # a row without a flag, or with extra cells: parse line by line
        rows = [[], [], [], [], [], []]
        for number, line in enumerate(lines, start=1):
            cells = line.split()
            if len(cells) not in (5, 6):
                raise InputError(f"streamflow file {path}, line {number}: expected 'gauge year month day Q flag'")
            for i in range(6):
                rows[i].append(cells[i] if i < len(cells) else "")
    if not lines:
        raise InputError(f"streamflow file {path} is empty")
    others = {g for g in rows[0] if g != gauge}
    if others:
        raise InputError(f"streamflow file {path} is for gauge {gauge!r} but has rows for {sorted(others)[:3]}")
    try:
        ymd = [np.array(r, dtype=np.int64) for r in rows[1:4]]
        q = np.array(rows[4], dtype=np.float64)
        dates = _dates(*ymd)
    except (ValueError, OverflowError) as exc:
        raise InputError(f"streamflow file {path}: {exc}") from None
    missing = np.array(["M" in f for f in rows[5]], dtype=bool)
    q[missing | (q == MISSING_VALUE) | (q < 0)] = np.nan
    return dates, q


# --------------------------------------------------------------------------- the component


def _period(dates: np.ndarray) -> str:
    return f"{dates[0]} to {dates[-1]}" if len(dates) else "no dates"


def _gauge_hint(gauge: str, known: Sequence[str]) -> str:
    hint = get_close_matches(gauge, list(known), n=1, cutoff=0.6)
    text = f" Closest gauge id: {hint[0]!r}." if hint else ""
    if gauge.isdigit() and len(gauge) < 8:
        text += " CAMELS gauge ids have 8 digits: was a leading zero lost (quote ids in YAML)?"
    return text


ALL_GAUGES = "all"
"""The ``gauges`` value that selects every gauge found under the root."""


class CamelsUS(FolderDataset):
    """CAMELS-US basin-mean forcings, streamflow and attributes as an :class:`~dmg.core.data.ArrayDataset`.

    See the module documentation for the variables, units, conversions and missing values.

    Examples
    --------
    >>> ds = CamelsUS.from_config(
    ...     {"root": "camels", "gauges": ["01022500"], "start": "2000-01-01", "end": "2002-12-31"}
    ... ).load()  # doctest: +SKIP
    >>> ds.variable("streamflow").shape  # [unit, time]  # doctest: +SKIP
    (1, 1096)
    """

    cache_name: ClassVar[str] = "camels_us"
    default_metrics: ClassVar[tuple[str, ...]] = HYDROLOGY_METRICS
    """Metrics ``dmg evaluate`` reports when the run config lists none."""
    cache_version: ClassVar[int] = 2

    class Config(FolderDatasetOptions):
        """Options of the CAMELS-US dataset."""

        root: str = Field(
            description="The CAMELS-US folder holding basin_mean_forcing/, usgs_streamflow/, ...",
            json_schema_extra={"dmg_role": "path"},
        )
        gauges: list[str] | str = Field(
            description="Gauge ids as quoted strings (leading zeros kept), a text file with one id per line "
            "('#' starts a comment; a relative path is tried from the working directory, then from root), or "
            "'all': every gauge with both a forcing and a streamflow file under root.",
            json_schema_extra={"dmg_role": "units"},
        )
        forcing: Literal["daymet", "maurer", "nldas"] = Field("daymet", description="Forcing product.")
        start: dt.date | None = Field(
            None,
            description="First date; default: latest first date over the gauges.",
            json_schema_extra={"dmg_role": "start"},
        )
        end: dt.date | None = Field(
            None,
            description="Last date; default: earliest last date over the gauges.",
            json_schema_extra={"dmg_role": "end"},
        )
        attributes: list[str] = Field(
            default_factory=list, description="Numeric attributes to join from the attribute files (e.g. area_gages2)."
        )
        attributes_dir: str = Field(
            "camels_attributes_v2.0", description="Folder of the camels_*.txt attribute files, relative to root."
        )
        pet: Literal["hargreaves", "priestley_taylor", "none"] = Field(
            "hargreaves", description="Potential evapotranspiration added as variable 'pet' (mm/day)."
        )

        @field_validator("gauges", mode="before")
        @classmethod
        def _text_ids(cls, value: Any) -> Any:
            if isinstance(value, (list, tuple)):
                numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
                if numbers:
                    raise ValueError(
                        f"gauge ids must be strings, got the number(s) {numbers[:3]}: quote them in YAML "
                        "('01022500'), a number loses its leading zero"
                    )
                if not value:
                    raise ValueError("give at least one gauge id")
            return value

    # ----------------------------------------------------------------- locating files

    def _gauge_file(self) -> Path | None:
        if not isinstance(self.config.gauges, str) or self.config.gauges == ALL_GAUGES:
            return None
        path = Path(self.config.gauges).expanduser()
        if not path.is_absolute() and not path.is_file() and (self.root / path).is_file():
            path = self.root / path
        if not path.is_file():
            hint = " (a single gauge id must be given as a list: ['01022500'])" if self.config.gauges.isdigit() else ""
            raise InputError(f"gauges: gauge list file {path} does not exist{hint}")
        return path

    def gauge_ids(self) -> list[str]:
        """The requested gauge ids, in order, as text."""
        if self.config.gauges == ALL_GAUGES:
            return self.locate()[0]
        path = self._gauge_file()
        if path is None:
            ids = [str(g).strip() for g in self.config.gauges]
        else:
            ids = []
            for line in read_text(path, "gauges: gauge list file").splitlines():
                text = line.split("#", 1)[0].strip()
                if text:
                    ids.append(text)
            if not ids:
                raise InputError(f"gauges: gauge list file {path} holds no gauge id")
        seen: set[str] = set()
        repeated = sorted({g for g in ids if g in seen or seen.add(g)})
        if repeated:
            raise InputError(f"gauges: gauge id(s) {repeated} are listed twice")
        return ids

    def _index(self, folder: Path, pattern: str, what: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in sorted(folder.glob(pattern)):
            gauge = path.name.split("_", 1)[0]
            if gauge in found:
                raise InputError(f"two {what} files for gauge {gauge!r}: {found[gauge]} and {path}")
            found[gauge] = path
        return found

    def _folder(self, *parts: str) -> Path:
        if not self.root.is_dir():
            raise InputError(f"root: the CAMELS folder {self.root} does not exist")
        folder = self.root.joinpath(*parts)
        if not folder.is_dir():
            siblings = sorted(p.name for p in folder.parent.iterdir() if p.is_dir()) if folder.parent.is_dir() else []
            raise InputError(f"root: {self.root} has no folder {'/'.join(parts)} (found: {siblings or 'nothing'})")
        return folder

    def locate(self) -> tuple[list[str], dict[str, Path], dict[str, Path], list[Path]]:
        """Gauge ids, their forcing and streamflow files, and the attribute files to read.

        Raises
        ------
        InputError
            Naming the missing folder, or the gauge without a file (with the closest id).
        """
        forcing_dir = self._folder(FORCING_DIR, self.config.forcing)
        flow_dir = self._folder(STREAMFLOW_DIR)
        forcing = self._index(forcing_dir, FORCING_GLOB, f"{self.config.forcing} forcing")
        flows = self._index(flow_dir, STREAMFLOW_GLOB, "streamflow")
        if self.config.gauges == ALL_GAUGES:
            gauges = sorted(set(forcing) & set(flows))
            if not gauges:
                raise InputError(
                    f"gauges: 'all' found no gauge with both a forcing file and a streamflow file in {self.root}"
                )
        else:
            gauges = self.gauge_ids()
        for gauge in gauges:
            if gauge not in forcing:
                raise InputError(
                    f"gauges: no {self.config.forcing} forcing file for gauge {gauge!r} "
                    f"(searched {forcing_dir}/{FORCING_GLOB}, {len(forcing)} gauges found)."
                    + _gauge_hint(gauge, forcing)
                )
            if gauge not in flows:
                raise InputError(
                    f"gauges: no streamflow file for gauge {gauge!r} "
                    f"(searched {flow_dir}/{STREAMFLOW_GLOB}, {len(flows)} gauges found)." + _gauge_hint(gauge, flows)
                )
        attribute_files: list[Path] = []
        if self.config.attributes:
            attr_dir = self._folder(self.config.attributes_dir)
            attribute_files = sorted(attr_dir.glob(ATTRIBUTE_GLOB))
            if not attribute_files:
                raise InputError(f"attributes: no {ATTRIBUTE_GLOB} files in {attr_dir}")
        return (
            gauges,
            {g: forcing[g] for g in gauges},
            {g: flows[g] for g in gauges},
            attribute_files,
        )

    def source_files(self) -> list[Path]:
        """The gauge list file (if any), each gauge's forcing and streamflow file, the attribute files."""
        gauges, forcing, flows, attribute_files = self.locate()
        listed = self._gauge_file()
        return (
            ([listed] if listed else []) + [forcing[g] for g in gauges] + [flows[g] for g in gauges] + attribute_files
        )

    # ----------------------------------------------------------------- assembling

    def _time_axis(self, spans: dict[str, tuple[np.datetime64, np.datetime64, Path]]) -> np.ndarray:
        """The dates from ``start`` to ``end``, given each gauge's first and last date and forcing file."""
        first = {g: span[0] for g, span in spans.items()}
        last = {g: span[1] for g, span in spans.items()}
        common_start, common_end = max(first.values()), min(last.values())
        start = np.datetime64(self.config.start, "D") if self.config.start else common_start
        end = np.datetime64(self.config.end, "D") if self.config.end else common_end
        outside = [g for g in spans if start < first[g] or end > last[g]]
        if outside or end < start:
            shown = "; ".join(f"{g}: {first[g]} to {last[g]} ({spans[g][2]})" for g in outside[:5])
            more = f" (and {len(outside) - 5} more gauges)" if len(outside) > 5 else ""
            common = (
                f"{common_start} to {common_end}" if common_start <= common_end else "none (the records do not overlap)"
            )
            raise InputError(
                f"start/end: the period {start} to {end} is outside the {self.config.forcing} forcing record of "
                f"{shown or 'the gauges'}{more}. Dates available for all requested gauges: {common}"
            )
        return np.arange(start, end + np.timedelta64(1, "D"), dtype="datetime64[D]")

    def build(self) -> ArrayDataset:
        """Parse the files of the requested gauges and assemble the dataset."""
        gauges, forcing_files, flow_files, attribute_files = self.locate()
        records = {g: read_forcing(forcing_files[g]) for g in gauges}
        dates = self._time_axis({g: _span(r) for g, r in records.items()})
        out = self._variables(gauges, records, flow_files, dates)
        headers = {g: (r.lat, r.elev, r.area) for g, r in records.items()}
        attributes, reference = self._attributes(gauges, headers, attribute_files)
        return ArrayDataset(
            data=np.stack([out[name] for name in out], axis=2).astype(np.float32),
            variables=tuple(out),
            unit_ids=tuple(gauges),
            dates=dates,
            attributes=np.stack([attributes[name] for name in attributes], axis=1),
            attribute_names=tuple(attributes),
            units={k: v for k, v in UNITS.items() if k in out or k in attributes},
            reference_attributes=reference,
        )

    def open(self) -> UnitSource:
        """The gauges, each gauge's forcing and streamflow files read when it is selected.

        From the cache file when there is one (read lazily too); otherwise every forcing file is
        parsed once, one at a time, for its dates and header, and the attribute files are read.
        """
        cached = self._open_cache()
        return cached if cached is not None else CamelsUnitSource(self)

    def _variables(
        self,
        gauges: list[str],
        records: dict[str, ForcingRecord],
        flow_files: dict[str, Path],
        dates: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Every variable ``[unit, time]`` of ``gauges`` on ``dates``, in the dataset's order (float64)."""
        n_units, n_time = len(gauges), len(dates)
        variables = {name: np.full((n_units, n_time), np.nan) for name in FORCING_COLUMNS}
        streamflow = np.full((n_units, n_time), np.nan)
        for i, gauge in enumerate(gauges):
            record = records[gauge]
            where, take = _placement(record.dates, dates, f"forcing file {record.path}")
            for name in FORCING_COLUMNS:
                variables[name][i, where] = record.columns[name][take]
            flow_dates, q_cfs = read_streamflow(flow_files[gauge], gauge)
            where, take = _placement(flow_dates, dates, f"streamflow file {flow_files[gauge]}")
            streamflow[i, where] = cfs_to_mm_per_day(q_cfs[take], record.area)
        lat = np.array([records[g].lat for g in gauges])
        elev = np.array([records[g].elev for g in gauges])

        out = {name: variables[name] for name in ("prcp", "tmax", "tmin")}
        out["tmean"] = (variables["tmax"] + variables["tmin"]) / 2.0
        out.update({name: variables[name] for name in ("srad", "vp", "dayl", "swe")})
        if self.config.pet != "none":
            out["pet"] = self._pet(gauges, records, variables, dates, lat, elev)
        out["streamflow"] = streamflow
        return out

    def variable_names(self) -> tuple[str, ...]:
        """The names of the variables, in the dataset's order."""
        pet = () if self.config.pet == "none" else ("pet",)
        return ("prcp", "tmax", "tmin", "tmean", "srad", "vp", "dayl", "swe", *pet, "streamflow")

    def _attributes(
        self, gauges: list[str], headers: dict[str, tuple[float, float, float]], attribute_files: list[Path]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The attributes ``name -> [unit]`` of ``gauges`` and the reference attributes.

        ``headers`` gives each gauge's latitude, elevation and area from its forcing file.
        """
        attributes = {name: np.array([headers[g][j] for g in gauges]) for j, name in enumerate(HEADER_ATTRIBUTES)}
        tables: list[AttributeTable] = []
        if self.config.attributes:
            clash = [a for a in self.config.attributes if a in HEADER_ATTRIBUTES]
            if clash:
                raise InputError(f"attributes: {clash} are always included (from the forcing header); remove them")
            tables = [read_table(p, ";", "gauge_id") for p in attribute_files]
            attributes.update(select_attributes(tables, self.config.attributes, gauges))
        known = {name: dict(zip(gauges, attributes[name].tolist())) for name in HEADER_ATTRIBUTES}
        return attributes, reference_attributes(tables, tuple(attributes), known)

    def _pet(
        self,
        gauges: list[str],
        records: dict[str, ForcingRecord],
        variables: dict[str, np.ndarray],
        dates: np.ndarray,
        lat: np.ndarray,
        elev: np.ndarray,
    ) -> np.ndarray:
        tmin, tmax = variables["tmin"], variables["tmax"]
        doy = day_of_year(dates)[None, :]
        if self.config.pet == "hargreaves":
            same = [g for i, g in enumerate(gauges) if np.all((tmax[i] == tmin[i]) | np.isnan(tmax[i]))]
            if same:
                raise InputError(
                    f"pet: Hargreaves needs the daily temperature range, but tmax equals tmin on every day in the "
                    f"{self.config.forcing} forcing of gauge(s) {same[:5]} (e.g. {records[same[0]].path}); "
                    "use pet: priestley_taylor, forcing: daymet, or pet: none"
                )
            return np.asarray(hargreaves(tmin, tmax, lat[:, None], doy))
        return np.asarray(
            priestley_taylor(
                tmin,
                tmax,
                variables["srad"],
                lat[:, None],
                elev[:, None],
                doy,
                day_length=variables["dayl"],
                vapor_pressure=variables["vp"],
            )
        )


def _span(record: ForcingRecord) -> tuple[np.datetime64, np.datetime64, Path]:
    """First and last date of a forcing file, and the file."""
    return record.dates.min(), record.dates.max(), record.path


class CamelsUnitSource(FileUnitSource):
    """The gauges of a :class:`CamelsUS`, each gauge's forcing and streamflow files read when selected.

    Opening parses every forcing file once, one at a time, for its dates and header (the default
    period is the one every gauge covers), and reads the attribute files. :meth:`select_units` gives
    what ``CamelsUS.build().select_units(ids)`` gives; a fault in a gauge's files is found when the
    gauge is selected.
    """

    def __init__(self, dataset: CamelsUS) -> None:
        self.dataset = dataset
        gauges, self._forcing_files, self._flow_files, attribute_files = dataset.locate()
        spans: dict[str, tuple[np.datetime64, np.datetime64, Path]] = {}
        headers: dict[str, tuple[float, float, float]] = {}
        for gauge in gauges:
            record = read_forcing(self._forcing_files[gauge])
            spans[gauge] = _span(record)
            headers[gauge] = (record.lat, record.elev, record.area)
        dates = dataset._time_axis(spans)
        attributes, reference = dataset._attributes(gauges, headers, attribute_files)
        names = dataset.variable_names()
        super().__init__(
            without_values(
                names,
                gauges,
                dates,
                attributes=np.stack([attributes[name] for name in attributes], axis=1),
                attribute_names=tuple(attributes),
                units={k: v for k, v in UNITS.items() if k in names or k in attributes},
                reference_attributes=reference,
            )
        )

    def read_values(self, unit_ids: list[str]) -> dict[str, np.ndarray]:
        """The variables of the gauges ``unit_ids``, from their forcing and streamflow files."""
        records = {g: read_forcing(self._forcing_files[g]) for g in unit_ids}
        return self.dataset._variables(unit_ids, records, self._flow_files, self.template.dates)


def _placement(file_dates: np.ndarray, axis: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions on ``axis`` (daily, contiguous) and in the file of the file rows inside the axis."""
    index = (file_dates - axis[0]).astype(np.int64)
    inside = (index >= 0) & (index < len(axis))
    where = index[inside]
    if np.any(np.diff(where) <= 0) and len(np.unique(where)) != len(where):
        seen, dup = np.unique(where, return_counts=True)
        raise InputError(f"{what} has more than one row for {axis[seen[dup > 1][0]]}")
    return where, np.flatnonzero(inside)
