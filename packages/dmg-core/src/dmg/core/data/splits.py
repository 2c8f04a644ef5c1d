"""Splits of a dataset: periods in time (with warm-up) and hold-out units in space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from dmg.core.data._names import DateLike, duplicates
from dmg.core.data.dataset import ArrayDataset
from dmg.core.errors import ConfigError, InputError

IdT = TypeVar("IdT")


def split_time(
    dataset: ArrayDataset,
    start: DateLike | None,
    end: DateLike | None,
    warmup_steps: int,
    *,
    allow_short_warmup: bool = False,
) -> tuple[ArrayDataset, int]:
    """The period ``start``..``end`` (inclusive) with ``warmup_steps`` earlier steps prepended.

    Parameters
    ----------
    dataset
        The data.
    start, end
        First and last date of the period (``None``: the data's first/last date).
    warmup_steps
        Steps wanted before ``start`` for spinning up states.
    allow_short_warmup
        If the data begin less than ``warmup_steps`` before ``start``, use what there is
        instead of raising.

    Returns
    -------
    (ArrayDataset, int)
        The slice (warm-up plus period) and the number of warm-up steps it begins with.

    Raises
    ------
    InputError
        If the warm-up would reach before the first date (naming the dates), unless
        ``allow_short_warmup``.
    """
    if warmup_steps < 0:
        raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
    period = dataset.time_slice(start, end)
    lo = period.start
    available = min(warmup_steps, lo)
    if available < warmup_steps and not allow_short_warmup:
        first = dataset.dates[lo]
        wanted = first - warmup_steps * dataset.step if dataset.step is not None else first
        earliest = dataset.dates[warmup_steps] if warmup_steps < dataset.n_time else None
        later = f"start the period on {earliest} or later, " if earliest is not None else ""
        raise InputError(
            f"the warm-up of {warmup_steps} steps before {first} would begin on {wanted}, "
            f"but the data begin on {dataset.dates[0]} ({lo} steps available); "
            f"{later}shorten the warm-up, or allow a shorter warm-up"
        )
    return dataset.isel_time(slice(lo - available, period.stop)), available


def _check_ids(unit_ids: Sequence[IdT]) -> list[IdT]:
    ids = list(unit_ids)
    repeated = duplicates([str(u) for u in ids])
    if repeated:
        raise InputError(f"unit ids must be unique; repeated: {repeated}")
    return ids


def _split(ids: list[IdT], test_positions: np.ndarray) -> tuple[list[IdT], list[IdT]]:
    is_test = np.zeros(len(ids), dtype=bool)
    is_test[test_positions] = True
    return [u for u, t in zip(ids, is_test) if not t], [u for u, t in zip(ids, is_test) if t]


def kfold_units(unit_ids: Sequence[IdT], n_folds: int, fold: int, seed: int = 0) -> tuple[list[IdT], list[IdT]]:
    """Spatial cross-validation: fold ``fold`` of ``n_folds`` random, near-equal groups of units.

    The same ``unit_ids``, ``n_folds`` and ``seed`` always give the same groups; over
    ``fold = 0 .. n_folds - 1`` every unit is in exactly one test set. Both lists keep the
    order of ``unit_ids``.

    Returns
    -------
    (train_ids, test_ids)
    """
    ids = _check_ids(unit_ids)
    if n_folds < 2:
        raise ConfigError(f"n_folds must be >= 2, got {n_folds}")
    if n_folds > len(ids):
        raise ConfigError(f"n_folds ({n_folds}) exceeds the number of units ({len(ids)})")
    if not 0 <= fold < n_folds:
        raise ConfigError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    order = np.random.default_rng(seed).permutation(len(ids))
    return _split(ids, np.array_split(order, n_folds)[fold])


def holdout_units(unit_ids: Sequence[IdT], fraction: float, seed: int = 0) -> tuple[list[IdT], list[IdT]]:
    """A random ``fraction`` of the units held out for testing (at least one, at most all but one).

    Returns
    -------
    (train_ids, test_ids)
        Both in the order of ``unit_ids``.
    """
    ids = _check_ids(unit_ids)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")
    if len(ids) < 2:
        raise ConfigError(f"need at least 2 units to hold some out, got {len(ids)}")
    n_test = min(max(round(fraction * len(ids)), 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    return _split(ids, order[:n_test])
