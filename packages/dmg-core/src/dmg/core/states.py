"""Saved model states: a trained run's whole state at a date, written to a file and read back.

A state file (``RUN/states/<date>.pt``) holds a :class:`~dmg.core.stepping.ModelState` (physics states
of every member, buffers of series models, the networks' recurrent state) at the end of a date,
with what it belongs to: the model's configuration, a digest of its weights, the unit ids, the
date and the step length. A simulation started from it (``dmg simulate RUN --from-state FILE``)
begins at the next step and continues the simulation that saved it exactly.

Files are written atomically (:mod:`dmg.core.io`) and read with ``torch.load(weights_only=True)``.
A file that does not belong to the run (another model or other weights, units it does not hold, a
date that is not the step before the simulation's start) is refused with an error naming the file and
what differs. A state holds its units in any order and starts a simulation of any of them.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from dmg.core.config import RunConfig
from dmg.core.data.batching import make_batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.errors import InputError
from dmg.core.evaluation import check_predictions
from dmg.core.io import atomic_torch_save
from dmg.core.model import DeltaModel
from dmg.core.runfolder import RunFolder
from dmg.core.stepping import ModelState, Stepper

__all__ = [
    "STATE_FORMAT",
    "SavedState",
    "StateError",
    "read_state",
    "model_digest",
    "write_state",
    "simulate_data",
    "state_path",
]

STATE_FORMAT = 1
"""Version of the state file layout."""
KIND = "dmg-model-state"


class StateError(InputError):
    """A state file that cannot be read or does not belong to the simulation asked for."""


@dataclass(frozen=True)
class SavedState:
    """A model state with what it belongs to.

    Attributes
    ----------
    state
        The model's state at the end of ``date``.
    date
        The last simulated step, ``datetime64``.
    step
        The length of one step, ``timedelta64``.
    unit_ids
        The units, in the order of the state's unit axis.
    model
        The run's model configuration, as canonical JSON.
    weights
        Digest of the model's weights (:func:`model_digest`).
    source
        The file it was read from (:func:`read_state`), or ``None``.
    sha256
        The SHA-256 of that file's bytes, or ``None``.
    """

    state: ModelState
    date: np.datetime64
    step: np.timedelta64
    unit_ids: tuple[str, ...]
    model: str
    weights: str
    source: Path | None = None
    sha256: str | None = None

    @property
    def next_date(self) -> np.datetime64:
        """The first step a simulation from this state simulates."""
        return self.date + self.step

    def for_units(self, unit_ids: Sequence[str], path: str | Path = "the state") -> SavedState:
        """The state of ``unit_ids`` (any of its units, in any order).

        Raises
        ------
        StateError
            If the state lacks some of the units, naming them and ``path``.
        """
        wanted = [str(u) for u in unit_ids]
        if tuple(wanted) == self.unit_ids:
            return self
        position = {u: i for i, u in enumerate(self.unit_ids)}
        missing = [u for u in wanted if u not in position]
        if missing:
            raise StateError(
                f"state file {path} holds {len(self.unit_ids)} units and lacks {len(missing)} of the simulation's "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); simulate units it was saved for "
                "(--units)"
            )
        return replace(self, state=self.state.select([position[u] for u in wanted]), unit_ids=tuple(wanted))


def model_description(config: RunConfig) -> str:
    """The run's model section as canonical JSON (what a state must have been saved with)."""
    return json.dumps(config.model.model_dump(mode="json"), sort_keys=True)


