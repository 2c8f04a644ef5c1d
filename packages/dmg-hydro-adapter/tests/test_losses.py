"""Hydrological losses: reference values, masking, gradients and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmg.core import metrics as core_metrics
from dmg.core.config import resolve_component
from dmg.core.losses import RMSELoss
from dmg.hydro.losses import NSEBatchLoss, RMSECombinedLoss


def flows(n_time: int = 60, n_units: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive skewed 'observed' flows and an imperfect 'prediction', float64 ``[time, unit]``."""
    g = torch.Generator().manual_seed(seed)
    target = torch.exp(torch.randn(n_time, n_units, generator=g, dtype=torch.float64)) * torch.arange(1.0, n_units + 1)
    prediction = target * (1 + 0.3 * torch.randn(n_time, n_units, generator=g, dtype=torch.float64)) + 0.2
    return prediction, target


def reference_nse_batch(p: np.ndarray, t: np.ndarray, eps: float, std: np.ndarray | None = None) -> float:
    valid = np.isfinite(t)
    if std is None:
        std = np.array([np.std(t[valid[:, j], j]) for j in range(t.shape[1])])
        valid &= (valid.sum(0) >= 2)[None, :]
    terms = [(p[i, j] - t[i, j]) ** 2 / (std[j] + eps) ** 2 for i, j in zip(*np.nonzero(valid))]
    return sum(terms) / len(terms)


def reference_rmse_combined(p: np.ndarray, t: np.ndarray, weight: float, transform: str, eps: float) -> float:
    valid = np.isfinite(t)
    f = np.sqrt if transform == "sqrt" else np.log
    p, t = p[valid], t[valid]
    plain = np.sqrt(np.mean((p - t) ** 2))
    changed = np.sqrt(np.mean((f(np.maximum(p, 0) + eps) - f(t + eps)) ** 2))
    return (1 - weight) * plain + weight * changed


def with_nan(target: torch.Tensor) -> torch.Tensor:
    gappy = target.clone()
    gappy[::7, 0] = torch.nan
    gappy[10:20, 1] = torch.nan
    gappy[:, 2] = torch.nan
    gappy[5, 2] = 1.0  # a unit with a single valid step
    return gappy


# --------------------------------------------------------------------------- nse_batch


def test_nse_batch_reference_values():
    p, t = flows()
    loss = NSEBatchLoss()
    assert float(loss(p, t)) == pytest.approx(reference_nse_batch(p.numpy(), t.numpy(), 0.1), rel=1e-12)
    gappy = with_nan(t)
    assert float(loss(p, gappy)) == pytest.approx(reference_nse_batch(p.numpy(), gappy.numpy(), 0.1), rel=1e-12)
    std = np.array([0.5, 2.0, 4.0])
    value = float(loss(p, gappy, std=torch.tensor(std)))
    assert value == pytest.approx(reference_nse_batch(p.numpy(), gappy.numpy(), 0.1, std), rel=1e-12)


def test_nse_batch_is_one_minus_nse_for_one_unit_without_eps():
    p, t = flows(n_units=1)
    loss = NSEBatchLoss(eps=0.0)
    assert float(loss(p, t)) == pytest.approx(1.0 - float(core_metrics.nse(p, t)), rel=1e-12)


def test_nse_batch_std_must_match_the_units():
    p, t = flows()
    with pytest.raises(ValueError, match="one value per unit"):
        NSEBatchLoss()(p, t, std=torch.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        NSEBatchLoss()(p, t, std=torch.tensor([1.0, -1.0, 1.0]))


# --------------------------------------------------------------------------- rmse_combined


@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_rmse_combined_reference_values(transform):
    p, t = flows()
    p = p - 0.5  # some negative predictions
    gappy = with_nan(t)
    loss = RMSECombinedLoss(weight=0.3, transform=transform, eps=0.1)
    want = reference_rmse_combined(p.numpy(), gappy.numpy(), 0.3, transform, 0.1)
    assert float(loss(p, gappy)) == pytest.approx(want, rel=1e-12)


def test_rmse_combined_without_weight_is_the_core_rmse():
    p, t = flows()
    gappy = with_nan(t)
    assert float(RMSECombinedLoss(weight=0.0)(p, gappy)) == pytest.approx(float(RMSELoss()(p, gappy)), rel=1e-12)


# --------------------------------------------------------------------------- both


LOSSES = [NSEBatchLoss(), RMSECombinedLoss(transform="sqrt"), RMSECombinedLoss(transform="log", weight=0.5)]


@pytest.mark.parametrize("loss", LOSSES, ids=["nse_batch", "rmse_combined_sqrt", "rmse_combined_log"])
def test_masked_entries_get_zero_gradient(loss):
    p, t = flows()
    gappy = with_nan(t)
    p = p.clone().requires_grad_(True)
    mask = torch.ones_like(t, dtype=torch.bool)
    mask[30:, 0] = False
    value = loss(p, gappy, mask)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(p.grad).all()
    dropped = ~torch.isfinite(gappy) | ~mask
    assert (p.grad[dropped] == 0).all()
    assert (p.grad[~dropped][:10] != 0).any()
    # The masked entries do not change the value either.
    assert float(loss(p.detach(), gappy.masked_fill(~mask, torch.nan))) == pytest.approx(
        float(value.detach()), rel=1e-12
    )


@pytest.mark.parametrize("loss", LOSSES, ids=["nse_batch", "rmse_combined_sqrt", "rmse_combined_log"])
def test_gradients_match_finite_differences(loss):
    p, t = flows(n_time=12, n_units=2)
    t = with_nan(torch.cat([t, t[:, :1]], 1))
    p = torch.cat([p, p[:, :1]], 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (p,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", LOSSES, ids=["nse_batch", "rmse_combined_sqrt", "rmse_combined_log"])
def test_no_valid_target_gives_a_differentiable_zero(loss):
    p = torch.ones(5, 2, dtype=torch.float64, requires_grad=True)
    value = loss(p, torch.full((5, 2), torch.nan, dtype=torch.float64))
    value.backward()
    assert float(value.detach()) == 0.0 and (p.grad == 0).all()


@pytest.mark.parametrize("name", ["nse_batch", "rmse_combined"])
def test_registered_and_learns_a_scale(name):
    cls, cfg = resolve_component("dmg.losses", {"name": name}, "train.loss")
    loss = cls.from_config(cfg)
    _, observed = flows(n_time=200, n_units=4, seed=3)
    truth = 1.7
    target = truth * observed
    target[::5, 0] = torch.nan
    log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([log_scale], lr=0.05)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.98)
    first = None
    for _ in range(300):
        optimizer.zero_grad()
        value = loss(torch.exp(log_scale) * observed, target)
        first = float(value.detach()) if first is None else first
        value.backward()
        optimizer.step()
        schedule.step()
    assert float(value.detach()) < 1e-3 * first
    assert float(torch.exp(log_scale.detach())) == pytest.approx(truth, rel=1e-3)
