"""Generic evaluation metrics, per unit and NaN-aware.

Every metric takes ``prediction`` and ``target`` of shape ``[time, unit]`` (torch tensors or
numpy arrays; ``[time]`` gives a scalar, extra trailing axes are kept) and returns one value
per unit. Steps where the target is not finite are ignored; a unit with fewer than two
valid steps, or for which the metric is undefined (e.g. NSE of a constant target), gets
NaN — never an exception. A non-finite prediction at a valid step makes that unit NaN,
so a failing model shows instead of being hidden. Values are computed in float64;
numpy inputs give numpy outputs.

=============== ==============================================================
``nse``          Nash–Sutcliffe efficiency ``1 - Σ(p-t)² / Σ(t-t̄)²``
``kge``          Kling–Gupta efficiency ``1 - √((r-1)² + (α-1)² + (β-1)²)``
``kge_r``        Pearson correlation (KGE component r)
``kge_alpha``    variability ratio ``σ_p / σ_t`` (KGE component α)
``kge_beta``     bias ratio ``μ_p / μ_t`` (KGE component β)
``rmse``         root mean squared error (target units)
``mse``          mean squared error (target units squared)
``mae``          mean absolute error (target units)
``bias``         mean error ``mean(p - t)`` (target units)
``pbias``        percent bias ``100 Σ(p-t) / Σt`` (%)
``correlation``  Pearson correlation
=============== ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dmg.core.errors import ShapeError

ArrayLike = torch.Tensor | np.ndarray

MIN_VALID = 2
"""Fewest valid (finite-target) steps for which a unit gets a value."""


@dataclass
class _Paired:
    """Prediction and target with the mask and per-unit moments every metric needs."""

    p: torch.Tensor  # prediction, 0 where the target is missing
    t: torch.Tensor  # target, 0 where missing
    mask: torch.Tensor
    n: torch.Tensor  # valid steps per unit
    numpy_out: bool
    out_shape: tuple[int, ...]

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, x, 0.0).sum(0) / self.n

    def finish(self, value: torch.Tensor) -> ArrayLike:
        value = torch.where(self.n >= MIN_VALID, value, torch.nan)
        value = torch.where(torch.isinf(value), torch.nan, value).reshape(self.out_shape)
        return value.cpu().numpy() if self.numpy_out else value


def _pair(prediction: ArrayLike, target: ArrayLike) -> _Paired:
    numpy_out = not isinstance(prediction, torch.Tensor) and not isinstance(target, torch.Tensor)
    device = next((x.device for x in (prediction, target) if isinstance(x, torch.Tensor)), None)
    p = torch.as_tensor(prediction).detach().to(device=device, dtype=torch.float64)
    t = torch.as_tensor(target).detach().to(device=device, dtype=torch.float64)
    if p.shape != t.shape:
        raise ShapeError(
            f"prediction has shape {tuple(p.shape)} but target {tuple(t.shape)}; both must be [time, unit]"
        )
    if p.ndim == 0:
        raise ShapeError("metrics need a time axis: got 0-d inputs")
    out_shape = tuple(p.shape[1:])
    p, t = p.reshape(p.shape[0], -1), t.reshape(t.shape[0], -1)
    mask = torch.isfinite(t)
    return _Paired(
        torch.where(mask, p, 0.0), torch.where(mask, t, 0.0), mask, mask.sum(0).to(torch.float64), numpy_out, out_shape
    )


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, NaN where ``den`` is 0."""
    return torch.where(den != 0, num / torch.where(den != 0, den, 1.0), torch.nan)


def _moments(d: _Paired) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means, population standard deviations and covariance of prediction and target."""
    mp, mt = d.mean(d.p), d.mean(d.t)
    dp, dt = d.p - mp, d.t - mt
    sp, st = d.mean(dp * dp).sqrt(), d.mean(dt * dt).sqrt()
    return mp, mt, sp, st, d.mean(dp * dt)


def mse(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Mean squared error per unit (target units squared)."""
    d = _pair(prediction, target)
    return d.finish(d.mean((d.p - d.t) ** 2))


def rmse(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Root mean squared error per unit (target units)."""
    d = _pair(prediction, target)
    return d.finish(d.mean((d.p - d.t) ** 2).sqrt())


def mae(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Mean absolute error per unit (target units)."""
    d = _pair(prediction, target)
    return d.finish(d.mean((d.p - d.t).abs()))


def bias(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Mean error ``mean(prediction - target)`` per unit (target units); positive = overestimation."""
    d = _pair(prediction, target)
    return d.finish(d.mean(d.p - d.t))


def pbias(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Percent bias ``100 Σ(p - t) / Σ t`` per unit (%); NaN where the targets sum to 0."""
    d = _pair(prediction, target)
    return d.finish(100.0 * _ratio((d.p - d.t).sum(0), d.t.sum(0)))


def nse(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Nash–Sutcliffe efficiency per unit (1 is perfect; NaN for a constant target)."""
    d = _pair(prediction, target)
    mt = d.mean(d.t)
    sse = torch.where(d.mask, (d.p - d.t) ** 2, 0.0).sum(0)
    sst = torch.where(d.mask, (d.t - mt) ** 2, 0.0).sum(0)
    return d.finish(1.0 - _ratio(sse, sst))


def correlation(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Pearson correlation per unit; NaN where either series is constant."""
    d = _pair(prediction, target)
    _, _, sp, st, cov = _moments(d)
    return d.finish(_ratio(cov, sp * st))


def kge_r(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """KGE correlation component ``r`` (Pearson correlation) per unit."""
    return correlation(prediction, target)


def kge_alpha(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """KGE variability component ``α = σ_p / σ_t`` per unit."""
    d = _pair(prediction, target)
    _, _, sp, st, _ = _moments(d)
    return d.finish(_ratio(sp, st))


def kge_beta(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """KGE bias component ``β = μ_p / μ_t`` per unit."""
    d = _pair(prediction, target)
    mp, mt, _, _, _ = _moments(d)
    return d.finish(_ratio(mp, mt))


def kge(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Kling–Gupta efficiency (Gupta et al., 2009) per unit: ``1 - √((r-1)² + (α-1)² + (β-1)²)``."""
    d = _pair(prediction, target)
    mp, mt, sp, st, cov = _moments(d)
    r, alpha, beta = _ratio(cov, sp * st), _ratio(sp, st), _ratio(mp, mt)
    return d.finish(1.0 - ((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2).sqrt())


METRICS: dict[str, Callable[[ArrayLike, ArrayLike], ArrayLike]] = {
    "nse": nse,
    "kge": kge,
    "kge_r": kge_r,
    "kge_alpha": kge_alpha,
    "kge_beta": kge_beta,
    "rmse": rmse,
    "mse": mse,
    "mae": mae,
    "bias": bias,
    "pbias": pbias,
    "correlation": correlation,
}
"""The generic metrics by name."""
