""":func:`make_batch`: cut windows out of an :class:`ArrayDataset` into a time-major :class:`Batch`."""

from __future__ import annotations

import numpy as np
import torch

from dmg.core.data.batch import Batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.data.roles import DataRoles
from dmg.core.errors import ConfigError, InputError


def _tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np_dtype)).to(dtype)


def _check_window(dataset: ArrayDataset, units: np.ndarray, starts: np.ndarray, total: int) -> None:
    bad = np.flatnonzero((units < 0) | (units >= dataset.n_units))
    if bad.size:
        raise InputError(f"unit index {int(units[bad[0]])} is out of range for {dataset.n_units} units")
    bad = np.flatnonzero((starts < 0) | (starts + total > dataset.n_time))
    if bad.size:
        i = int(bad[0])
        unit = dataset.unit_ids[int(units[i if starts.size > 1 else 0])] if units.size else "?"
        raise InputError(
            f"window of {total} steps starting at index {int(starts[i])} (unit {unit!r}) leaves the data "
            f"({dataset.n_time} steps, {dataset.dates[0]} to {dataset.dates[-1]})"
        )


def make_batch(
    dataset: ArrayDataset,
    roles: DataRoles,
    normalizer: Normalizer | None,
    units: np.ndarray,
    starts: np.ndarray | int,
    length: int,
    warmup: int,
    *,
    dtype: torch.dtype = torch.float32,
    nan_fill: float | None = None,
) -> Batch:
    """Gather windows of ``warmup + length`` steps for some units into a :class:`Batch`.

    Parameters
    ----------
    dataset
        The data.
    roles
        Which variables are forcings, network inputs, attributes and targets.
    normalizer
        Fitted normalizer for ``roles.nn_inputs`` and ``roles.nn_static``; may be ``None``
        when the roles have no network inputs.
    units
        Unit positions in ``dataset``, ``[batch]``.
    starts
        First step of each unit's window, ``[batch]``, or one start shared by all units.
    length
        Steps after the warm-up (the steps with outputs and targets).
    warmup
        Leading steps for spinning up the physics states.
    dtype
        Floating dtype of the tensors.
    nan_fill
        If given, non-finite *normalised* network inputs are replaced by this value (0 is the
        training mean). Forcings, attributes and targets are never altered.

    Returns
    -------
    Batch
        ``forcings`` name -> ``[T, U]`` raw; ``nn_inputs`` ``[T, U, F]`` normalised (the
        ``nn_inputs`` variables, then, if ``roles.nn_static_in_sequence``, the static
        attributes repeated along time) or ``None``; ``static_inputs`` ``[U, A]`` normalised
        or ``None``; ``attributes`` name -> ``[U]`` raw; ``targets`` name -> ``[length, U]``
        raw with NaN kept; ``times`` ``[T]`` when the start is shared, else ``None``.
        ``T = warmup + length``.
    """
    if length < 1 or warmup < 0:
        raise ConfigError(f"a window needs length >= 1 and warmup >= 0, got length={length}, warmup={warmup}")
    total = warmup + length
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    shared = np.ndim(starts) == 0
    starts_arr = np.asarray(starts, dtype=np.int64).reshape(-1)
    if not shared and starts_arr.shape != units.shape:
        raise InputError(f"got {starts_arr.size} window starts for {units.size} units; give one per unit or one shared")
    _check_window(dataset, units, starts_arr, total)
    needs_norm = bool(roles.nn_inputs or roles.nn_static)
    if needs_norm and normalizer is None:
        raise ConfigError("the roles have network inputs (nn_inputs/nn_static) but no normalizer was given")

    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    # One gather of every needed variable: a sliding-window view of the data indexed by
    # (unit, start) copies exactly the windows, [U, V, T], then viewed time-major [T, U, V].
    names = list(dict.fromkeys([*roles.forcings.values(), *roles.nn_inputs, *roles.targets.values()]))
    column = {n: i for i, n in enumerate(names)}
    var_idx = np.array([dataset.variable_index(n) for n in names], dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(dataset.data, total, axis=1)
    first = int(starts_arr[0]) if shared else starts_arr[:, None]
    block = windows[units[:, None], first, var_idx[None, :]].transpose(2, 0, 1)

    forcings = {k: _tensor(block[:, :, column[v]], dtype) for k, v in roles.forcings.items()}
    targets = {k: _tensor(block[warmup:, :, column[v]], dtype) for k, v in roles.targets.items()}
    attributes = {
        k: _tensor(dataset.attributes[units, dataset.attribute_index(v)], dtype) for k, v in roles.attributes.items()
    }

    static = None
    if roles.nn_static:
        attr_idx = np.array([dataset.attribute_index(n) for n in roles.nn_static], dtype=np.int64)
        raw = dataset.attributes[units[:, None], attr_idx[None, :]]
        static = normalizer.transform_attributes(raw, roles.nn_static).astype(np_dtype, copy=False)
        if nan_fill is not None:
            np.copyto(static, nan_fill, where=~np.isfinite(static))
    n_seq, n_repeat = len(roles.nn_inputs), len(roles.nn_static) if roles.nn_static_in_sequence else 0
    nn_inputs = None
    if n_seq + n_repeat:
        nn_inputs = np.empty((total, units.size, n_seq + n_repeat), dtype=np_dtype)
        if n_seq:
            cols = [column[n] for n in roles.nn_inputs]
            nn_inputs[:, :, :n_seq] = normalizer.transform_variables(block[:, :, cols], roles.nn_inputs)
            if nan_fill is not None:
                part = nn_inputs[:, :, :n_seq]
                np.copyto(part, nan_fill, where=~np.isfinite(part))
        if n_repeat:
            nn_inputs[:, :, n_seq:] = static[None]

    return Batch(
        forcings=forcings,
        nn_inputs=None if nn_inputs is None else torch.from_numpy(nn_inputs).to(dtype),
        static_inputs=None if static is None else torch.from_numpy(static).to(dtype),
        attributes=attributes,
        targets=targets,
        warmup=int(warmup),
        unit_ids=tuple(dataset.unit_ids[i] for i in units.tolist()),
        times=dataset.dates[int(starts_arr[0]) : int(starts_arr[0]) + total].copy() if shared else None,
    )
