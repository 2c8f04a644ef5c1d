"""Where windows may start so that blocks of a day's steps are whole calendar days.

A model that aggregates a sub-daily series into days (e.g. the coarse span of
:class:`~dmg.core.multiscale.MultiTimescale`) sees calendar days only if each window starts at 00:00.
:func:`day_alignment` gives the steps per day and the first step at 00:00 of a dataset's dates;
the training sampler draws window starts at ``offset + align * k`` only.
"""

from __future__ import annotations

import numpy as np

from dmg.core.errors import ConfigError

DAY = np.timedelta64(1, "D")


def day_alignment(dates: np.ndarray, key: str = "data.window_alignment") -> tuple[int, int]:
    """``(steps per day, index of the first step at 00:00)`` of an evenly stepped ``datetime64`` series.

    Parameters
    ----------
    dates
        ``datetime64`` of each step, constant step of at most a day that divides a day.
    key
        The config key named in errors.

    Raises
    ------
    ConfigError
        When the series has no dates, its step does not divide a day, or no step falls on 00:00.
    """
    if dates is None or len(dates) == 0:
        raise ConfigError(f"{key}: 'day' needs a dataset with dates")
    if len(dates) == 1:
        return 1, 0
    step = (dates[1] - dates[0]).astype("timedelta64[s]")
    seconds = int(step / np.timedelta64(1, "s"))
    day = int(DAY / np.timedelta64(1, "s"))
    if seconds <= 0 or day % seconds:
        raise ConfigError(f"{key}: 'day' needs a time step that divides a day; the data step is {step}")
    per_day = day // seconds
    head = dates[:per_day]
    midnight = np.flatnonzero(head == head.astype("datetime64[D]"))
    if midnight.size == 0:
        raise ConfigError(f"{key}: 'day' needs steps at 00:00; the data start at {dates[0]} with a step of {step}")
    return per_day, int(midnight[0])


def check_whole_days(warmup: int, per_day: int, key: str = "data.warmup") -> None:
    """Refuse a warm-up that is not a whole number of days (evaluation windows start ``warmup`` steps
    before a period's first 00:00, so their days would be cut across)."""
    if warmup % per_day:
        raise ConfigError(
            f"{key}: with data.window_alignment 'day' the warm-up must be whole days, a multiple of {per_day} "
            f"steps; got {warmup}"
        )
