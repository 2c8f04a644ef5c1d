"""Hydrological metrics against hydroeval and against the published formulas, on real CAMELS flows.

hydroeval (an independent package) is the reference for log-NSE, KGE' and its components,
NSE and percent bias. It has no flow-duration-curve signatures, peak timing or baseflow
filter: for those the references below are written directly from the publications
(Yilmaz et al., 2008; Lyne and Hollick, 1979; Ladson et al., 2013), one series at a time
with plain loops, independently of the vectorised code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmg.core import metrics as core
from dmg.core import registry
from dmg.hydro import metrics as hm

SAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camels_us_sample"
GAUGES = ("01022500", "01547700")


@pytest.fixture(scope="module")
def observed() -> np.ndarray:
    """Daily discharge (ft³/s) of the two sample basins, ``[time, unit]`` (2000-2002, no gaps)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"CAMELS-US sample not found at {SAMPLE}")
    series = []
    for gauge in GAUGES:
        path = next((SAMPLE / "usgs_streamflow").glob(f"*/{gauge}_streamflow_qc.txt"))
        series.append([float(line.split()[4]) for line in path.read_text().splitlines() if line.strip()])
    return np.array(series).T


@pytest.fixture(scope="module")
def simulated(observed) -> np.ndarray:
    """A plausible imperfect simulation: one day late, 10 % high, with multiplicative noise."""
    rng = np.random.default_rng(42)
    return np.roll(observed, 1, axis=0) * 1.1 * rng.lognormal(0.0, 0.25, observed.shape)


@pytest.fixture(scope="module")
def with_gaps(observed) -> np.ndarray:
    gappy = observed.copy()
    rng = np.random.default_rng(7)
    gappy[rng.random(gappy.shape) < 0.1] = np.nan
    gappy[100:160, 0] = np.nan
    return gappy


@pytest.fixture(scope="module")
def he():
    return pytest.importorskip("hydroeval", reason="hydroeval is the independent reference (pip install hydroeval)")


# --------------------------------------------------------------------------- against hydroeval


def test_log_nse_matches_hydroeval(he, observed, simulated, with_gaps):
    for target in (observed, with_gaps):
        want = [he.evaluator(he.nse, simulated[:, j], target[:, j], transform="log")[0] for j in range(2)]
        np.testing.assert_allclose(hm.log_nse(simulated, target), want, rtol=1e-12)
        given = [he.evaluator(he.nse, simulated[:, j], target[:, j], transform="log", epsilon=0.5)[0] for j in range(2)]
        np.testing.assert_allclose(hm.log_nse(simulated, target, eps=0.5), given, rtol=1e-12)


def test_kge_prime_and_components_match_hydroeval(he, observed, simulated, with_gaps):
    for target in (observed, with_gaps):
        want = []
        for j in range(2):
            keep = np.isfinite(target[:, j])
            want.append(he.kgeprime(simulated[keep, j], target[keep, j]).ravel())  # KGE', r, gamma, beta
        want = np.array(want)
        np.testing.assert_allclose(hm.kge_prime(simulated, target), want[:, 0], rtol=1e-12)
        np.testing.assert_allclose(core.kge_r(simulated, target), want[:, 1], rtol=1e-12)
        np.testing.assert_allclose(hm.kge_gamma(simulated, target), want[:, 2], rtol=1e-12)
        np.testing.assert_allclose(core.kge_beta(simulated, target), want[:, 3], rtol=1e-12)


def test_core_nse_and_pbias_are_the_hydrological_ones(he, observed, simulated):
    want_nse = [np.ravel(he.nse(simulated[:, j], observed[:, j]))[0] for j in range(2)]
    np.testing.assert_allclose(core.nse(simulated, observed), want_nse, rtol=1e-12)
    # hydroeval reports 100 Σ(obs - sim)/Σobs; dmg's pbias is 100 Σ(sim - obs)/Σobs (positive = too wet).
    want_pbias = [-np.ravel(he.pbias(simulated[:, j], observed[:, j]))[0] for j in range(2)]
    np.testing.assert_allclose(core.pbias(simulated, observed), want_pbias, rtol=1e-12)


# --------------------------------------------------------------------------- FDC signatures


