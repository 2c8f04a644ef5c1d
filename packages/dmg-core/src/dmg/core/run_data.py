"""The data of a run: which units train and test, and each period's slice, checked before use."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from dmg.core.config import Period, RunConfig
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.splits import holdout_units, kfold_units, split_time
from dmg.core.errors import ConfigError, InputError


class MissingTargetsWarning(UserWarning):
    """Some units have no observation of a target in a period; the message names them."""


def unit_split(config: RunConfig, dataset: ArrayDataset) -> tuple[list[str], list[str]]:
    """``(train_ids, test_ids)`` from ``data.units``."""
    s = config.data.units
    ids = list(dataset.unit_ids)
    if s.kind == "all":
        return ids, ids
    if s.kind == "kfold":
        if s.fold >= s.n_folds:
            raise ConfigError(f"data.units.fold must be < n_folds ({s.n_folds}), got {s.fold}")
        return kfold_units(ids, s.n_folds, s.fold, s.seed)
    if s.kind == "holdout":
        return holdout_units(ids, s.fraction, s.seed)
    for key, chosen in (("train", s.train), ("test", s.test)):
        unknown = [u for u in chosen if u not in ids]
        if unknown or not chosen:
            raise ConfigError(
                f"data.units.{key}: unknown unit ids {unknown} (or none given); dataset has {ids[:10]}..."
            )
    return list(s.train), list(s.test)


def period_data(
    config: RunConfig,
    dataset: ArrayDataset,
    period: Period,
    units: Sequence[str],
    *,
    strict_warmup: bool,
    key: str = "",
) -> tuple[ArrayDataset, int]:
    """The units' data over ``period`` with up to ``data.warmup`` steps before it; checked for NaN inputs.

    ``key`` (e.g. ``"data.train"``) is named in errors and warnings about the period's dates.
    """
    subset = dataset.select_units(list(units))
    where = f"{key}: " if key else ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data, warmup = split_time(
                subset, period.start, period.end, config.data.warmup, allow_short_warmup=not strict_warmup
            )
        except InputError as exc:
            raise InputError(f"{where}{exc}") from None
    for warning in caught:
        warnings.warn(f"{where}{warning.message}", warning.category, stacklevel=2)
    roles = config.data.roles
    data.check_finite(sorted(set(roles.forcings.values())), (), label="forcing")
    data.check_finite([v for v in roles.nn_inputs if v not in roles.forcings.values()], (), label="network input")
    data.check_finite((), sorted(set(roles.nn_static) | set(roles.attributes.values())))
    return data, warmup


def check_targets(config: RunConfig, data: ArrayDataset, warmup: int, split: str) -> None:
    """Refuse a period with no observation of a target; warn naming each unit that has none.

    Parameters
    ----------
    config
        The run's config (``data.roles.targets``).
    data, warmup
        The period's data as :func:`period_data` returns it; the warm-up steps are not scored.
    split
        ``"train"``, ``"valid"`` or ``"test"``: the config key named in messages.

    Raises
    ------
    InputError
        If every value of a target variable is missing over the period, for every unit.
    """
    if data.n_time <= warmup:
        return
    first, last = data.dates[warmup], data.dates[-1]
    for output, variable in config.data.roles.targets.items():
        observed = np.isfinite(data.variable(variable)[:, warmup:]).sum(axis=1)
        empty = [u for u, n in zip(data.unit_ids, observed.tolist()) if n == 0]
        if len(empty) == data.n_units:
            raise InputError(
                f"data.{split}: the target {output} (variable {variable!r}) has no observation from {first} to "
                f"{last} in any of the {data.n_units} units; every value is missing (NaN or a missing-value code). "
                f"Choose a period with observations, or check the data"
            )
        if empty:
            shown = ", ".join(empty[:20]) + (f" and {len(empty) - 20} more" if len(empty) > 20 else "")
            warnings.warn(
                f"data.{split}: {len(empty)} of {data.n_units} units have no observation of {output} "
                f"(variable {variable!r}) from {first} to {last}: {shown}; they add nothing to the "
                f"{'loss' if split != 'test' else 'metrics'}",
                MissingTargetsWarning,
                stacklevel=2,
            )
