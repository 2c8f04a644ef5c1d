"""Generic training losses, NaN-masked.

Each loss is an ``nn.Module`` whose ``forward(prediction, target)`` takes ``[time, unit]``
tensors (``[time]`` or extra trailing axes are flattened into units) and returns a scalar.
Steps where the target is not finite are ignored: they contribute nothing to the value and
get exactly zero gradient. A batch without any valid target returns a zero that still
carries a (zero) gradient, never NaN.

Every loss has a pydantic ``Config`` and ``from_config``, and is registered under the
``dmg.losses`` entry-point group (``mse``, ``rmse``, ``nse``, ``kge``).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from dmg.core.components import Component, ComponentConfig
from dmg.core.errors import ShapeError


def masked_pair(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flatten to ``[time, unit]`` and return prediction and target zeroed where invalid, plus the mask.

    Zeroing with ``torch.where`` before any arithmetic keeps NaN out of the backward pass.
    """
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


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0`` that is exactly 0 with a zero (not NaN) gradient at ``x = 0``."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, 1.0)), 0.0)


class Loss(Component, nn.Module):
    """Base class of losses, on the component convention (:mod:`dmg.core.components`).

    Subclasses set ``Config`` and implement ``forward(prediction, target, mask=None)``; options are
    read from ``self.config``.
    """

    class Config(ComponentConfig):
        """Options of a loss."""

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        nn.Module.__init__(self)
        self.config = self.validate_config(config, options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.model_dump().items())


class MSELoss(Loss):
    """Mean squared error over all valid (unit, step) pairs, in target units squared."""

    class Config(ComponentConfig):
        """Options of :class:`MSELoss` (none)."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        p, t, valid = masked_pair(prediction, target, mask)
        return ((p - t) ** 2).sum() / valid.sum().clamp(min=1)


class RMSELoss(Loss):
    """Root mean squared error over all valid (unit, step) pairs, in target units."""

    class Config(ComponentConfig):
        """Options of :class:`RMSELoss` (none)."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        p, t, valid = masked_pair(prediction, target, mask)
        return safe_sqrt(((p - t) ** 2).sum() / valid.sum().clamp(min=1))


class NSELoss(Loss):
    """``1 - NSE`` averaged over units, each normalised by its target variance in the batch.

    For unit ``j`` with valid steps ``V_j``::

        loss_j = mean_{V_j} (p - t)² / (var_{V_j}(t) + eps)

    which equals ``1 - NSE_j`` when ``eps = 0``. ``eps`` (target units squared) keeps
    nearly constant targets (e.g. a dry basin) from dominating. Units with fewer than two
    valid steps are left out of the average.
    """

    class Config(ComponentConfig):
        """Options of :class:`NSELoss`."""

        eps: float = Field(0.1, ge=0.0, description="Added to each unit's target variance (target units squared).")

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        p, t, valid = masked_pair(prediction, target, mask)
        n = valid.sum(0)
        used = n >= 2
        n_safe = n.clamp(min=1).to(p.dtype)
        mean_t = t.sum(0) / n_safe
        var_t = torch.where(valid, (t - mean_t) ** 2, 0.0).sum(0) / n_safe
        mse = ((p - t) ** 2).sum(0) / n_safe
        per_unit = mse / (var_t + self.config.eps)
        return torch.where(used, per_unit, 0.0).sum() / used.sum().clamp(min=1)


class KGELoss(Loss):
    """``1 - KGE`` averaged over units (units with fewer than two valid steps are left out).

    ``KGE = 1 - √((r-1)² + (α-1)² + (β-1)²)`` with ``r`` the correlation, ``α = σ_p/σ_t``
    and ``β = μ_p/μ_t`` over each unit's valid steps. ``eps`` is added to the variances and
    to ``μ_t`` so constant series keep finite values and gradients.
    """

    class Config(ComponentConfig):
        """Options of :class:`KGELoss`."""

        eps: float = Field(1e-6, gt=0.0, description="Added to variances and to the target mean (target units).")

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        p, t, valid = masked_pair(prediction, target, mask)
        n = valid.sum(0)
        used = n >= 2
        eps = self.config.eps
        n_safe = n.clamp(min=1).to(p.dtype)
        mean_p, mean_t = p.sum(0) / n_safe, t.sum(0) / n_safe
        dp = torch.where(valid, p - mean_p, 0.0)
        dt = torch.where(valid, t - mean_t, 0.0)
        std_p = torch.sqrt((dp * dp).sum(0) / n_safe + eps)
        std_t = torch.sqrt((dt * dt).sum(0) / n_safe + eps)
        r = (dp * dt).sum(0) / n_safe / (std_p * std_t)
        alpha = std_p / std_t
        beta = mean_p / (mean_t + eps)
        distance = safe_sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)
        return torch.where(used, distance, 0.0).sum() / used.sum().clamp(min=1)
