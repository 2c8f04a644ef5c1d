""":class:`ArrayDataset`: time series of many units (basins, pixels, sites) and their static attributes."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dmg.core.data._names import DateLike, describe_missing, duplicates, to_datetime64
from dmg.core.errors import DataWarning, DmgError, InputError, ShapeError
from dmg.core.io import atomic_open

FORMAT_VERSION = 1
"""Version of the ``.npz`` layout written by :meth:`ArrayDataset.save`."""


def _as_names(values: Sequence[Any], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InputError(f"{what} must be a sequence of names, got the single string {values!r}")
    names = tuple(str(v) for v in values)
    repeated = duplicates(names)
    if repeated:
        raise InputError(f"{what} must be unique; repeated: {', '.join(repr(r) for r in repeated)}")
    return names


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False, repr=False)
class ArrayDataset:
    """Time series of many units plus static attributes, held in memory as numpy arrays.

    The arrays are stored read-only (views of what was passed, so no copy is made);
    derive new datasets with :meth:`select_units`, :meth:`select_time` or
    :func:`dataclasses.replace`, which validate again.

    Parameters
    ----------
    data
        Time-varying variables, float ``[unit, time, variable]``, in physical units;
        NaN marks a missing value.
    variables
        Name of each variable (last axis of ``data``), unique.
    unit_ids
        Identifier of each unit (first axis), unique; stored as strings.
    dates
        ``datetime64`` of each step ``[time]``, strictly increasing with a constant step
        (daily, hourly, monthly, ...). Kept at the resolution given.
    attributes
        Static attributes ``[unit, attribute]``; ``None`` for none (zero columns).
    attribute_names
        Name of each attribute column, unique.
    units
        Physical unit of each variable or attribute by name (optional, e.g. ``{"prcp": "mm/day"}``).
    reference_attributes
        The same attribute columns for a reference population of units ``[reference unit, attribute]``
        (e.g. every basin of a collection's attribute files, not only those loaded), or ``None``.
        Normalizers may take attribute statistics from it (``data.roles.attribute_statistics``);
        NaN marks a value the population lacks.

    Examples
    --------
    >>> ds = ArrayDataset(data, ("prcp", "tmean", "Q"), ("01022500", "01030500"), dates)  # doctest: +SKIP
    >>> ds.select_time("1995-10-01", "2005-09-30").variable("Q").shape  # [unit, time]   # doctest: +SKIP
    """

    data: np.ndarray
    variables: tuple[str, ...]
    unit_ids: tuple[str, ...]
    dates: np.ndarray
    attributes: np.ndarray | None = None
    attribute_names: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    reference_attributes: np.ndarray | None = None
    _var_index: dict[str, int] = field(init=False, repr=False)
    _attr_index: dict[str, int] = field(init=False, repr=False)
    _unit_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise ShapeError(f"dataset data must be [unit, time, variable] (3 axes), got shape {data.shape}")
        if not np.issubdtype(data.dtype, np.floating):
            if not np.issubdtype(data.dtype, np.number) and data.dtype != np.bool_:
                raise InputError(f"dataset data must be numeric, got dtype {data.dtype}")
            data = data.astype(np.float64)
        variables = _as_names(self.variables, "variable names")
        unit_ids = _as_names(self.unit_ids, "unit ids")
        attribute_names = _as_names(self.attribute_names, "attribute names")
        n_units, n_time, n_vars = data.shape
        if len(variables) != n_vars:
            raise ShapeError(f"data has {n_vars} variables (last axis) but {len(variables)} names: {list(variables)}")
        if len(unit_ids) != n_units:
            raise ShapeError(f"data has {n_units} units (first axis) but {len(unit_ids)} unit ids")

        dates = np.asarray(self.dates)
        if dates.dtype.kind != "M":
            try:
                dates = dates.astype("datetime64")
            except (ValueError, TypeError) as exc:
                raise InputError(f"dates must be datetime64 or ISO date strings: {exc}") from exc
        if dates.ndim != 1 or len(dates) != n_time:
            raise ShapeError(f"data has {n_time} steps (second axis) but dates have shape {dates.shape}")
        self._check_dates(dates)

        if self.attributes is None:
            attributes = np.zeros((n_units, 0), dtype=data.dtype)
        else:
            attributes = np.asarray(self.attributes)
            if not np.issubdtype(attributes.dtype, np.floating):
                if not np.issubdtype(attributes.dtype, np.number) and attributes.dtype != np.bool_:
                    raise InputError(f"dataset attributes must be numeric, got dtype {attributes.dtype}")
                attributes = attributes.astype(np.float64)
        if attributes.ndim != 2 or attributes.shape[0] != n_units:
            raise ShapeError(f"attributes must be [unit, attribute] with {n_units} units, got shape {attributes.shape}")
        if attributes.shape[1] != len(attribute_names):
            raise ShapeError(
                f"attributes have {attributes.shape[1]} columns but {len(attribute_names)} names: "
                f"{list(attribute_names)}"
            )

        reference = None
        if self.reference_attributes is not None:
            reference = np.asarray(self.reference_attributes, dtype=np.float64)
            if reference.ndim != 2 or reference.shape[1] != len(attribute_names):
                raise ShapeError(
                    f"reference_attributes must be [reference unit, attribute] with {len(attribute_names)} columns, "
                    f"got shape {reference.shape}"
                )

        units = {str(k): str(v) for k, v in dict(self.units).items()}
        unknown = sorted(set(units) - set(variables) - set(attribute_names))
        if unknown:
            raise InputError(f"physical units given for unknown variables/attributes: {unknown}")

        set_(self, "data", _readonly(data))
        set_(self, "variables", variables)
        set_(self, "unit_ids", unit_ids)
        set_(self, "dates", _readonly(dates))
        set_(self, "attributes", _readonly(attributes))
        set_(self, "attribute_names", attribute_names)
        set_(self, "units", units)
        set_(self, "reference_attributes", None if reference is None else _readonly(reference))
        set_(self, "_var_index", {n: i for i, n in enumerate(variables)})
        set_(self, "_attr_index", {n: i for i, n in enumerate(attribute_names)})
        set_(self, "_unit_index", {n: i for i, n in enumerate(unit_ids)})

    @staticmethod
    def _check_dates(dates: np.ndarray) -> None:
        if np.isnat(dates).any():
            raise InputError(f"dates contain NaT at index {int(np.flatnonzero(np.isnat(dates))[0])}")
        if len(dates) < 2:
            return
        steps = np.diff(dates)
        bad = np.flatnonzero(steps <= np.timedelta64(0))
        if bad.size:
            i = int(bad[0])
            raise InputError(f"dates must be strictly increasing: {dates[i]} is followed by {dates[i + 1]}")
        irregular = np.flatnonzero(steps != steps[0])
        if irregular.size:
            i = int(irregular[0])
            raise InputError(
                f"dates must have a constant step: {dates[0]} to {dates[1]} is {steps[0]} but "
                f"{dates[i]} to {dates[i + 1]} is {steps[i]} (fill the gap with NaN values)"
            )

    @classmethod
    def from_dicts(
        cls,
        variables: Mapping[str, np.ndarray],
        unit_ids: Sequence[Any],
        dates: np.ndarray | Sequence[Any],
        attributes: Mapping[str, np.ndarray] | None = None,
        units: Mapping[str, str] | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> ArrayDataset:
        """Build a dataset from name -> ``[unit, time]`` arrays and name -> ``[unit]`` attributes."""
        if not variables:
            raise InputError("a dataset needs at least one time-varying variable")
        arrays = []
        for name, values in variables.items():
            a = np.asarray(values, dtype=dtype)
            if a.ndim != 2:
                raise ShapeError(f"variable {name!r} must be [unit, time], got shape {a.shape}")
            if arrays and a.shape != arrays[0].shape:
                raise ShapeError(f"variable {name!r} has shape {a.shape}, the first one {arrays[0].shape}")
            arrays.append(a)
        attributes = dict(attributes or {})
        n_units = arrays[0].shape[0]
        columns = []
        for name, values in attributes.items():
            a = np.asarray(values, dtype=dtype)
            if a.shape != (n_units,):
                raise ShapeError(f"attribute {name!r} must be [unit] with {n_units} units, got shape {a.shape}")
            columns.append(a)
        attr = np.stack(columns, axis=1) if columns else np.zeros((n_units, 0), dtype=dtype)
        return cls(
            np.stack(arrays, axis=2),
            tuple(variables),
            tuple(unit_ids),
            np.asarray(dates),
            attr,
            tuple(attributes),
            dict(units or {}),
        )

    # ----------------------------------------------------------------- sizes

    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(self.data.shape[0])

    @property
    def n_time(self) -> int:
        """Number of time steps."""
        return int(self.data.shape[1])

    @property
    def step(self) -> np.timedelta64 | None:
        """The constant time step between dates, or ``None`` with fewer than two dates."""
        return self.dates[1] - self.dates[0] if self.n_time > 1 else None

    def __repr__(self) -> str:
        period = f"{self.dates[0]}..{self.dates[-1]}" if self.n_time else "empty"
        return (
            f"ArrayDataset({self.n_units} units × {self.n_time} steps ({period}), "
            f"variables={list(self.variables)}, attributes={list(self.attribute_names)})"
        )

    # ----------------------------------------------------------------- lookups

    def variable_index(self, name: str) -> int:
        """Position of variable ``name`` on the last axis of :attr:`data`."""
        try:
            return self._var_index[name]
        except KeyError:
            raise InputError(describe_missing(name, self.variables, "variable")) from None

    def attribute_index(self, name: str) -> int:
        """Position of attribute ``name`` on the last axis of :attr:`attributes`."""
        try:
            return self._attr_index[name]
        except KeyError:
            raise InputError(describe_missing(name, self.attribute_names, "attribute")) from None

    def unit_index(self, unit_id: str) -> int:
        """Position of unit ``unit_id`` on the first axis of :attr:`data`."""
        try:
            return self._unit_index[str(unit_id)]
        except KeyError:
            raise InputError(describe_missing(str(unit_id), self.unit_ids, "unit id")) from None

    def variable(self, name: str) -> np.ndarray:
        """Values of variable ``name``, ``[unit, time]`` (a read-only view)."""
        return self.data[:, :, self.variable_index(name)]

    def attribute(self, name: str) -> np.ndarray:
        """Values of attribute ``name``, ``[unit]`` (a read-only view)."""
        return self.attributes[:, self.attribute_index(name)]

    def time_index(self, date: DateLike) -> int:
        """Position of ``date`` in :attr:`dates`; an absent date is an error naming the data period."""
        when = to_datetime64(date)
        hits = np.flatnonzero(self.dates == when)
        if hits.size == 0:
            period = f"{self.dates[0]} to {self.dates[-1]}" if self.n_time else "no dates"
            raise InputError(f"date {when} is not in the dataset (dates: {period}, step {self.step})")
        return int(hits[0])

    # ----------------------------------------------------------------- subsets

    def select_units(self, ids_or_indices: Sequence[Any] | np.ndarray) -> ArrayDataset:
        """The dataset restricted to some units, in the order given.

        Parameters
        ----------
        ids_or_indices
            Unit ids (strings), integer positions, or a boolean mask over units.
        """
        sel = np.asarray(ids_or_indices)
        if sel.dtype == np.bool_:
            if sel.shape != (self.n_units,):
                raise ShapeError(f"a boolean unit mask must have {self.n_units} entries, got shape {sel.shape}")
            index = np.flatnonzero(sel)
        elif sel.dtype.kind in "iu":
            index = sel.reshape(-1).astype(np.int64)
            out = index[(index < -self.n_units) | (index >= self.n_units)]
            if out.size:
                raise InputError(f"unit index {int(out[0])} is out of range for {self.n_units} units")
        else:
            index = np.array([self.unit_index(u) for u in sel.reshape(-1).tolist()], dtype=np.int64)
        return replace(
            self,
            data=self.data[index],
            unit_ids=tuple(self.unit_ids[i] for i in index.tolist()),
            attributes=self.attributes[index],
        )

    def time_slice(self, start: DateLike | None = None, end: DateLike | None = None) -> slice:
        """Index range of the steps from ``start`` to ``end`` (both inclusive; ``None`` = data edge).

        ``end`` is inclusive at its own resolution: ``end="2005-09-30"`` keeps every hour of
        that day in hourly data. A period reaching past the data is cut to the dates the data
        cover, with a :class:`~dmg.core.errors.DataWarning` naming both; a period with no date
        in the data is an :class:`~dmg.core.errors.InputError`.
        """
        lo, hi = 0, self.n_time
        first = last = None
        if start is not None:
            first = to_datetime64(start, "start date")
            lo = int(np.searchsorted(self.dates, first, side="left"))
        if end is not None:
            last = to_datetime64(end, "end date")
            hi = int(np.searchsorted(self.dates.astype(last.dtype), last, side="right"))
        first_text = "the first date" if first is None else str(first)
        last_text = "the last date" if last is None else str(last)
        if hi <= lo:
            period = f"{self.dates[0]} to {self.dates[-1]}" if self.n_time else "no dates"
            raise InputError(f"no dates between {first_text} and {last_text} (dataset covers {period})")
        before = first is not None and self.dates[0].astype(first.dtype) > first
        after = last is not None and self.dates[-1].astype(last.dtype) < last
        if before or after:
            warnings.warn(
                f"the period {first_text} to {last_text} reaches past the data ({self.dates[0]} to {self.dates[-1]}); "
                f"using {self.dates[lo]} to {self.dates[hi - 1]}",
                DataWarning,
                stacklevel=2,
            )
        return slice(lo, hi)

    def select_time(self, start: DateLike | None = None, end: DateLike | None = None) -> ArrayDataset:
        """The dataset restricted to dates from ``start`` to ``end``, both inclusive (see :meth:`time_slice`)."""
        return self.isel_time(self.time_slice(start, end))

    def isel_time(self, index: slice) -> ArrayDataset:
        """The dataset restricted to a slice of time positions (a step of 1 keeps dates regular)."""
        if index.step not in (None, 1):
            raise InputError(f"time slices must be contiguous, got step {index.step}")
        return replace(self, data=self.data[:, index], dates=self.dates[index])

    # ----------------------------------------------------------------- checks

    def check_finite(
        self,
        variables: Sequence[str] | None = None,
        attributes: Sequence[str] | None = None,
        *,
        label: str = "variable",
    ) -> None:
        """Raise :class:`~dmg.core.errors.InputError` if a value is NaN or infinite.

        The message names the variable (or attribute), the unit id and the date of the first
        bad value, and how many more there are, e.g. ``forcing 'prcp' is NaN for unit
        '01022500' on 2001-03-04 (and 12 more)``.

        Parameters
        ----------
        variables
            Variables to check; ``None`` checks all of them, ``()`` none.
        attributes
            Attributes to check; ``None`` checks all of them, ``()`` none.
        label
            Word used for the variables in the message (``"forcing"``, ``"input"``, ...).
        """
        problems: list[str] = []
        names = self.variables if variables is None else tuple(variables)
        for name in names:
            values = self.variable(name)
            bad = ~np.isfinite(values)
            if bad.any():
                u, t = np.argwhere(bad)[0]
                more = int(bad.sum()) - 1
                what = _describe_value(values[u, t])
                tail = f" (and {more} more)" if more else ""
                problems.append(f"{label} {name!r} is {what} for unit {self.unit_ids[u]!r} on {self.dates[t]}{tail}")
        names = self.attribute_names if attributes is None else tuple(attributes)
        for name in names:
            values = self.attribute(name)
            bad = ~np.isfinite(values)
            if bad.any():
                u = int(np.flatnonzero(bad)[0])
                more = int(bad.sum()) - 1
                tail = f" (and {more} more units)" if more else ""
                problems.append(
                    f"attribute {name!r} is {_describe_value(values[u])} for unit {self.unit_ids[u]!r}{tail}"
                )
        if problems:
            extra = f"; also {'; '.join(problems[1:])}" if len(problems) > 1 else ""
            raise InputError(f"{problems[0]}{extra}. Fill or drop the missing values, or exclude these units/dates.")

    # ----------------------------------------------------------------- files

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the dataset to ``path`` as ``.npz`` (atomically: temporary file then rename)."""
        with atomic_open(path, "wb") as fh:
            np.savez(
                fh,
                format_version=np.array(FORMAT_VERSION),
                data=self.data,
                variables=np.array(self.variables, dtype=str),
                unit_ids=np.array(self.unit_ids, dtype=str),
                dates=self.dates,
                attributes=self.attributes,
                attribute_names=np.array(self.attribute_names, dtype=str),
                units=np.array(json.dumps(self.units)),
                **({} if self.reference_attributes is None else {"reference_attributes": self.reference_attributes}),
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ArrayDataset:
        """Read a dataset written by :meth:`save`.

        Raises
        ------
        InputError
            Naming the file if it is missing, is not an ``.npz`` file of this layout (random bytes,
            truncated, another zip, arrays missing or of the wrong kind) or holds an invalid dataset.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"dataset file {str(path)!r} does not exist")
        return _from_npz_arrays(cls, path, _read_npz(path))


def _from_npz_arrays(cls: type[ArrayDataset], path: Path, arrays: Mapping[str, np.ndarray]) -> ArrayDataset:
    """The dataset of the arrays of an :meth:`ArrayDataset.save` file, checked as :meth:`ArrayDataset.load` does."""
    fields = {
        "variables": _names(arrays, "variables", path),
        "unit_ids": _names(arrays, "unit_ids", path),
        "attribute_names": _names(arrays, "attribute_names", path),
        "units": _physical_units(arrays["units"], path),
    }
    if arrays["dates"].dtype.kind != "M":
        raise InputError(f"dataset file {str(path)!r}: dates must be datetime64, got {arrays['dates'].dtype}")
    try:
        return cls(
            data=arrays["data"],
            dates=arrays["dates"],
            attributes=arrays["attributes"],
            reference_attributes=arrays.get("reference_attributes"),
            **fields,
        )
    except (DmgError, ValueError, TypeError) as exc:
        raise InputError(f"dataset file {str(path)!r} holds an invalid dataset: {exc}") from None


NPZ_ARRAYS = ("format_version", "data", "variables", "unit_ids", "dates", "attributes", "attribute_names", "units")
"""The arrays of an ``.npz`` file written by :meth:`ArrayDataset.save`."""

OPTIONAL_ARRAYS = ("reference_attributes",)
"""Arrays such a file may also hold."""


def _read_npz(path: Path, skip: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Every array of an :meth:`ArrayDataset.save` file but those in ``skip`` (which must be there too).

    Anything else is an :class:`InputError` naming the file.
    """
    where = f"dataset file {str(path)!r}"
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if magic == b"\x93NUMPY":
        raise InputError(f"{where} is a single .npy array, not an ArrayDataset .npz file")
    if not magic.startswith(b"PK"):
        raise InputError(f"{where} is not an .npz file (it is not a zip archive); write it with ArrayDataset.save")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "format_version" not in f.files:
                raise InputError(
                    f"{where} is a zip archive without the arrays of ArrayDataset.save (no format_version)"
                )
            version = f["format_version"]
            if version.shape != () or version.dtype.kind not in "iu" or version != FORMAT_VERSION:
                raise InputError(
                    f"{where} is not an ArrayDataset file of format {FORMAT_VERSION} (found {version.tolist()!r})"
                )
            missing = [name for name in NPZ_ARRAYS if name not in f.files]
            if missing:
                raise InputError(f"{where} lacks the arrays {missing}; it was not written by ArrayDataset.save")
            names = NPZ_ARRAYS + tuple(n for n in OPTIONAL_ARRAYS if n in f.files)
            return {name: f[name] for name in names if name not in skip}
    except InputError:
        raise
    except Exception as exc:  # numpy, zipfile and zlib raise many kinds on damaged bytes (ValueError, EOFError, ...)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{where} is not a readable ArrayDataset .npz file ({reason})") from None


def _names(arrays: Mapping[str, np.ndarray], key: str, path: Path) -> tuple[str, ...]:
    values = arrays[key]
    if values.ndim != 1 or values.dtype.kind not in "UO":
        raise InputError(
            f"dataset file {str(path)!r}: {key} must be a list of names, got {values.dtype} {values.shape}"
        )
    return tuple(str(v) for v in values.tolist())


def _physical_units(array: np.ndarray, path: Path) -> dict[str, str]:
    try:
        units = json.loads(str(array.tolist()))
    except ValueError:
        units = None
    if not isinstance(units, dict):
        raise InputError(f"dataset file {str(path)!r}: units must be a JSON mapping of names to units, got {array!r}")
    return units


def _describe_value(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    return "+inf" if value > 0 else "-inf"