def reference_fhv(sim, obs, h=0.02):
    n = len(obs)
    k = max(1, round(h * n))
    s, o = sorted(sim, reverse=True), sorted(obs, reverse=True)
    return 100 * sum(s[i] - o[i] for i in range(k)) / sum(o[i] for i in range(k))


def reference_flv(sim, obs, low=0.3):
    k = max(1, round(low * len(obs)))
    s = [np.log(max(x, 1e-6)) for x in sorted(sim)[:k]]
    o = [np.log(max(x, 1e-6)) for x in sorted(obs)[:k]]
    qsl = sum(x - s[0] for x in s)
    qol = sum(x - o[0] for x in o)
    return -100 * (qsl - qol) / qol


def reference_fms(sim, obs, m1=0.2, m2=0.7):
    def flow_exceeded(q, p):  # order statistic with linear interpolation, by hand
        ordered = sorted(q)
        position = (1 - p) * (len(q) - 1)
        lo = int(np.floor(position))
        hi = min(lo + 1, len(q) - 1)
        return ordered[lo] + (position - lo) * (ordered[hi] - ordered[lo])

    def slope(q):
        return np.log(flow_exceeded(q, m1)) - np.log(flow_exceeded(q, m2))

    return 100 * (slope(sim) - slope(obs)) / slope(obs)


@pytest.mark.parametrize(
    ("metric", "reference"), [(hm.fhv, reference_fhv), (hm.flv, reference_flv), (hm.fms, reference_fms)]
)
def test_fdc_signatures_match_the_published_formulas(metric, reference, simulated, with_gaps):
    want = []
    for j in range(2):
        keep = np.isfinite(with_gaps[:, j])
        want.append(reference(list(simulated[keep, j]), list(with_gaps[keep, j])))
    np.testing.assert_allclose(metric(simulated, with_gaps), want, rtol=1e-10)


