"""Hydrological training losses, NaN-masked (registered under ``dmg.losses``).

Same conventions as :mod:`dmg.core.losses`: ``forward(prediction, target, mask=None)`` takes
``[time, unit]`` tensors (extra trailing axes are flattened into units) and returns a scalar;
steps whose target is not finite (or whose ``mask`` is False) contribute nothing and get
exactly zero gradient; a batch without valid targets gives a zero that still carries a
gradient, never NaN.

=================== =====================================================================
``nse_batch``        NSE* of Kratzert et al. (2019): squared errors scaled by each unit's flow std
``rmse_combined``    ``(1-w) RMSE(q) + w RMSE(T(q))`` with ``T`` a square root or a logarithm
=================== =====================================================================

``1 - KGE`` is :class:`dmg.core.losses.KGELoss` (registered as ``kge`` by dmg-core).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import ComponentConfig
from dmg.core.errors import ShapeError

__all__ = ["NSEBatchLoss", "RMSECombinedLoss"]


def _valid(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[time, unit]`` prediction and target set to 0 where invalid (before any arithmetic, so no
    NaN reaches the backward pass), and the validity mask."""
    if prediction.shape != target.shape:
        raise ShapeError(
            f"prediction has shape {tuple(prediction.shape)} but target {tuple(target.shape)}; "
            "both must be [time, unit]"
        )
    if prediction.ndim == 0:
        raise ShapeError("losses need a time axis: got 0-d inputs")
    prediction = prediction.reshape(prediction.shape[0], -1)
    target = target.to(prediction).reshape(target.shape[0], -1)
    valid = torch.isfinite(target)
    if mask is not None:
        valid = valid & mask.reshape(valid.shape).to(torch.bool)
    return torch.where(valid, prediction, 0.0), torch.where(valid, target, 0.0), valid


def _sqrt0(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0``, exactly 0 with a zero (not infinite) gradient at 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, 1.0)), 0.0)


class _Loss(nn.Module):
    """``Config``/``from_config`` plumbing shared by the losses."""

    class Config(ComponentConfig):
        """Options of a loss."""

    def __init__(self, config: ComponentConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and options:
            raise TypeError("give either a Config or keyword options, not both")
        self.config = self._validate(config if config is not None else options)

    @classmethod
    def _validate(cls, config: ComponentConfig | dict[str, Any]) -> Any:
        if isinstance(config, cls.Config):
            return config
        if isinstance(config, ComponentConfig):
            config = config.model_dump()
        return cls.Config.model_validate(config)

    @classmethod
    def from_config(cls, config: ComponentConfig | dict[str, Any] | None = None, **context: Any) -> _Loss:
        """Build from a ``Config`` (or a dict of its fields); ``context`` is accepted and unused."""
        return cls(cls._validate(config if config is not None else {}))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.model_dump().items())


class NSEBatchLoss(_Loss):
    """NSE* (Kratzert et al., 2019, HESS 23:5089): squared errors scaled by each unit's flow spread.

    ::

        loss = Σ_{valid (t, u)} (p - y)² / (s_u + eps)²  /  number of valid (t, u)

    Every valid step weighs the same (units with more valid steps count more), unlike
    :class:`dmg.core.losses.NSELoss`, which averages ``1 - NSE`` over units. ``s_u`` is
    the standard deviation of unit ``u``'s flow:

    * by default (and in a ``dmg train`` run) taken from the batch: the population standard
      deviation of the unit's valid targets in the window; units with fewer than two valid
      steps are left out, as their spread is unknown;
    * or provided: ``forward(..., std=s)`` with ``s`` of shape ``[unit]`` (target units), e.g.
      each basin's standard deviation over the whole training period as in the paper.

    ``eps`` (target units, 0.1 by default as in the paper) keeps basins with nearly
    constant flow from dominating.
    """

    class Config(ComponentConfig):
        """Options of :class:`NSEBatchLoss`."""

        eps: float = Field(0.1, ge=0.0, description="Added to each unit's flow standard deviation (target units).")

    def forward(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ) -> torch.Tensor:
        p, t, valid = _valid(prediction, target, mask)
        if std is None:
            n = valid.sum(0)
            n_safe = n.clamp(min=1).to(p.dtype)
            mean = t.sum(0) / n_safe
            spread = _sqrt0(torch.where(valid, (t - mean) ** 2, 0.0).sum(0) / n_safe).detach()
            valid = valid & (n >= 2)
        else:
            spread = torch.as_tensor(std, dtype=p.dtype, device=p.device).reshape(-1)
            if spread.shape[0] != p.shape[1]:
                raise ShapeError(f"std must have one value per unit ({p.shape[1]}), got shape {tuple(std.shape)}")
            if not bool(torch.all(torch.isfinite(spread) & (spread >= 0))):
                raise ValueError("std must be finite and non-negative for every unit")
        weight = 1.0 / (spread + self.config.eps) ** 2
        squared = torch.where(valid, (p - t) ** 2 * weight, 0.0)
        return squared.sum() / valid.sum().clamp(min=1)


class RMSECombinedLoss(_Loss):
    """RMSE of the flow plus RMSE of a transformed flow, weighted::

        loss = (1 - weight) RMSE(p, y) + weight RMSE(T(p), T(y))

    with ``T(q) = sqrt(max(q, 0) + eps)`` (``transform: sqrt``) or ``T(q) = log(max(q, 0) + eps)``
    (``transform: log``). The transformed term stresses low flows. Each RMSE pools every
    valid ``(step, unit)`` pair of the batch. A negative prediction is held at 0 inside ``T``
    (no gradient through ``T`` there; the plain term still pulls it up). ``eps`` is in target
    units and keeps ``T`` differentiable at zero flow.
    """

    class Config(ComponentConfig):
        """Options of :class:`RMSECombinedLoss`."""

        weight: float = Field(0.25, ge=0.0, le=1.0, description="Weight of the transformed-flow RMSE.")
        transform: Literal["sqrt", "log"] = Field("log", description="Transform T of the second term.")
        eps: float = Field(0.1, gt=0.0, description="Added to the flow inside T (target units).")

    def _transform(self, q: torch.Tensor) -> torch.Tensor:
        shifted = q.clamp(min=0.0) + self.config.eps
        return torch.sqrt(shifted) if self.config.transform == "sqrt" else torch.log(shifted)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        p, t, valid = _valid(prediction, target, mask)
        count = valid.sum().clamp(min=1)
        plain = _sqrt0(((p - t) ** 2).sum() / count)
        diff = torch.where(valid, self._transform(p) - self._transform(t), 0.0)
        transformed = _sqrt0((diff**2).sum() / count)
        w = self.config.weight
        return (1.0 - w) * plain + w * transformed
