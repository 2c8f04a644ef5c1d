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

from typing import Literal

import torch
from pydantic import Field

from dmg.core.components import ComponentConfig
from dmg.core.errors import ShapeError
from dmg.core.losses import Loss, masked_pair, safe_sqrt

__all__ = ["NSEBatchLoss", "RMSECombinedLoss"]


class NSEBatchLoss(Loss):
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
        p, t, valid = masked_pair(prediction, target, mask)
        if std is None:
            n = valid.sum(0)
            n_safe = n.clamp(min=1).to(p.dtype)
            mean = t.sum(0) / n_safe
            spread = safe_sqrt(torch.where(valid, (t - mean) ** 2, 0.0).sum(0) / n_safe).detach()
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


class RMSECombinedLoss(Loss):
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
        p, t, valid = masked_pair(prediction, target, mask)
        count = valid.sum().clamp(min=1)
        plain = safe_sqrt(((p - t) ** 2).sum() / count)
        diff = torch.where(valid, self._transform(p) - self._transform(t), 0.0)
        transformed = safe_sqrt((diff**2).sum() / count)
        w = self.config.weight
        return (1.0 - w) * plain + w * transformed
