"""Unit sources that read only the units asked for: the inputs of a domain kept out of memory.

A :class:`~dmg.core.simulation.UnitSource` has ``unit_ids`` and ``select_units(ids)``, which gives
an :class:`~dmg.core.data.dataset.ArrayDataset` of those units over the whole record.
:class:`NpzUnitSource` is one over a file written by :meth:`ArrayDataset.save`: the names, dates and
attributes are read when it is opened (they are small), the ``[unit, time, variable]`` values of the
units asked for when they are asked for, each run of consecutive units in one read.

::

    source = open_npz("domain.npz")               # reads everything but the values
    chunk = source.select_units(["u17", "u18"])    # reads the rows of these two units

:class:`FileUnitSource` is the base of sources that read each unit's values from its own files (a
dataset component's ``open()``): it holds a template of the dataset without values
(:func:`without_values`) and asks :meth:`FileUnitSource.read_values` for the units selected.
"""

from __future__ import annotations

import abc
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dmg.core.data.dataset import ArrayDataset, _from_npz_arrays, _read_npz
from dmg.core.errors import InputError, ShapeError

__all__ = ["FileUnitSource", "NpzUnitSource", "open_npz", "unit_positions", "without_values"]

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
"""A zip member's local file header (the layout :mod:`zipfile` writes and reads)."""
_LOCAL_SIGNATURE = b"PK\x03\x04"


