"""The :class:`Batch` container that carries one minibatch from the data pipeline to a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch


@dataclass
class Batch:
    """One minibatch, time-major.

    Parameters
    ----------
    forcings
        Physics forcings, name -> ``[time, unit]``.
    nn_inputs
        Time-varying network inputs ``[time, unit, features]`` (static attributes already
        repeated along time where the network wants them there), or ``None``.
    static_inputs
        Static network inputs ``[unit, attributes]``, or ``None``.
    attributes
        Static per-unit physics inputs, name -> ``[unit]`` (e.g. area, elevation).
    targets
        Observations, name -> ``[time - warmup, unit]``; NaN marks a missing value.
    warmup
        Number of leading steps used for warm-up; outputs and targets exclude them.
    unit_ids
        Identifier of each unit, for messages and saved predictions.
    times
        ``datetime64`` of each step (length ``time``), for messages and saved predictions.
    """

    forcings: dict[str, torch.Tensor]
    nn_inputs: torch.Tensor | None = None
    static_inputs: torch.Tensor | None = None
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    warmup: int = 0
    unit_ids: Sequence[str] | None = None
    times: np.ndarray | None = None

    @property
    def n_time(self) -> int:
        """Number of steps including warm-up."""
        return int(next(iter(self.forcings.values())).shape[0])

    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(next(iter(self.forcings.values())).shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Batch:
        """A copy with every floating tensor moved to ``device`` and/or cast to ``dtype``."""

        def move(x):
            if isinstance(x, torch.Tensor):
                return x.to(device=device, dtype=dtype if x.is_floating_point() else None)
            if isinstance(x, Mapping):
                return {k: move(v) for k, v in x.items()}
            return x

        return replace(self, **{f.name: move(getattr(self, f.name)) for f in fields(self)})
