"""Name lookups and date parsing shared by the data modules, with messages that help."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from difflib import get_close_matches

import numpy as np

from dmg.core.errors import InputError

DateLike = str | np.datetime64 | _dt.date
"""A date as ``'YYYY-MM-DD'`` (or any ISO 8601 string), :class:`numpy.datetime64` or :class:`datetime.date`."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to ``name`` (:func:`difflib.get_close_matches`), or ``None``."""
    found = get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return found[0] if found else None


def describe_missing(name: str, candidates: Sequence[str], kind: str) -> str:
    """``"no variable 'prcpp'. Closest: 'prcp'. Available: ..."`` as one sentence."""
    hint = closest(name, candidates)
    close = f" Closest: {hint!r}." if hint is not None else ""
    listed = ", ".join(repr(c) for c in candidates) if candidates else "none"
    return f"no {kind} {name!r}.{close} Available {kind}s: {listed}"


def duplicates(names: Sequence[str]) -> list[str]:
    """Names that occur more than once, in order of first repetition."""
    seen: set[str] = set()
    repeated: list[str] = []
    for n in names:
        if n in seen and n not in repeated:
            repeated.append(n)
        seen.add(n)
    return repeated


def to_datetime64(value: DateLike, what: str = "date") -> np.datetime64:
    """Parse ``value`` into a :class:`numpy.datetime64` at the resolution it was given."""
    if isinstance(value, np.datetime64):
        parsed = value
    else:
        try:
            parsed = np.datetime64(value)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{what} {value!r} is not a date; use 'YYYY-MM-DD'") from exc
    if np.isnat(parsed):
        raise InputError(f"{what} is NaT (not a time)")
    return parsed
