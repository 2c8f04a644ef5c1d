""":class:`Normalizer`: per-variable z-scores, optionally after a transform for skewed variables."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from dmg.core.data._names import describe_missing
from dmg.core.data.dataset import ArrayDataset
from dmg.core.errors import ConfigError, InputError, ShapeError
from dmg.core.io import atomic_open

TRANSFORMS = ("none", "log", "log1p", "sqrt", "log_sqrt")
"""Transforms applied before the z-score: ``log`` is ``log(x + log_eps)``, ``log_sqrt`` is
``log10(sqrt(x) + log_eps)`` (the published δHBV's precipitation transform with ``log_eps = 0.1``)."""

ZERO_STD = 1e-12
"""A standard deviation at or below this (relative to ``max(1, |mean|)``) counts as zero."""

STATE_VERSION = 1

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Stats:
    """Statistics of one variable or attribute, computed on transformed values.

    ``std`` is 1 for a constant variable (see :class:`Normalizer`).
    """

    transform: str
    mean: float
    std: float


def _forward(x: ArrayT, transform: str, log_eps: float) -> ArrayT:
    """The transform; values below 0 are taken as 0 by the skew transforms."""
    if transform == "none":
        return x
    lib: Any = torch if isinstance(x, torch.Tensor) else np
    x = lib.clip(x, 0.0, None) if lib is np else torch.clamp(x, min=0.0)
    if transform == "log":
        return lib.log(x + log_eps)
    if transform == "log1p":
        return lib.log1p(x)
    if transform == "log_sqrt":
        return lib.log10(lib.sqrt(x) + log_eps)
    return lib.sqrt(x)


def _backward(y: ArrayT, transform: str, log_eps: float) -> ArrayT:
    """Inverse of :func:`_forward` (for values within its range)."""
    if transform == "none":
        return y
    lib: Any = torch if isinstance(y, torch.Tensor) else np
    if transform == "log":
        return lib.exp(y) - log_eps
    if transform == "log1p":
        return lib.expm1(y)
    if transform == "log_sqrt":
        root = 10.0**y - log_eps
        root = lib.clip(root, 0.0, None) if lib is np else torch.clamp(root, min=0.0)
        return root * root
    y = lib.clip(y, 0.0, None) if lib is np else torch.clamp(y, min=0.0)
    return y * y


def _check_non_negative(name: str, values: np.ndarray, transform: str, kind: str) -> None:
    """Refuse fitting a skew transform on data with negative values (they would be taken as 0).

    Raises
    ------
    ConfigError
        Naming ``data.roles.transforms.<name>``, the transform and the smallest value.
    """
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() < 0:
        raise ConfigError(
            f"data.roles.transforms.{name}: transform {transform!r} is for values >= 0, but {kind} {name!r} goes "
            f"down to {finite.min():.6g} in the training data; use 'none' for it"
        )


class Normalizer:
    """Per-variable z-score ``(T(x) - mean) / std`` with an optional transform ``T`` per variable.

    Statistics are fitted (NaN-aware, in float64) on the training split only — the caller
    passes that split to :meth:`fit`. Variables (time series) and attributes (static) are
    kept apart, so a name may appear in both.

    Transforms, for skewed non-negative variables such as precipitation or streamflow:

    * ``"none"``: ``T(x) = x``;
    * ``"log"``: ``T(x) = log(max(x, 0) + log_eps)``;
    * ``"log1p"``: ``T(x) = log(1 + max(x, 0))``;
    * ``"sqrt"``: ``T(x) = sqrt(max(x, 0))``;
    * ``"log_sqrt"``: ``T(x) = log10(sqrt(max(x, 0)) + log_eps)`` (the published δHBV's transform of
      precipitation, with ``log_eps = 0.1``).

    Fitting a skew transform on data with a negative value is an error (a
    :class:`~dmg.core.errors.ConfigError` naming the variable and the smallest value); when
    applied, the skew transforms treat negative values as 0 rather than producing NaN.

    A variable whose standard deviation is zero (constant in the training data, e.g. an
    attribute shared by every training unit) gets ``std = 1``: it is only centred, and a
    constant normalises to exactly 0 instead of dividing by zero.

    Parameters
    ----------
    transforms
        Transform by variable/attribute name; names not listed use ``"none"``.
    log_eps
        Offset of the ``"log"`` transform, in the variable's physical unit.
    """

    def __init__(self, transforms: Mapping[str, str] | None = None, log_eps: float = 0.1) -> None:
        self.transforms = dict(transforms or {})
        bad = {k: v for k, v in self.transforms.items() if v not in TRANSFORMS}
        if bad:
            raise ConfigError(f"unknown normalizer transform(s) {bad}; choose from {list(TRANSFORMS)}")
        if not log_eps > 0:
            raise ConfigError(f"log_eps must be positive, got {log_eps}")
        self.log_eps = float(log_eps)
        self.variable_stats: dict[str, Stats] = {}
        self.attribute_stats: dict[str, Stats] = {}

    def __repr__(self) -> str:
        return f"Normalizer(variables={list(self.variable_stats)}, attributes={list(self.attribute_stats)})"

    # ----------------------------------------------------------------- fitting

    def _stats(self, name: str, values: np.ndarray, kind: str) -> Stats:
        transform = self.transforms.get(name, "none")
        x = np.asarray(values, dtype=np.float64)
        if transform != "none":
            _check_non_negative(name, x, transform, kind)
        y = _forward(x, transform, self.log_eps)
        finite = y[np.isfinite(y)]
        if finite.size == 0:
            raise InputError(f"{kind} {name!r} has no finite value in the data the normalizer is fitted on")
        mean = float(finite.mean())
        std = float(finite.std())
        if std <= ZERO_STD * max(1.0, abs(mean)):
            std = 1.0
        return Stats(transform, mean, std)

    def fit(
        self,
        dataset: ArrayDataset,
        variables: Sequence[str] = (),
        attributes: Sequence[str] = (),
        attribute_population: str = "training",
    ) -> Normalizer:
        """Compute statistics of ``variables`` and ``attributes`` over all units and steps of ``dataset``.

        NaN and infinite values are ignored. Pass the training split only. With
        ``attribute_population="reference"``, attribute statistics come from the dataset's
        ``reference_attributes`` (a wider population of units) instead. Returns ``self``.
        """
        if attribute_population not in ("training", "reference"):
            raise ConfigError(f"attribute_population must be 'training' or 'reference', got {attribute_population!r}")
        reference = dataset.reference_attributes if attribute_population == "reference" else None
        if attribute_population == "reference" and reference is None and attributes:
            raise ConfigError(
                "data.roles.attribute_statistics: 'reference' needs a dataset with a reference attribute table "
                "(ArrayDataset.reference_attributes; the camels_us and netcdf datasets provide one); "
                "this dataset has none, use 'training'"
            )
        for name in variables:
            self.variable_stats[name] = self._stats(name, dataset.variable(name), "variable")
        for name in attributes:
            values = dataset.attribute(name) if reference is None else reference[:, dataset.attribute_index(name)]
            self.attribute_stats[name] = self._stats(name, values, "attribute")
        return self

    # ----------------------------------------------------------------- applying

    @staticmethod
    def _lookup(table: dict[str, Stats], names: Sequence[str], kind: str) -> list[Stats]:
        out = []
        for name in names:
            if name not in table:
                raise InputError(
                    f"the normalizer has no statistics for it: {describe_missing(name, list(table), kind)}"
                )
            out.append(table[name])
        return out

    def _apply(self, array: ArrayT, stats: list[Stats], inverse: bool) -> ArrayT:
        if array.shape[-1] != len(stats):
            raise ShapeError(f"last axis of the array has {array.shape[-1]} entries but {len(stats)} names were given")
        is_torch = isinstance(array, torch.Tensor)
        if is_torch:
            if not array.is_floating_point():
                array = array.float()
            out = array.clone()
        else:
            out = np.array(array, dtype=array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64)
        # One vectorised pass per transform, not per variable.
        for transform in {s.transform for s in stats}:
            cols = [i for i, s in enumerate(stats) if s.transform == transform]
            mean = np.array([stats[i].mean for i in cols])
            std = np.array([stats[i].std for i in cols])
            if is_torch:
                idx = torch.as_tensor(cols, device=out.device)
                mean = torch.as_tensor(mean, dtype=out.dtype, device=out.device)
                std = torch.as_tensor(std, dtype=out.dtype, device=out.device)
                part = out.index_select(-1, idx)
            else:
                mean, std = mean.astype(out.dtype), std.astype(out.dtype)
                part = out[..., cols]
            if inverse:
                part = _backward(part * std + mean, transform, self.log_eps)
            else:
                part = (_forward(part, transform, self.log_eps) - mean) / std
            if is_torch:
                out = out.index_copy(-1, idx, part)
            else:
                out[..., cols] = part
        return out

    def transform_variables(self, array: ArrayT, names: Sequence[str]) -> ArrayT:
        """Normalise time-varying values whose last axis holds ``names`` (e.g. ``[unit, time, var]``).

        Works on numpy arrays and torch tensors; returns a new array of the same kind.
        """
        return self._apply(array, self._lookup(self.variable_stats, names, "variable"), inverse=False)

    def transform_attributes(self, array: ArrayT, names: Sequence[str]) -> ArrayT:
        """Normalise static values whose last axis holds ``names`` (e.g. ``[unit, attribute]``)."""
        return self._apply(array, self._lookup(self.attribute_stats, names, "attribute"), inverse=False)

    def inverse(self, array: ArrayT, names: Sequence[str]) -> ArrayT:
        """Back from normalised to physical values for variables ``names`` (last axis)."""
        return self._apply(array, self._lookup(self.variable_stats, names, "variable"), inverse=True)

    def inverse_attributes(self, array: ArrayT, names: Sequence[str]) -> ArrayT:
        """Back from normalised to physical values for attributes ``names`` (last axis)."""
        return self._apply(array, self._lookup(self.attribute_stats, names, "attribute"), inverse=True)

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this normalizer, as plain JSON-compatible values."""
        return {
            "version": STATE_VERSION,
            "log_eps": self.log_eps,
            "transforms": dict(self.transforms),
            "variables": {k: asdict(v) for k, v in self.variable_stats.items()},
            "attributes": {k: asdict(v) for k, v in self.attribute_stats.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        if state.get("version") != STATE_VERSION:
            raise InputError(f"normalizer state of version {state.get('version')!r}; expected {STATE_VERSION}")

        def stats(table: Mapping[str, Any], kind: str) -> dict[str, Stats]:
            out = {}
            for name, s in table.items():
                st = Stats(str(s["transform"]), float(s["mean"]), float(s["std"]))
                if st.transform not in TRANSFORMS or not (math.isfinite(st.mean) and st.std > 0):
                    raise InputError(f"normalizer state for {kind} {name!r} is invalid: {s}")
                out[name] = st
            return out

        self.log_eps = float(state["log_eps"])
        self.transforms = dict(state.get("transforms", {}))
        self.variable_stats = stats(state["variables"], "variable")
        self.attribute_stats = stats(state["attributes"], "attribute")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` as JSON (atomically)."""
        with atomic_open(path, "w", encoding="utf-8") as fh:
            json.dump(self.state_dict(), fh, indent=2)
            fh.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Normalizer:
        """Read a normalizer written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"normalizer file {str(path)!r} does not exist")
        norm = cls()
        norm.load_state_dict(json.loads(path.read_text(encoding="utf-8")))
        return norm