def test_fdc_signatures_known_answers(observed):
    # A 30 % wetter simulation: FHV +30 %; flow ratios (FLV, FMS) unchanged.
    np.testing.assert_allclose(hm.fhv(1.3 * observed, observed), [30.0, 30.0], rtol=1e-12)
    np.testing.assert_allclose(hm.flv(1.3 * observed, observed), [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(hm.fms(1.3 * observed, observed), [0.0, 0.0], atol=1e-9)
    # q^1.2 stretches log differences by 1.2: FLV = -20 % exactly (order statistics).
    np.testing.assert_allclose(hm.flv(observed**1.2, observed), [-20.0, -20.0], rtol=1e-9)
    assert (hm.fms(observed**1.2, observed) > 15).all()
    assert hm.fhv(observed, observed).tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- peak timing


def reference_peak_timing(sim, obs, window=3, quantile=0.9):
    finite = [x for x in obs if np.isfinite(x)]
    threshold = np.quantile(finite, quantile)
    errors = []
    for i, x in enumerate(obs):
        if not np.isfinite(x) or x < threshold:
            continue
        before = [obs[k] for k in range(max(0, i - window), i) if np.isfinite(obs[k])]
        after = [obs[k] for k in range(i + 1, min(len(obs), i + window + 1)) if np.isfinite(obs[k])]
        if all(x > b for b in before) and all(x >= a for a in after):
            lo, hi = max(0, i - window), min(len(obs), i + window + 1)
            best = max(range(lo, hi), key=lambda k: (sim[k], -k))
            errors.append(abs(best - i))
    return np.mean(errors)


def test_peak_timing_matches_the_reference_on_real_flows(observed, simulated, with_gaps):
    for target in (observed, with_gaps):
        want = [reference_peak_timing(simulated[:, j], target[:, j]) for j in range(2)]
        np.testing.assert_allclose(hm.peak_timing(simulated, target), want, rtol=1e-12)


def test_peak_timing_known_shift():
    t = np.arange(400.0)
    peaks = [50, 130, 210, 300]
    flow = 1.0 + sum(20.0 * np.exp(-0.5 * ((t - c) / 2.0) ** 2) for c in peaks)[:, None]
    for shift in (0, 1, 2, 3):
        late = np.roll(flow, shift, axis=0)
        assert hm.peak_timing(late, flow, window=3).tolist() == [float(shift)]
    # Beyond the window the error saturates at the window.
    assert hm.peak_timing(np.roll(flow, 6, axis=0), flow, window=3).tolist() == [3.0]


# --------------------------------------------------------------------------- baseflow


def reference_baseflow(q, alpha=0.925, passes=3):
    """Lyne–Hollick filter, one scalar step at a time, alternating direction each pass."""
    base = list(q)
    for p in range(passes):
        x = base[::-1] if p % 2 else base
        quick, out = 0.0, [x[0]]
        for k in range(1, len(x)):
            quick = alpha * quick + (1 + alpha) / 2 * (x[k] - x[k - 1])
            quick = min(max(quick, 0.0), x[k])
            out.append(x[k] - quick)
        base = out[::-1] if p % 2 else out
    return np.array(base)


def test_baseflow_matches_the_reference_filter(observed):
    got = hm.baseflow(observed)
    for j in range(2):
        np.testing.assert_allclose(got[:, j], reference_baseflow(observed[:, j]), rtol=1e-12)
    assert (got >= 0).all() and (got <= observed + 1e-12).all()
    bfi = hm.baseflow_index(observed)
    np.testing.assert_allclose(bfi, got.sum(0) / observed.sum(0), rtol=1e-12)


def test_baseflow_index_is_plausible_and_handles_gaps(observed, with_gaps):
    # CAMELS hydro signatures (Addor et al., 2017; same filter, 1989-2009): 0.554 and 0.443.
    np.testing.assert_allclose(hm.baseflow_index(observed), [0.554, 0.443], atol=0.12)
    assert hm.baseflow_index(np.full((50, 1), 3.0)).tolist() == [1.0]
    # Gaps are dropped and the rest filtered as one series.
    for j in range(2):
        keep = np.isfinite(with_gaps[:, j])
        want = reference_baseflow(with_gaps[keep, j]).sum() / with_gaps[keep, j].sum()
        assert hm.baseflow_index(with_gaps)[j] == pytest.approx(want, rel=1e-12)


def test_baseflow_index_error(observed, simulated, with_gaps):
    want = []
    for j in range(2):
        keep = np.isfinite(with_gaps[:, j])
        sim, obs = simulated[keep, j], with_gaps[keep, j]
        want.append(reference_baseflow(sim).sum() / sim.sum() - reference_baseflow(obs).sum() / obs.sum())
    np.testing.assert_allclose(hm.baseflow_index_error(simulated, with_gaps), want, rtol=1e-10)
    np.testing.assert_allclose(hm.baseflow_index_error(observed, observed), [0.0, 0.0], atol=1e-15)


# --------------------------------------------------------------------------- conventions

REGISTERED = ["log_nse", "kge_prime", "kge_gamma", "fhv", "flv", "fms", "peak_timing", "baseflow_index_error"]


@pytest.mark.parametrize("name", REGISTERED)
def test_registered_and_follows_the_core_conventions(name, observed, simulated, with_gaps):
    fn = registry.get("dmg.metrics", name)
    expected = fn(simulated, with_gaps)
    assert isinstance(expected, np.ndarray) and expected.shape == (2,) and np.isfinite(expected).all()
    # torch in, float64 torch out, same values.
    as_torch = fn(torch.tensor(simulated, dtype=torch.float32), torch.tensor(with_gaps, dtype=torch.float32))
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float64
    np.testing.assert_allclose(as_torch.numpy(), expected, rtol=1e-4, atol=1e-4)
    # [time] gives a scalar; extra trailing axes are kept.
    single = fn(simulated[:, 0], with_gaps[:, 0])
    assert np.shape(single) == () and single == pytest.approx(expected[0], rel=1e-12)
    stacked = fn(np.stack([simulated, simulated], 2), np.stack([with_gaps, with_gaps], 2))
    assert stacked.shape == (2, 2)
    np.testing.assert_allclose(stacked[:, 1], expected, rtol=1e-12)
    # A non-finite prediction at a valid step makes that unit NaN; at a missing target it does not matter.
    broken = simulated.copy()
    broken[5, 0] = np.nan
    gap = int(np.flatnonzero(np.isnan(with_gaps[:, 1]))[0])
    broken[gap, 1] = np.inf
    values = fn(broken, with_gaps)
    assert np.isnan(values[0]) and values[1] == pytest.approx(expected[1], rel=1e-12)
    # Fewer than two valid steps: NaN, never an exception.
    lonely = np.full_like(with_gaps, np.nan)
    lonely[0] = 1.0
    assert np.isnan(fn(simulated, lonely)).all()
