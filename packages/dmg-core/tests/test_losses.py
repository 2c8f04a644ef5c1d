"""Generic losses: values against metrics, masking, gradients, configs, learning."""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest
import torch

from dmg.core import ConfigError, metrics, registry
from dmg.core.losses import KGELoss, MSELoss, NSELoss, RMSELoss

LOSSES = [MSELoss, RMSELoss, NSELoss, KGELoss]


def data(seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(60, 5, generator=g, dtype=dtype) * 4 + 1
    p = t * 0.8 + 0.3 * torch.randn(60, 5, generator=g, dtype=dtype)
    t[torch.rand(60, 5, generator=g) < 0.25] = math.nan
    t[:, 3] = math.nan  # a unit without observations
    return p, t


def test_values_match_metric_definitions():
    p, t = data()
    ok = torch.isfinite(t)
    pooled = ((p - t)[ok] ** 2).mean()
    torch.testing.assert_close(MSELoss()(p, t), pooled)
    torch.testing.assert_close(RMSELoss()(p, t), pooled.sqrt())
    nse = torch.as_tensor(metrics.nse(p, t))
    torch.testing.assert_close(NSELoss(eps=0.0)(p, t), (1 - nse).nanmean())
    kge = torch.as_tensor(metrics.kge(p, t))
    torch.testing.assert_close(KGELoss(eps=1e-12)(p, t), (1 - kge).nanmean(), rtol=1e-8, atol=1e-10)


def test_nse_eps_damps_units_with_constant_targets():
    t = torch.stack([torch.full((10,), 2.0), torch.linspace(0, 9, 10)], dim=1)
    p = t + 1.0
    loss = NSELoss(eps=0.1)(p, t)
    var = t[:, 1].var(unbiased=False)
    assert loss.item() == pytest.approx(0.5 * (1 / 0.1 + 1 / (var.item() + 0.1)))


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_masked_entries_get_zero_gradient_and_others_finite(loss_cls):
    p, t = data(1)
    p = p.clone()
    p[torch.isnan(t)] = math.nan  # even NaN predictions at missing steps must not leak
    p.requires_grad_(True)
    loss = loss_cls()(p, t)
    loss.backward()
    assert torch.isfinite(loss)
    missing = torch.isnan(t)
    assert (p.grad[missing] == 0).all()
    assert torch.isfinite(p.grad).all() and (p.grad[~missing] != 0).any()


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_no_valid_target_gives_zero_with_grad(loss_cls):
    p = torch.randn(8, 3, requires_grad=True)
    loss = loss_cls()(p, torch.full((8, 3), math.nan))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert (p.grad == 0).all()


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_gradient_matches_finite_differences(loss_cls):
    p, t = data(2)
    p = p[:20].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: loss_cls()(x, t[:20]), (p,), eps=1e-6, atol=1e-6)


def test_perfect_prediction_rmse_is_zero_with_finite_gradient():
    t = torch.rand(10, 2, dtype=torch.float64)
    p = t.clone().requires_grad_(True)
    loss = RMSELoss()(p, t)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(p.grad).all()
    p2 = t.clone().requires_grad_(True)
    KGELoss()(p2, t).backward()
    assert torch.isfinite(p2.grad).all()


def test_extra_mask_and_shapes():
    p, t = data(3)
    mask = torch.zeros_like(t, dtype=torch.bool)
    mask[:, 0] = True
    torch.testing.assert_close(MSELoss()(p, t, mask=mask), MSELoss()(p[:, :1], t[:, :1]))
    torch.testing.assert_close(MSELoss()(p[:, 0], t[:, 0]), MSELoss()(p[:, :1], t[:, :1]))
    with pytest.raises(ValueError, match="prediction has shape"):
        MSELoss()(p, t[:, :2])


def test_config_and_registry():
    loss = NSELoss.from_config({"eps": 0.5})
    assert loss.config.eps == 0.5 and "eps=0.5" in repr(loss)
    assert NSELoss.from_config(NSELoss.Config(eps=0.2)).config.eps == 0.2
    assert KGELoss.from_config(None).config.eps == 1e-6
    with pytest.raises(pydantic.ValidationError):
        NSELoss.Config(epsilon=0.1)
    with pytest.raises(pydantic.ValidationError):
        NSELoss.Config(eps=-1.0)
    with pytest.raises(ConfigError, match=r"unknown key 'epsilon'; did you mean 'eps'"):
        NSELoss(epsilon=0.1)
    for name, cls in {"mse": MSELoss, "rmse": RMSELoss, "nse": NSELoss, "kge": KGELoss}.items():
        assert registry.get("dmg.losses", name) is cls


@pytest.mark.parametrize("loss_cls", [NSELoss, KGELoss, RMSELoss])
def test_training_recovers_known_parameters(loss_cls):
    # Observations y = 2.5 x + 1 at three units with 30 % missing; fit a and b.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, generator=g, dtype=torch.float64) * 3
    y = 2.5 * x + 1.0
    y[torch.rand(200, 3, generator=g) < 0.3] = math.nan
    a = torch.ones((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([a, b], lr=0.1)
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.993)
    loss_fn = loss_cls()
    first = None
    for _ in range(600):
        opt.zero_grad()
        loss = loss_fn(a * x + b, y)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
        schedule.step()
    assert loss.item() < 1e-3 * first
    np.testing.assert_allclose([a.item(), b.item()], [2.5, 1.0], atol=0.02)
