"""Static attributes from delimited text tables (CAMELS ``;`` files, Caravan-style CSV files).

A table has one row per unit, keyed by an id column read as text (so ``01022500`` keeps its
leading zero). Several tables may hold the same column for different units (one CSV per data
source); :func:`select_attributes` finds each requested value in whichever table has it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

import numpy as np

from dmg.core.errors import InputError

MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "-999", "-999.0"})
"""Cell texts (compared in lower case) read as a missing value (NaN)."""


@dataclass(frozen=True)
class AttributeTable:
    """One delimited text file: its columns (besides the id column) and its rows by unit id."""

    path: Path
    columns: tuple[str, ...]
    rows: dict[str, tuple[str, ...]]

    def column_index(self, name: str) -> int:
        """Position of column ``name`` in each row."""
        return self.columns.index(name)


def read_table(path: Path, delimiter: str, id_column: str) -> AttributeTable:
    """Read ``path`` (header line, then one row per unit) keyed by the text of ``id_column``.

    Raises
    ------
    InputError
        If the file is missing, empty or not UTF-8 text, has no ``id_column``, repeats an id, or
        a row has the wrong number of cells; the message names the file and line.
    """
    if not path.is_file():
        raise InputError(f"attribute file {path} does not exist")
    try:
        return _read_rows(path, delimiter, id_column)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"attribute file {path} is not UTF-8 text (it holds the byte 0x{exc.object[exc.start]:02x}); "
            "is it a delimited text table?"
        ) from None
    except csv.Error as exc:
        raise InputError(f"attribute file {path} is not a delimited text table: {exc}") from None
    except OSError as exc:
        raise InputError(f"attribute file {path} cannot be read: {exc.strerror or exc}") from None


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; errors name ``what`` (e.g. ``"unit list file"``) and the file.

    Raises
    ------
    InputError
        If the file cannot be read or is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def _read_rows(path: Path, delimiter: str, id_column: str) -> AttributeTable:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise InputError(f"attribute file {path} is empty (expected a header line)")
        header = [h.strip() for h in header]
        if id_column not in header:
            hint = get_close_matches(id_column, header, n=1)
            close = f" (closest: {hint[0]!r})" if hint else ""
            raise InputError(f"attribute file {path} has no id column {id_column!r}{close}; columns: {header}")
        key = header.index(id_column)
        rows: dict[str, tuple[str, ...]] = {}
        for line, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(
                    f"attribute file {path}, line {line}: {len(cells)} cells but the header has {len(header)}"
                )
            unit = cells[key].strip()
            if unit in rows:
                raise InputError(f"attribute file {path}, line {line}: unit id {unit!r} appears twice")
            rows[unit] = tuple(c.strip() for i, c in enumerate(cells) if i != key)
    columns = tuple(h for i, h in enumerate(header) if i != key)
    return AttributeTable(path, columns, rows)


def _parse(text: str) -> float | None:
    """The number in ``text``, NaN for a missing-value token, ``None`` if it is not a number."""
    if text.lower() in MISSING_TOKENS:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def _first_text_value(table: AttributeTable, column: int) -> str | None:
    for row in table.rows.values():
        if _parse(row[column]) is None:
            return row[column]
    return None


def _describe_files(tables: Sequence[AttributeTable]) -> str:
    """``folder/{a.txt, b.txt}``-like description of where the tables come from."""
    if not tables:
        return "no attribute files"
    folders = {t.path.parent for t in tables}
    if len(folders) == 1:
        return f"{folders.pop()} ({', '.join(t.path.name for t in tables)})"
    return ", ".join(str(t.path) for t in tables)


def select_attributes(
    tables: Sequence[AttributeTable], names: Sequence[str], unit_ids: Sequence[str], key: str = "attributes"
) -> dict[str, np.ndarray]:
    """Numeric attributes ``name -> [unit]`` (float64) for ``unit_ids``, in the order of ``names``.

    Parameters
    ----------
    tables
        The tables to search; a column may appear in several of them for different units.
    names
        Attribute (column) names.
    unit_ids
        Unit ids, matched as text against each table's id column.
    key
        Config key named in error messages.

    Raises
    ------
    InputError
        Naming the attribute that no table has (with the closest name), the attributes whose
        values are text (with an example), the unit that no table with the column has a row
        for, or a unit whose value differs between two tables.
    """
    available = sorted({c for t in tables for c in t.columns})
    missing = [n for n in names if n not in available]
    if missing:
        parts = []
        for name in missing:
            hint = get_close_matches(name, available, n=1, cutoff=0.5)
            parts.append(f"{name!r}" + (f" (closest: {hint[0]!r})" if hint else ""))
        files = _describe_files(tables)
        raise InputError(
            f"{key}: no attribute {', '.join(parts)} in {files}. Available attributes: {', '.join(available)}"
        )
    text_columns = []
    for name in names:
        for table in tables:
            if name in table.columns:
                example = _first_text_value(table, table.column_index(name))
                if example is not None:
                    text_columns.append(f"{name!r} (e.g. {example!r} in {table.path.name})")
                    break
    if text_columns:
        raise InputError(
            f"{key}: attribute(s) {', '.join(text_columns)} hold text, not numbers; "
            "remove them from the list (only numeric attributes can feed a model)"
        )
    out: dict[str, np.ndarray] = {}
    for name in names:
        holders = [t for t in tables if name in t.columns]
        values = np.empty(len(unit_ids), dtype=np.float64)
        for i, unit in enumerate(unit_ids):
            found = [(t, _parse(t.rows[unit][t.column_index(name)])) for t in holders if unit in t.rows]
            if not found:
                known = [u for t in holders for u in t.rows]
                hint = get_close_matches(unit, known, n=1, cutoff=0.6)
                close = f" (closest id: {hint[0]!r})" if hint else ""
                files = ", ".join(str(t.path) for t in holders)
                raise InputError(f"{key}: unit {unit!r} has no row in {files}, which hold attribute {name!r}{close}")
            value = found[0][1]
            for table, other in found[1:]:
                if not (value == other or (np.isnan(value) and np.isnan(other))):
                    raise InputError(
                        f"{key}: attribute {name!r} of unit {unit!r} is {value} in {found[0][0].path} "
                        f"but {other} in {table.path}"
                    )
            values[i] = value
        out[name] = values
    return out


def reference_attributes(
    tables: Sequence[AttributeTable], names: Sequence[str], known: Mapping[str, Mapping[str, float]] | None = None
) -> np.ndarray:
    """The attributes ``names`` of every unit any table holds, ``[reference unit, attribute]`` (float64).

    This is the population a normalizer may take attribute statistics from (e.g. all 671 CAMELS basins
    while training on four). ``known`` gives values by attribute and unit id for attributes no table
    holds (e.g. those read from the loaded units' own files); a value a unit lacks is NaN.
    """
    known = known or {}
    ids = sorted({unit for table in tables for unit in table.rows} | {u for v in known.values() for u in v})
    out = np.full((len(ids), len(names)), np.nan)
    for j, name in enumerate(names):
        if name in known:
            out[:, j] = [known[name].get(unit, np.nan) for unit in ids]
            continue
        for table in tables:
            if name not in table.columns:
                continue
            column = table.column_index(name)
            for i, unit in enumerate(ids):
                row = table.rows.get(unit)
                value = None if row is None else _parse(row[column])
                if value is not None and np.isnan(out[i, j]):
                    out[i, j] = value
    return out