def model_digest(model: DeltaModel) -> str:
    """SHA-256 of the model's parameters and buffers (names, shapes and values), in hex."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return digest.hexdigest()


def state_path(folder: RunFolder, date: np.datetime64) -> Path:
    """Where the state at the end of ``date`` goes: ``RUN/states/<date>.pt`` (``:`` left out of times)."""
    return folder.path / "states" / (re.sub(r"[^0-9A-Za-z_.-]", "", date_text(date)) + ".pt")


def as_seconds(date: Any) -> np.datetime64:
    """``date`` (a ``datetime64`` of any resolution, or text) as a ``datetime64[s]``."""
    return cast(np.datetime64, np.asarray(date, dtype="datetime64[s]").reshape(())[()])


def date_text(date: np.datetime64) -> str:
    """``YYYY-MM-DD`` for a date at midnight, else ``YYYY-MM-DDTHH:MM:SS``."""
    seconds = as_seconds(date)
    day = seconds.astype("datetime64[D]")
    return str(day) if seconds == day else str(seconds)


def write_state(path: str | Path, saved: SavedState) -> Path:
    """Write ``saved`` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_torch_save(
        {
            "kind": KIND,
            "format": STATE_FORMAT,
            "date": date_text(saved.date),
            "step_seconds": int(saved.step / np.timedelta64(1, "s")),
            "unit_ids": list(saved.unit_ids),
            "model": saved.model,
            "weights": saved.weights,
            "state": saved.state.tensors(),
        },
        path,
    )
    return path


