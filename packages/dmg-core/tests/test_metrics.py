"""Generic metrics: hand-computed values, numpy references with NaN, edge cases, summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmg.core import metrics, registry
from dmg.core.errors import ShapeError

# Unit 0: t = [1, 2, 3, 4], p = [2, 2, 4, 4]. Unit 1: the same with step 1 missing in the
# target (its prediction 100 must be ignored): t = [1, 3, 4], p = [2, 4, 4].
TARGET = torch.tensor([[1.0, 1.0], [2.0, math.nan], [3.0, 3.0], [4.0, 4.0]])
PREDICTION = torch.tensor([[2.0, 2.0], [2.0, 100.0], [4.0, 4.0], [4.0, 4.0]])

R0 = 2 / math.sqrt(5)  # cov 1 / (σ_p 1 · σ_t √1.25)
HAND = {
    "mse": [0.5, 2 / 3],
    "rmse": [math.sqrt(0.5), math.sqrt(2 / 3)],
    "mae": [0.5, 2 / 3],
    "bias": [0.5, 2 / 3],
    "pbias": [20.0, 100 * 2 / 8],
    "nse": [1 - 2 / 5, 1 - 2 / (14 / 3)],
    "kge_beta": [3 / 2.5, (10 / 3) / (8 / 3)],
}


def test_hand_computed_values():
    for name, expected in HAND.items():
        got = metrics.METRICS[name](PREDICTION, TARGET)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, err_msg=name)


def test_hand_computed_kge_and_components_unit0():
    # p̄ = 3, σ_p = 1; t̄ = 2.5, σ_t = √1.25; cov = 1  ->  r = α = 2/√5, β = 1.2
    r = metrics.kge_r(PREDICTION, TARGET)[0].item()
    alpha = metrics.kge_alpha(PREDICTION, TARGET)[0].item()
    beta = metrics.kge_beta(PREDICTION, TARGET)[0].item()
    assert r == pytest.approx(R0, rel=1e-12) and alpha == pytest.approx(R0, rel=1e-12) and beta == pytest.approx(1.2)
    expected = 1 - math.sqrt(2 * (R0 - 1) ** 2 + 0.2**2)
    assert metrics.kge(PREDICTION, TARGET)[0].item() == pytest.approx(expected, rel=1e-12)
    assert metrics.correlation(PREDICTION, TARGET)[0].item() == pytest.approx(R0, rel=1e-12)


def reference(name: str, p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Straightforward per-unit numpy formulas."""
    out = np.full(t.shape[1], np.nan)
    for j in range(t.shape[1]):
        ok = np.isfinite(t[:, j])
        if ok.sum() < 2:
            continue
        pj, tj = p[ok, j], t[ok, j]
        e = pj - tj
        r = np.corrcoef(pj, tj)[0, 1]
        alpha, beta = pj.std() / tj.std(), pj.mean() / tj.mean()
        out[j] = {
            "mse": np.mean(e**2),
            "rmse": np.sqrt(np.mean(e**2)),
            "mae": np.mean(np.abs(e)),
            "bias": np.mean(e),
            "pbias": 100 * e.sum() / tj.sum(),
            "nse": 1 - np.sum(e**2) / np.sum((tj - tj.mean()) ** 2),
            "correlation": r,
            "kge_r": r,
            "kge_alpha": alpha,
            "kge_beta": beta,
            "kge": 1 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2),
        }[name]
    return out


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_against_numpy_reference_with_nans(name):
    rng = np.random.default_rng(1)
    t = rng.gamma(2.0, 1.5, (300, 12))
    p = t * rng.uniform(0.6, 1.4, (1, 12)) + rng.normal(0, 0.8, (300, 12))
    t[rng.random((300, 12)) < 0.3] = np.nan  # 30 % missing
    t[:, 5] = np.nan  # a unit without data
    t[1:, 6] = np.nan  # a unit with one valid step
    p[np.isnan(t)] = np.nan  # predictions at missing steps do not matter
    got = metrics.METRICS[name](torch.tensor(p), torch.tensor(t))
    expected = reference(name, p, t)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert torch.isnan(got[5]) and torch.isnan(got[6])


def test_numpy_in_numpy_out_and_float32_inputs():
    p, t = PREDICTION.numpy(), TARGET.numpy()
    out = metrics.nse(p, t)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert isinstance(metrics.nse(PREDICTION.float(), t), torch.Tensor)
    assert metrics.nse(PREDICTION[:, 0], TARGET[:, 0]).shape == ()
    assert metrics.rmse(torch.zeros(5, 2, 3), torch.ones(5, 2, 3)).shape == (2, 3)


def test_undefined_values_are_nan_not_errors():
    t = torch.tensor([[2.0, 1.0], [2.0, math.nan], [2.0, math.nan]])
    p = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    assert torch.isnan(metrics.nse(p, t)).all()  # constant target / one valid step
    assert torch.isnan(metrics.correlation(p, t)).all()
    assert metrics.rmse(p, t)[0].item() == pytest.approx(math.sqrt(2 / 3))
    assert torch.isnan(metrics.pbias(p, torch.tensor([[1.0], [-1.0], [0.0]]).expand(3, 2)))[0]
    p_bad = p.clone()
    p_bad[1, 0] = math.inf  # a failing model shows as NaN
    assert torch.isnan(metrics.mse(p_bad, torch.ones(3, 2)))[0]
    with pytest.raises(ShapeError, match=r"\(3, 2\) but target \(3, 1\)"):
        metrics.nse(p, t[:, :1])


def test_every_metric_is_registered():
    for name, fn in metrics.METRICS.items():
        assert registry.get("dmg.metrics", name) is fn
