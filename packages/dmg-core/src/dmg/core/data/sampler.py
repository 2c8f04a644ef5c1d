"""Sampling of training windows (:class:`WindowSampler`) and evaluation windows (:func:`sequential_windows`)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from dmg.core.errors import ConfigError, InputError

STATE_VERSION = 1
_UNALIGNED = {"align": 1, "offset": 0}


def _unit_pool(n_units: int, units: np.ndarray | None) -> np.ndarray:
    if n_units < 1:
        raise InputError(f"cannot sample from {n_units} units")
    if units is None:
        return np.arange(n_units, dtype=np.int64)
    pool = np.asarray(units).reshape(-1)
    if pool.dtype.kind not in "iu":
        raise InputError(f"units must be integer positions, got dtype {pool.dtype}")
    pool = pool.astype(np.int64)
    if pool.size == 0:
        raise InputError("units is empty: no unit to sample from")
    out = pool[(pool < 0) | (pool >= n_units)]
    if out.size:
        raise InputError(f"unit index {int(out[0])} is out of range for {n_units} units")
    if np.unique(pool).size != pool.size:
        raise InputError("units contains repeated indices")
    return pool


def _check_window(n_time: int, length: int, warmup: int) -> None:
    if length < 1 or warmup < 0:
        raise ConfigError(f"windows need length >= 1 and warmup >= 0, got length={length}, warmup={warmup}")
    if warmup + length > n_time:
        raise ConfigError(
            f"a window of warmup {warmup} + length {length} = {warmup + length} steps does not fit in "
            f"{n_time} steps of data; shorten the window or lengthen the period"
        )


class WindowSampler:
    """Random units × random windows for training: batches of ``(units [batch], starts [batch])``.

    Each batch draws ``batch_size`` units (without replacement when ``batch_size`` is at most
    the number of units; otherwise every unit appears ``batch_size // n`` or one more times)
    and, independently for each, the first step of a window of ``warmup + length`` steps
    lying wholly inside ``[0, n_time)``.

    One epoch is :attr:`iterations_per_epoch` batches; by default

    ``ceil(n_pool * (n_time - warmup) / (batch_size * length))``

    so that the target steps drawn in an epoch equal, in expectation, the steps of every
    unit that can be a target once (``n_pool`` is the number of units sampled from).

    Draws are reproducible: epoch ``e`` uses a generator seeded from ``(seed, e)``.
    :meth:`state_dict` records the epoch, the position in it and the generator state, so a
    sampler restored with :meth:`load_state_dict` draws exactly the batches an
    uninterrupted one would. Iterating yields the rest of the current epoch; the epoch
    advances by itself after its last batch (see :meth:`set_epoch`).

    Parameters
    ----------
    n_units, n_time
        Size of the dataset the windows index.
    length
        Steps after the warm-up in each window.
    warmup
        Warm-up steps before them.
    batch_size
        Units per batch.
    seed
        Seed of the draws (non-negative integer).
    units
        Positions of the units to sample from (e.g. the training units); default all.
    iterations_per_epoch
        Batches per epoch; default from the formula above.
    align, offset
        Windows start only at steps ``offset + align * k`` (e.g. at 00:00 of a day in hourly data:
        ``align=24`` and ``offset`` the first step at 00:00); default every step.

    Examples
    --------
    >>> sampler = WindowSampler(n_units=100, n_time=3650, length=365, warmup=365, batch_size=32, seed=0)
    >>> for epoch in range(2):
    ...     sampler.set_epoch(epoch)
    ...     for units, starts in sampler:
    ...         pass  # make_batch(dataset, roles, normalizer, units, starts, 365, 365)
    """

    def __init__(
        self,
        n_units: int,
        n_time: int,
        length: int,
        warmup: int,
        batch_size: int,
        seed: int = 0,
        units: np.ndarray | None = None,
        *,
        iterations_per_epoch: int | None = None,
        align: int = 1,
        offset: int = 0,
    ) -> None:
        _check_window(n_time, length, warmup)
        if align < 1 or not 0 <= offset < align:
            raise ConfigError(f"window alignment needs align >= 1 and 0 <= offset < align, got {align}, {offset}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        self.n_units, self.n_time = int(n_units), int(n_time)
        self.length, self.warmup, self.batch_size, self.seed = int(length), int(warmup), int(batch_size), int(seed)
        self.units = _unit_pool(self.n_units, units)
        if iterations_per_epoch is None:
            target_steps = self.units.size * (self.n_time - self.warmup)
            iterations_per_epoch = max(1, math.ceil(target_steps / (self.batch_size * self.length)))
        if iterations_per_epoch < 1:
            raise ConfigError(f"iterations_per_epoch must be >= 1, got {iterations_per_epoch}")
        self.iterations_per_epoch = int(iterations_per_epoch)
        self.align, self.offset = int(align), int(offset)
        last = self.n_time - self.warmup - self.length
        if last < self.offset:
            raise ConfigError(
                f"no window of warmup {warmup} + length {length} steps starting at step {offset} (+ a multiple of "
                f"{align}) fits in {n_time} steps of data; shorten the window or lengthen the period"
            )
        self.n_starts = (last - self.offset) // self.align + 1
        self._start_epoch(0)

    def _epoch_rng(self, epoch: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))

    def __len__(self) -> int:
        return self.iterations_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make ``epoch`` current, with its own reproducible draws; the current epoch keeps its position.

        :attr:`epoch` is the epoch the *next* batch belongs to: drawing the last batch of an
        epoch moves on to the next one. So a training loop that calls ``set_epoch`` at the top
        of every epoch draws the same batches as one that never calls it, and after
        :meth:`load_state_dict` it resumes with ``for epoch in range(sampler.epoch, n_epochs)``,
        mid-epoch or not.
        """
        if epoch < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch}")
        if epoch != self.epoch:
            self._start_epoch(int(epoch))

    def _start_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0
        self._rng = self._epoch_rng(epoch)

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch ``(unit positions [batch_size], window starts [batch_size])``."""
        rng, pool = self._rng, self.units.size
        if self.batch_size <= pool:
            pick = rng.choice(pool, size=self.batch_size, replace=False)
        else:
            full, rest = divmod(self.batch_size, pool)
            pick = np.concatenate(
                [rng.permutation(pool) for _ in range(full)] + [rng.choice(pool, size=rest, replace=False)]
            )
        starts = rng.integers(0, self.n_starts, size=self.batch_size, dtype=np.int64)
        if self.align != 1:
            starts = self.offset + self.align * starts
        self.position += 1
        if self.position >= self.iterations_per_epoch:
            self._start_epoch(self.epoch + 1)
        return self.units[pick], starts

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The remaining batches of the current epoch."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.draw()

    # ----------------------------------------------------------------- state

    def _signature(self) -> dict[str, int]:
        return {
            "align": self.align,
            "offset": self.offset,
            "n_units": self.n_units,
            "n_time": self.n_time,
            "length": self.length,
            "warmup": self.warmup,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "iterations_per_epoch": self.iterations_per_epoch,
            "units_crc32": zlib.crc32(self.units.tobytes()),
        }

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position in it, generator state and the settings they belong to (plain values)."""
        return {
            "version": STATE_VERSION,
            **self._signature(),
            "epoch": self.epoch,
            "position": self.position,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; settings that differ from this sampler's are an error."""
        if state.get("version") != STATE_VERSION:
            raise InputError(f"sampler state of version {state.get('version')!r}; expected {STATE_VERSION}")
        saved = {**_UNALIGNED, **state}  # states saved before windows could be aligned
        differ = {k: (saved.get(k), v) for k, v in self._signature().items() if saved.get(k) != v}
        if differ:
            listed = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
            raise ConfigError(f"cannot resume the sampler: its settings changed ({listed})")
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = dict(state["rng"])
        self.epoch, self.position, self._rng = int(state["epoch"]), int(state["position"]), rng


class EvalWindow(NamedTuple):
    """One evaluation window: units, shared first step, and steps after the warm-up."""

    units: np.ndarray
    start: int
    length: int


def sequential_windows(
    n_units: int,
    n_time: int,
    length: int | None,
    warmup: int,
    units_per_batch: int,
    units: np.ndarray | None = None,
) -> list[EvalWindow]:
    """Windows covering every unit and every step after the warm-up, for evaluation.

    The units are taken in order, ``units_per_batch`` at a time. For each chunk the period
    after the first ``warmup`` steps is covered by consecutive windows of ``length`` steps
    (the last may be shorter), each preceded by its own ``warmup`` steps, so their targets
    tile ``[warmup, n_time)`` exactly once. ``length=None`` (or ``n_time - warmup``) gives
    one window over the full period per chunk.

    Use as ``make_batch(dataset, roles, normalizer, w.units, w.start, w.length, warmup)``.
    """
    if units_per_batch < 1:
        raise ConfigError(f"units_per_batch must be >= 1, got {units_per_batch}")
    period = n_time - warmup
    length = period if length is None else int(length)
    if length < 1 or warmup < 0:
        raise ConfigError(f"windows need length >= 1 and warmup >= 0, got length={length}, warmup={warmup}")
    if period < 1:
        raise ConfigError(f"a warm-up of {warmup} steps leaves nothing of the {n_time} steps to evaluate")
    pool = _unit_pool(n_units, units)
    windows = []
    for first in range(0, pool.size, units_per_batch):
        chunk = pool[first : first + units_per_batch]
        for start in range(0, period, length):
            windows.append(EvalWindow(chunk, start, min(length, period - start)))
    return windows
