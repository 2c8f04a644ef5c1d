"""Where a non-finite loss comes from: the first non-finite output and the inputs that led to it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from dmg.core.data.batch import Batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.roles import DataRoles

EXTREME_RATIO = 1e3
"""An input is reported as extreme when its largest magnitude exceeds this many times its 99th percentile."""

OVERFLOW = 1e18
"""Outputs beyond this magnitude make a squared-error loss overflow in float32 (about 3.4e38)."""

USUAL_CAUSES = (
    "usual causes: an extreme or wrongly scaled input (check its unit, and missing-value codes such as -999 "
    "that should be NaN), a learning rate too high (train.optimizer.lr), or no gradient clipping (train.grad_clip)"
)


def describe_nonfinite(
    dataset: ArrayDataset,
    roles: DataRoles,
    units: np.ndarray,
    starts: np.ndarray | int,
    batch: Batch,
    outputs: Mapping[str, torch.Tensor],
) -> str:
    """A sentence naming the first non-finite output (name, unit id, date) and the most extreme input.

    Parameters
    ----------
    dataset
        The data the batch was cut from.
    roles
        The run's data roles (forcing name -> dataset variable).
    units, starts
        Unit indices of the batch in ``dataset`` and the first step of each unit's window (or one shared).
    batch
        The batch (forcings ``[time, unit]`` including ``batch.warmup`` leading steps).
    outputs
        What the model returned for the batch (``[time - warmup, unit, ...]``).
    """
    units = np.asarray(units).reshape(-1)
    first = np.broadcast_to(np.asarray(starts).reshape(-1), units.shape)

    def where(step: int, column: int) -> str:
        index = int(first[column]) + step
        date = dataset.dates[index] if 0 <= index < dataset.n_time else "?"
        return f"unit {dataset.unit_ids[int(units[column])]} on {_date(date)}"

    found = _first_nonfinite(outputs, batch.warmup)
    largest = _largest_output(outputs) if found is None else None
    if largest is not None:
        name, step, column, value = largest
        head = f"the loss overflows: output {name} reaches {value:.4g} at {where(batch.warmup + step, column)}"
        limit = batch.warmup + step + 1
    elif found is None:
        head = "the model's outputs are finite but the loss is not (check the targets for infinite values)"
        limit = batch.n_time
    else:
        name, step, column = found
        head = f"first non-finite output: {name} at {where(batch.warmup + step, column)}"
        limit = batch.warmup + step + 1
    extreme = _most_extreme_input(dataset, roles, batch, limit)
    if extreme is not None:
        forcing, variable, value, step, column = extreme
        unit = dataset.units.get(variable, "")
        head += (
            f"; the most extreme input before it: forcing {forcing} (variable {variable!r}"
            f"{f', {unit}' if unit else ''}) = {value:.4g} at {where(step, column)}"
        )
    return f"{head}; {USUAL_CAUSES}"


def _first_nonfinite(outputs: Mapping[str, torch.Tensor], warmup: int) -> tuple[str, int, int] | None:
    best: tuple[str, int, int] | None = None
    for name, value in outputs.items():
        if not isinstance(value, torch.Tensor) or value.dim() < 2 or not value.is_floating_point():
            continue
        bad = ~torch.isfinite(value.detach())
        bad = bad.reshape(bad.shape[0], bad.shape[1], -1).any(-1)
        if not bool(bad.any()):
            continue
        steps = torch.nonzero(bad.any(1)).flatten()
        step = int(steps[0])
        column = int(torch.nonzero(bad[step]).flatten()[0])
        if best is None or step < best[1]:
            best = (name, step, column)
    return best


def _largest_output(outputs: Mapping[str, torch.Tensor]) -> tuple[str, int, int, float] | None:
    """The output value of largest magnitude, if it is large enough that squaring it overflows float32."""
    best: tuple[str, int, int, float] | None = None
    for name, value in outputs.items():
        if not isinstance(value, torch.Tensor) or value.dim() < 2 or not value.is_floating_point():
            continue
        flat = value.detach().abs().reshape(value.shape[0], value.shape[1], -1).amax(-1)
        index = int(torch.argmax(flat))
        step, column = divmod(index, flat.shape[1])
        peak = float(value.detach().reshape(value.shape[0], value.shape[1], -1)[step, column].abs().max())
        if peak > OVERFLOW and (best is None or peak > abs(best[3])):
            best = (name, step, column, peak)
    return best


def _most_extreme_input(
    dataset: ArrayDataset, roles: DataRoles, batch: Batch, limit: int
) -> tuple[str, str, float, int, int] | None:
    worst: tuple[float, tuple[str, str, float, int, int]] | None = None
    for forcing, variable in roles.forcings.items():
        values = batch.forcings.get(forcing)
        if values is None or values.dim() != 2:
            continue
        window = values[:limit].detach().double().cpu().numpy()
        magnitude = np.abs(window)
        finite = magnitude[np.isfinite(magnitude)]
        if finite.size == 0:
            continue
        typical = max(float(np.percentile(finite, 99)), 1e-12)
        magnitude = np.where(np.isfinite(magnitude), magnitude, np.inf)
        step, column = np.unravel_index(int(np.argmax(magnitude)), magnitude.shape)
        ratio = magnitude[step, column] / typical
        if ratio >= EXTREME_RATIO and (worst is None or ratio > worst[0]):
            worst = (ratio, (forcing, variable, float(window[step, column]), int(step), int(column)))
    return None if worst is None else worst[1]


def _date(value: object) -> str:
    text = str(value)
    return text[:10] if text.endswith("T00:00:00") or len(text) == 10 else text