def read_state(path: str | Path) -> SavedState:
    """Read a state file; a missing, damaged or foreign file is a :class:`StateError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise StateError(f"--from-state: state file {path} does not exist")
    data = path.read_bytes()
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise StateError(
            f"state file {path} holds Python objects other than tensors and plain values; it was refused "
            "because loading it could run code"
        ) from None
    except Exception as exc:  # whatever a damaged file makes the reader raise
        raise StateError(f"state file {path} is truncated or not a state file ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise StateError(f"{path} is not a dmg model state file (written by dmg simulate --save-state)")
    if raw.get("format") != STATE_FORMAT:
        raise StateError(f"state file {path} has format {raw.get('format')}; this dmg-core reads format {STATE_FORMAT}")
    try:
        return SavedState(
            state=ModelState.from_tensors(raw["state"]),
            date=np.datetime64(raw["date"]),
            step=np.timedelta64(int(raw["step_seconds"]), "s"),
            unit_ids=tuple(str(u) for u in raw["unit_ids"]),
            model=str(raw["model"]),
            weights=str(raw["weights"]),
            source=path,
            sha256=hashlib.sha256(data).hexdigest(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state file {path} is damaged: {exc!r} is missing or malformed") from None


def check_state_file(
    path: str | Path,
    saved: SavedState,
    config: RunConfig,
    model: DeltaModel,
    unit_ids: Sequence[str],
    start: np.datetime64 | None,
) -> SavedState:
    """``saved`` (read from ``path``) for ``unit_ids``, if it belongs to this model and ``start``.

    Returns
    -------
    SavedState
        The state of ``unit_ids``, in their order (:meth:`SavedState.for_units`).

    Raises
    ------
    StateError
        Naming the file and what differs: the model configuration, its weights, the units, or the date.
    """
    if saved.model != model_description(config):
        raise StateError(
            f"state file {path} was saved by another model (model section of the run config differs); "
            "it can only start the run that saved it"
        )
    if saved.weights != model_digest(model):
        raise StateError(
            f"state file {path} was saved with other weights than this run's checkpoint; start it with the "
            "checkpoint that saved it (--checkpoint)"
        )
    if start is not None and as_seconds(start) != as_seconds(saved.next_date):
        raise StateError(
            f"state file {path} holds the state at the end of {date_text(saved.date)}: a simulation from it starts "
            f"on {date_text(saved.next_date)}, not on {date_text(start)}; use --start {date_text(saved.next_date)}"
        )
    return saved.for_units(unit_ids, path)


def simulate_data(
    config: RunConfig,
    model: DeltaModel,
    normalizer: Normalizer,
    data: ArrayDataset,
    warmup: int,
    *,
    initial: SavedState | None = None,
    save_at: np.datetime64 | None = None,
    step: np.timedelta64 | None = None,
    units_per_batch: int | None = None,
) -> tuple[dict[str, np.ndarray], SavedState | None]:
    """Simulate ``data`` as a run stepped forward (:class:`~dmg.core.stepping.Stepper`).

    Returns the ``[time - warmup, unit]`` outputs and the state at the end of ``save_at``. The model
    warms up over the first ``warmup`` steps (static parameters are the networks' output at the last
    of them), or starts from ``initial``; then it advances over the period, cut at ``save_at``.
    The outputs equal those of the same steps taken one at a time (a BMI run), to float rounding.

    Parameters
    ----------
    config, model, normalizer
        The trained run (:func:`~dmg.core.evaluation.load_trained`).
    data
        The units' inputs, with ``warmup`` steps before the period.
    warmup
        Leading steps simulated only to set the state (none when starting from ``initial``).
    initial
        The saved state of ``data``'s units to start from (checked against the run with
        :func:`check_state_file`); there is no warm-up then.
    save_at
        A date of the period at whose end the state is returned.
    step
        The length of a step (default: that of ``data``, which then needs two dates or more).
    units_per_batch
        Units simulated together (default: all).

    Raises
    ------
    InputError
        If ``save_at`` is not a date of the period, or an output is non-finite.
    """
    if initial is not None and (warmup or initial.unit_ids != tuple(data.unit_ids)):
        raise InputError(
            "a simulation from a saved state simulates the state's units without warm-up; "
            f"got warmup={warmup} and units {list(data.unit_ids)[:5]} for a state of {list(initial.unit_ids)[:5]}"
        )
    dates = data.dates
    save_index = None
    if save_at is not None:
        matches = np.flatnonzero(dates[warmup:] == as_seconds(save_at).astype(dates.dtype))
        if not matches.size:
            raise InputError(
                f"--save-state {save_at}: not a date of the simulated period {dates[warmup]} to {dates[-1]}"
            )
        save_index = warmup + int(matches[0])
    width = max(units_per_batch or data.n_units, 1)
    roles = config.data.roles.model_copy(update={"targets": {}})
    dtype = next(iter(model.parameters())).dtype
    cuts = [warmup, *([] if save_index is None else [save_index + 1]), data.n_time]
    collected: dict[str, list[np.ndarray]] = {}
    saved_parts: list[ModelState] = []
    for first in range(0, data.n_units, width):
        units = np.arange(first, min(first + width, data.n_units))
        stepper = Stepper(model)
        if initial is not None:
            stepper.load(initial.state.select(units))
        if warmup:
            stepper.warm_up(make_batch(data, roles, normalizer, units, 0, warmup, 0, dtype=dtype))
        parts: dict[str, list[np.ndarray]] = {}
        for start, stop in itertools.pairwise(cuts):
            if stop == start:
                continue
            out = stepper.advance(make_batch(data, roles, normalizer, units, start, stop - start, 0, dtype=dtype))
            for name, value in out.items():
                parts.setdefault(name, []).append(value.float().cpu().numpy())
            if save_index is not None and stop == save_index + 1:
                saved_parts.append(stepper.state())
        for name, values in parts.items():
            collected.setdefault(name, []).append(np.concatenate(values))
    predictions = {name: np.concatenate(parts, axis=1) for name, parts in collected.items()}
    check_predictions(predictions, data, warmup)
    if save_index is None:
        return predictions, None
    saved = SavedState(
        state=ModelState.concat(saved_parts),
        date=dates[save_index],
        step=_step(data) if step is None else step,
        unit_ids=tuple(data.unit_ids),
        model=model_description(config),
        weights=model_digest(model),
    )
    return predictions, saved


def _step(data: ArrayDataset) -> np.timedelta64:
    step = data.step
    if step is None:
        raise InputError("a state can only be saved for data with at least two dates (the step length is unknown)")
    return np.timedelta64(step, "s")