def unit_positions(dataset: ArrayDataset, ids_or_indices: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Positions in ``dataset`` of the units :meth:`ArrayDataset.select_units` would take, in order.

    Takes what ``select_units`` takes (unit ids, integer positions or a boolean mask) and raises the
    same errors; negative positions are made positive.
    """
    n_units = dataset.n_units
    sel = np.asarray(ids_or_indices)
    if sel.dtype == np.bool_:
        if sel.shape != (n_units,):
            raise ShapeError(f"a boolean unit mask must have {n_units} entries, got shape {sel.shape}")
        return np.flatnonzero(sel).astype(np.int64)
    if sel.dtype.kind in "iu":
        index = sel.reshape(-1).astype(np.int64)
        out = index[(index < -n_units) | (index >= n_units)]
        if out.size:
            raise InputError(f"unit index {int(out[0])} is out of range for {n_units} units")
        return index % n_units if n_units else index
    return np.array([dataset.unit_index(u) for u in sel.reshape(-1).tolist()], dtype=np.int64)


def without_values(variables: Sequence[str], unit_ids: Sequence[str], dates: np.ndarray, **fields: Any) -> ArrayDataset:
    """A dataset of every unit with its values left out: ``data`` holds no memory and reads as zeros.

    ``fields`` are the other fields of :class:`ArrayDataset` (``attributes``, ``attribute_names``,
    ``units``, ``reference_attributes``), checked as usual.
    """
    shape = (len(unit_ids), len(dates), len(variables))
    return ArrayDataset(
        data=np.broadcast_to(np.zeros((), np.float32), shape),
        variables=tuple(variables),
        unit_ids=tuple(unit_ids),
        dates=dates,
        **fields,
    )


class FileUnitSource(abc.ABC):
    """A unit source whose units' values are read when they are selected, each unit from its own files.

    Parameters
    ----------
    template
        Every unit with everything but its values (:func:`without_values`): names, ids, dates,
        attributes, physical units.
    """

    def __init__(self, template: ArrayDataset) -> None:
        self.template = template

    @property
    def unit_ids(self) -> tuple[str, ...]:
        """Every unit's id."""
        return self.template.unit_ids

    def select_units(self, ids_or_indices: Sequence[Any] | np.ndarray) -> ArrayDataset:
        """The units asked for (ids, positions or a boolean mask), in the order given, over the whole record."""
        index = unit_positions(self.template, ids_or_indices)
        ids = [self.template.unit_ids[i] for i in index.tolist()]
        values = self.read_values(ids)
        return replace(
            self.template,
            data=np.stack(list(values.values()), axis=2).astype(np.float32),
            unit_ids=tuple(ids),
            attributes=self.template.attributes[index],
        )

    @abc.abstractmethod
    def read_values(self, unit_ids: list[str]) -> dict[str, np.ndarray]:
        """The values of ``unit_ids``: each variable of the template, in its order, ``[unit, time]``."""


def open_npz(path: str | Path) -> NpzUnitSource | ArrayDataset:
    """A lazy source over an :meth:`ArrayDataset.save` file, or the loaded dataset when it cannot be one.

    The values are read lazily when the file stores them as a plain, uncompressed ``.npy`` member
    of floats in C order (as :meth:`ArrayDataset.save` writes them); any other file (compressed, for
    one) is read whole by :meth:`ArrayDataset.load`. Errors are those of :meth:`ArrayDataset.load`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"dataset file {str(path)!r} does not exist")
    layout = _data_layout(path)
    if layout is None:
        return ArrayDataset.load(path)
    return NpzUnitSource(path, *layout)


class NpzUnitSource:
    """The units of an :meth:`ArrayDataset.save` file, their values read when selected.

    Use :func:`open_npz`, which checks the file. :meth:`select_units` gives what
    ``ArrayDataset.load(path).select_units(ids)`` gives, with the same errors.

    Attributes
    ----------
    path
        The file.
    template
        The dataset of every unit with its values left out: names, dates, attributes, physical units
        and reference attributes as in the file (its ``data`` holds no memory and reads as zeros).
    """

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.path = path
        self._offset = offset
        self._dtype = dtype
        arrays = _read_npz(path, skip=("data",))
        values = np.broadcast_to(np.zeros((), dtype), shape)  # the shape, checked, without the memory
        self.template = _from_npz_arrays(ArrayDataset, path, {**arrays, "data": values})

    def __repr__(self) -> str:
        return f"NpzUnitSource({str(self.path)!r}: {self.template!r})"

    @property
    def unit_ids(self) -> tuple[str, ...]:
        """Every unit's id, in the order of the file."""
        return self.template.unit_ids

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of the time-varying variables."""
        return self.template.variables

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """Names of the static attributes."""
        return self.template.attribute_names

    @property
    def dates(self) -> np.ndarray:
        """Dates of the whole record."""
        return self.template.dates

    def select_units(self, ids_or_indices: Sequence[Any] | np.ndarray) -> ArrayDataset:
        """The units asked for (ids, positions or a boolean mask), in the order given, over the whole record."""
        index = unit_positions(self.template, ids_or_indices)
        attributes = self.template.attributes
        assert attributes is not None  # an ArrayDataset's attributes are an array, of zero columns when none
        return replace(
            self.template,
            data=self._rows(index),
            unit_ids=tuple(self.template.unit_ids[i] for i in index.tolist()),
            attributes=attributes[index],
        )

    def _rows(self, index: np.ndarray) -> np.ndarray:
        """The ``[unit, time, variable]`` values of the units at ``index``, read from the file."""
        _, n_time, n_vars = self.template.data.shape
        unique, inverse = np.unique(index, return_inverse=True)
        direct = unique.size == index.size and bool(np.all(unique == index))  # increasing: read in place
        rows = np.empty((unique.size, n_time, n_vars), dtype=self._dtype)
        row_bytes = n_time * n_vars * self._dtype.itemsize
        if rows.size:
            breaks = np.flatnonzero(np.diff(unique) != 1) + 1
            starts = np.concatenate(([0], breaks))
            ends = np.concatenate((breaks, [unique.size]))
            with self.path.open("rb") as fh:
                for lo, hi in zip(starts.tolist(), ends.tolist()):
                    fh.seek(self._offset + int(unique[lo]) * row_bytes)
                    target = rows[lo:hi].data.cast("B")
                    got = fh.readinto(target)
                    if got != len(target):
                        raise InputError(
                            f"dataset file {str(self.path)!r} is not a readable ArrayDataset .npz file "
                            f"(its data end after {got} of {len(target)} bytes of units {lo} to {hi - 1})"
                        )
        return rows if direct else rows[inverse.reshape(-1)]


def _data_layout(path: Path) -> tuple[int, np.dtype, tuple[int, ...]] | None:
    """Where the values of ``path`` start, their dtype and shape; ``None`` if they cannot be read in place.

    The ``data.npy`` member must be stored (not compressed), a ``.npy`` array of format 1 or 2 of
    floats in C order. A damaged file gives ``None`` too: :meth:`ArrayDataset.load` then names the fault.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("data.npy")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return None
        with path.open("rb") as fh:
            fh.seek(info.header_offset)
            header = fh.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size:
                return None
            fields = _LOCAL_HEADER.unpack(header)
            if fields[0] != _LOCAL_SIGNATURE:
                return None
            start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return None
            offset = fh.tell()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error):
        return None
    dtype = np.dtype(dtype)
    if fortran or dtype.kind != "f" or dtype.hasobject or len(shape) != 3:
        return None
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset - start + n_bytes != info.file_size or path.stat().st_size < offset + n_bytes:
        return None
    return offset, dtype, tuple(int(s) for s in shape)
