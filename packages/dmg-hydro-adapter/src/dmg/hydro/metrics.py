"""Hydrological evaluation metrics, per unit and NaN-aware (registered under ``dmg.metrics``).

The conventions are those of :mod:`dmg.core.metrics`: ``prediction`` and ``target`` are
``[time, unit]`` (torch tensors or numpy arrays; ``[time]`` gives a scalar, extra trailing
axes are kept) and one value per unit comes back, in float64, numpy for numpy inputs and
torch (on the input's device) otherwise. Steps where the target is not finite are left out;
a unit with fewer than :data:`~dmg.core.metrics.MIN_VALID` valid steps, a non-finite
prediction at a valid step, or an undefined value (a zero denominator) gives NaN.

================= ==========================================================================
``log_nse``        NSE of ``log(q + ε)``, ε = 1 % of the unit's mean target (Pushpalatha et al., 2012)
``kge_prime``      KGE' (Kling et al., 2012): ``1 - √((r-1)² + (γ-1)² + (β-1)²)``
``kge_gamma``      KGE' variability component γ = CV_p / CV_t (coefficient-of-variation ratio)
``fhv``            high-flow volume bias of the top 2 % of the flow duration curve (%)
``flv``            low-flow bias of the bottom 30 % of the FDC, on log flows (%)
``fms``            bias of the FDC mid-segment slope between 20 % and 70 % exceedance (%)
``peak_timing``    mean absolute timing error of observed peaks (steps)
``baseflow_index_error``  BFI(prediction) - BFI(target), Lyne–Hollick filter (dimensionless)
================= ==========================================================================

The components r and β of KGE' are :func:`dmg.core.metrics.kge_r` and
:func:`dmg.core.metrics.kge_beta`, NSE and percent bias (``100 Σ(p-t)/Σt``) are
:func:`dmg.core.metrics.nse` and :func:`dmg.core.metrics.pbias`: they are registered by
dmg-core and not repeated here.

Flow-duration-curve (FDC) signatures follow Yilmaz, Gupta and Wagener (2008), *Water
Resour. Res.* 44, W09417, computed on the valid steps of each unit, with prediction and
target each sorted on its own (flows of equal exceedance are compared, not equal dates).
Flows at or below :data:`MIN_FLOW` are raised to it before taking logarithms.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dmg.core import metrics as core
from dmg.core.errors import ShapeError
from dmg.core.metrics import MIN_VALID, ArrayLike

HYDROLOGY_METRICS: tuple[str, ...] = ("nse", "kge", "kge_r", "kge_alpha", "kge_beta", "rmse", "bias", "correlation")
"""Metrics ``dmg evaluate`` reports for the hydrology datasets when a run config lists none
(their ``default_metrics``): NSE, KGE and its components r, α, β, RMSE, bias and correlation."""

MIN_FLOW = 1e-6
"""Flows are raised to this (target units) before logarithms in ``flv`` and ``fms``."""
LYNE_HOLLICK_ALPHA = 0.925
"""Filter parameter of the Lyne–Hollick baseflow filter (Nathan and McMahon, 1990)."""
LYNE_HOLLICK_PASSES = 3
"""Forward, backward, forward (Ladson et al., 2013)."""

__all__ = [
    "baseflow",
    "baseflow_index",
    "baseflow_index_error",
    "fhv",
    "flv",
    "fms",
    "kge_gamma",
    "kge_prime",
    "log_nse",
    "peak_timing",
]


# --------------------------------------------------------------------------- plumbing


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _split(prediction: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Both as float64 ``[time, unit]`` numpy arrays, plus the per-unit output shape."""
    p, t = _as_numpy(prediction), _as_numpy(target)
    if p.shape != t.shape:
        raise ShapeError(f"prediction has shape {p.shape} but target {t.shape}; both must be [time, unit]")
    if p.ndim == 0:
        raise ShapeError("metrics need a time axis: got 0-d inputs")
    return p.reshape(p.shape[0], -1), t.reshape(t.shape[0], -1), p.shape[1:]


def _output(values: np.ndarray, shape: tuple[int, ...], prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    values = np.where(np.isfinite(values), values, np.nan).reshape(shape)
    tensor = next((x for x in (prediction, target) if isinstance(x, torch.Tensor)), None)
    if tensor is None:
        return values
    return torch.as_tensor(values, dtype=torch.float64, device=tensor.device)


def _per_unit(prediction: ArrayLike, target: ArrayLike, fn: Callable[[np.ndarray, np.ndarray], float]) -> ArrayLike:
    """``fn(p_valid, t_valid)`` for each unit, with the masking and NaN rules of the module."""
    p, t, shape = _split(prediction, target)
    out = np.full(p.shape[1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(p.shape[1]):
            valid = np.isfinite(t[:, j])
            if valid.sum() < MIN_VALID or not np.isfinite(p[valid, j]).all():
                continue
            out[j] = fn(p[valid, j], t[valid, j])
    return _output(out, shape, prediction, target)


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else np.nan


# --------------------------------------------------------------------------- efficiencies


def log_nse(prediction: ArrayLike, target: ArrayLike, eps: float | None = None) -> ArrayLike:
    """Nash–Sutcliffe efficiency of log flows, per unit.

    ``NSE(log(p + ε), log(t + ε))`` with ``ε = eps`` (target units) or, by default, 1 % of
    the unit's mean valid target (Pushpalatha et al., 2012), which keeps zero flows finite.
    A prediction below ``-ε`` has no logarithm and makes the unit NaN.
    """
    p, t, shape = _split(prediction, target)
    valid = np.isfinite(t)
    if eps is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            offset = 0.01 * np.where(valid, t, 0.0).sum(0) / valid.sum(0)
    else:
        offset = np.full(p.shape[1], float(eps))
    with np.errstate(invalid="ignore", divide="ignore"):
        lp, lt = np.log(p + offset), np.log(t + offset)
    lt = np.where(valid, lt, np.nan)
    values = core.nse(lp, lt)
    return _output(np.asarray(values), shape, prediction, target)


def kge_gamma(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """KGE' variability component ``γ = (σ_p/μ_p) / (σ_t/μ_t)`` per unit (ratio of coefficients of variation).

    Equal to ``α / β`` of :mod:`dmg.core.metrics` (``kge_alpha / kge_beta``).
    """
    p, t, shape = _split(prediction, target)
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = np.asarray(core.kge_alpha(p, t)) / np.asarray(core.kge_beta(p, t))
    return _output(gamma, shape, prediction, target)


def kge_prime(prediction: ArrayLike, target: ArrayLike) -> ArrayLike:
    """Modified Kling–Gupta efficiency KGE' (Kling et al., 2012) per unit.

    ``1 - √((r-1)² + (γ-1)² + (β-1)²)`` with r the correlation, β = μ_p/μ_t and γ the ratio of
    coefficients of variation (:func:`kge_gamma`): unlike KGE's α, γ does not repeat the bias.
    """
    p, t, shape = _split(prediction, target)
    r, beta = np.asarray(core.kge_r(p, t)), np.asarray(core.kge_beta(p, t))
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = np.asarray(core.kge_alpha(p, t)) / beta
    value = 1.0 - np.sqrt((r - 1.0) ** 2 + (gamma - 1.0) ** 2 + (beta - 1.0) ** 2)
    return _output(value, shape, prediction, target)


# --------------------------------------------------------------------------- flow duration curve


def _segment_size(n: int, fraction: float) -> int:
    """Number of sorted flows in a segment covering ``fraction`` of the ``n`` steps (at least 1)."""
    return max(1, round(fraction * n))


def _fhv(p: np.ndarray, t: np.ndarray, h: float) -> float:
    k = _segment_size(len(t), h)
    ps, ts = np.sort(p)[::-1][:k], np.sort(t)[::-1][:k]
    return 100.0 * _ratio(float((ps - ts).sum()), float(ts.sum()))


def fhv(prediction: ArrayLike, target: ArrayLike, h: float = 0.02) -> ArrayLike:
    """High-flow volume bias (%), Yilmaz et al. (2008), per unit.

    ``100 Σ_h (p_h - t_h) / Σ_h t_h`` over the ``round(h n)`` largest predicted and observed
    flows (exceedance probability below ``h``, 2 % by default), each series sorted on its
    own. Positive: the prediction's floods carry too much volume.
    """
    return _per_unit(prediction, target, lambda p, t: _fhv(p, t, h))


def _flv(p: np.ndarray, t: np.ndarray, low: float) -> float:
    k = _segment_size(len(t), low)
    ps = np.log(np.maximum(np.sort(p)[:k], MIN_FLOW))
    ts = np.log(np.maximum(np.sort(t)[:k], MIN_FLOW))
    sim, obs = float((ps - ps[0]).sum()), float((ts - ts[0]).sum())
    return -100.0 * _ratio(sim - obs, obs)


def flv(prediction: ArrayLike, target: ArrayLike, low: float = 0.3) -> ArrayLike:
    """Low-flow bias (%) of the bottom ``low`` (30 %) of the FDC on log flows, Yilmaz et al. (2008).

    ``-100 (Σ_l (log p_l - log p_L) - Σ_l (log t_l - log t_L)) / Σ_l (log t_l - log t_L)``
    over the ``round(low n)`` smallest flows of each series (sorted on its own), ``L`` the
    smallest. Flows are raised to :data:`MIN_FLOW` first. NaN when the observed segment is
    constant (e.g. all zero).
    """
    return _per_unit(prediction, target, lambda p, t: _flv(p, t, low))


def _flow_at_exceedance(q: np.ndarray, exceedance: float) -> float:
    """Flow exceeded ``exceedance`` of the time: the ``1 - exceedance`` quantile (linear interpolation)."""
    return float(np.quantile(q, 1.0 - exceedance))


def _fms(p: np.ndarray, t: np.ndarray, m1: float, m2: float) -> float:
    def slope(q: np.ndarray) -> float:
        high, low = (max(_flow_at_exceedance(q, m), MIN_FLOW) for m in (m1, m2))
        return float(np.log(high) - np.log(low))

    obs = slope(t)
    return 100.0 * _ratio(slope(p) - obs, obs)


def fms(prediction: ArrayLike, target: ArrayLike, m1: float = 0.2, m2: float = 0.7) -> ArrayLike:
    """Bias (%) of the FDC mid-segment slope, Yilmaz et al. (2008), per unit.

    ``100 ((log p_m1 - log p_m2) - (log t_m1 - log t_m2)) / (log t_m1 - log t_m2)`` with
    ``q_m`` the flow exceeded a fraction ``m`` of the time (the ``1 - m`` quantile, linear
    interpolation), ``m1 = 0.2`` and ``m2 = 0.7``. Negative: the prediction's FDC is flatter.
    """
    return _per_unit(prediction, target, lambda p, t: _fms(p, t, m1, m2))


# --------------------------------------------------------------------------- timing


def _observed_peaks(t: np.ndarray, window: int, quantile: float) -> np.ndarray:
    """Steps that are the first maximum of the target within ``±window`` steps and above its ``quantile``."""
    n = len(t)
    valid = np.isfinite(t)
    filled = np.where(valid, t, -np.inf)
    threshold = np.quantile(t[valid], quantile)
    padded = np.concatenate([np.full(window, -np.inf), filled, np.full(window, -np.inf)])
    is_peak = valid & (filled >= threshold)
    for k in range(1, window + 1):
        before = padded[window - k : window - k + n]
        after = padded[window + k : window + k + n]
        is_peak &= (filled > before) & (filled >= after)
    return np.flatnonzero(is_peak)


def peak_timing(prediction: ArrayLike, target: ArrayLike, window: int = 3, quantile: float = 0.9) -> ArrayLike:
    """Mean absolute timing error (steps) of the observed peaks, per unit.

    Peak detection: step ``i`` is an observed peak when its target is valid, at or above the
    unit's ``quantile`` (0.9) of valid targets, strictly larger than every valid target in the
    ``window`` steps before it and at least as large as every one in the ``window`` steps
    after it (so a plateau counts once, at its first step, and two peaks are more than
    ``window`` steps apart). For each peak the predicted peak is the first maximum of the
    prediction within ``i ± window`` (inside the series); the error is ``|j - i|``, between 0
    and ``window``. NaN for a unit without peaks or with a non-finite prediction in a window.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 step, got {window}")
    p, t, shape = _split(prediction, target)
    n = p.shape[0]
    out = np.full(p.shape[1], np.nan)
    for j in range(p.shape[1]):
        valid = np.isfinite(t[:, j])
        if valid.sum() < MIN_VALID or not np.isfinite(p[valid, j]).all():
            continue
        peaks = _observed_peaks(t[:, j], window, quantile)
        errors = []
        for i in peaks:
            lo, hi = max(0, i - window), min(n, i + window + 1)
            segment = p[lo:hi, j]
            if not np.isfinite(segment).all():
                errors = []
                break
            errors.append(abs(lo + int(np.argmax(segment)) - i))
        if errors:
            out[j] = float(np.mean(errors))
    return _output(out, shape, prediction, target)


# --------------------------------------------------------------------------- baseflow


def _lyne_hollick_pass(q: np.ndarray, lengths: np.ndarray, alpha: float) -> np.ndarray:
    """One forward pass over ``q`` ``[unit, step]``; each unit uses its first ``lengths[u]`` steps."""
    quick = np.zeros_like(q)
    gain = (1.0 + alpha) / 2.0
    for k in range(1, q.shape[1]):
        step = alpha * quick[:, k - 1] + gain * (q[:, k] - q[:, k - 1])
        quick[:, k] = np.minimum(np.maximum(step, 0.0), q[:, k])
    base = q - quick
    base[np.arange(q.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return base


def _reverse(q: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each unit's first ``lengths[u]`` steps in reverse order (padding stays at the end)."""
    k = np.arange(q.shape[1])[None, :]
    index = np.where(k < lengths[:, None], lengths[:, None] - 1 - k, k)
    return np.take_along_axis(q, index, axis=1)


def _baseflow_compact(q: np.ndarray, lengths: np.ndarray, alpha: float, passes: int) -> np.ndarray:
    base = q
    for i in range(passes):
        if i % 2:
            base = _reverse(_lyne_hollick_pass(_reverse(base, lengths), lengths, alpha), lengths)
        else:
            base = _lyne_hollick_pass(base, lengths, alpha)
    return base


def baseflow(flow: ArrayLike, alpha: float = LYNE_HOLLICK_ALPHA, passes: int = LYNE_HOLLICK_PASSES) -> np.ndarray:
    """Baseflow ``[time, unit]`` (flow units) by the Lyne–Hollick digital filter.

    Each pass filters the quickflow ``f_k = α f_{k-1} + (1+α)/2 (q_k - q_{k-1})``, keeps it
    within ``[0, q_k]`` and passes on the baseflow ``q - f``; passes alternate forward and
    backward (three by default: forward, backward, forward, as Ladson et al., 2013), each
    starting with zero quickflow. Flows must be finite; negative flows are set to 0.
    """
    q = _as_numpy(flow)
    shape = q.shape
    q = np.maximum(q.reshape(shape[0], -1), 0.0)
    if not np.isfinite(q).all():
        raise ValueError("baseflow needs finite flows; drop or fill missing steps first")
    lengths = np.full(q.shape[1], q.shape[0])
    return _baseflow_compact(q.T, lengths, alpha, passes).T.reshape(shape)


def _valid_first(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[unit, step]`` with each unit's valid steps first (in order), zero-padded, and their counts."""
    order = np.argsort(~valid, axis=0, kind="stable")
    packed = np.take_along_axis(np.where(valid, x, 0.0), order, axis=0).T
    return np.ascontiguousarray(packed), valid.sum(0)


def _bfi(q: np.ndarray, lengths: np.ndarray, alpha: float, passes: int) -> np.ndarray:
    base = _baseflow_compact(q, lengths, alpha, passes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return base.sum(1) / q.sum(1)


def baseflow_index(flow: ArrayLike, alpha: float = LYNE_HOLLICK_ALPHA, passes: int = LYNE_HOLLICK_PASSES) -> ArrayLike:
    """Baseflow index ``Σ baseflow / Σ flow`` per unit (dimensionless, 0 to 1), see :func:`baseflow`.

    Non-finite steps are dropped and the remaining steps filtered as one series. NaN for a
    unit with fewer than two valid steps or no flow. Negative flows are set to 0.
    """
    q = _as_numpy(flow)
    shape = q.shape[1:]
    q = q.reshape(q.shape[0], -1)
    valid = np.isfinite(q)
    packed, lengths = _valid_first(np.maximum(np.where(valid, q, 0.0), 0.0), valid)
    values = np.where(lengths >= MIN_VALID, _bfi(packed, lengths, alpha, passes), np.nan)
    return _output(values, shape, flow, flow)


def baseflow_index_error(
    prediction: ArrayLike, target: ArrayLike, alpha: float = LYNE_HOLLICK_ALPHA, passes: int = LYNE_HOLLICK_PASSES
) -> ArrayLike:
    """``BFI(prediction) - BFI(target)`` per unit (dimensionless), over the steps with a valid target.

    Both series keep only the unit's valid-target steps (filtered as one series each);
    see :func:`baseflow_index`. Positive: the prediction is too baseflow-dominated.
    """
    p, t, shape = _split(prediction, target)
    valid = np.isfinite(t)
    bad_prediction = (valid & ~np.isfinite(p)).any(0)
    pp, lengths = _valid_first(np.maximum(np.where(valid, p, 0.0), 0.0), valid)
    tt, _ = _valid_first(np.maximum(np.where(valid, t, 0.0), 0.0), valid)
    with np.errstate(invalid="ignore"):
        values = _bfi(pp, lengths, alpha, passes) - _bfi(tt, lengths, alpha, passes)
    values = np.where((lengths >= MIN_VALID) & ~bad_prediction, values, np.nan)
    return _output(values, shape, prediction, target)
