"""WindowSampler (determinism, exact resume, bounds) and sequential_windows (coverage)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dmg.core.data import WindowSampler, sequential_windows
from dmg.core.errors import ConfigError, InputError


def batches(sampler: WindowSampler, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    while len(out) < k:
        for item in sampler:
            out.append(item)
            if len(out) == k:
                break
    return out


def assert_same(a, b):
    assert len(a) == len(b)
    for (u1, s1), (u2, s2) in zip(a, b):
        np.testing.assert_array_equal(u1, u2)
        np.testing.assert_array_equal(s1, s2)


def test_same_seed_same_batches_other_seed_other_batches():
    a = batches(WindowSampler(20, 400, 50, 30, 8, seed=5), 12)
    b = batches(WindowSampler(20, 400, 50, 30, 8, seed=5), 12)
    c = batches(WindowSampler(20, 400, 50, 30, 8, seed=6), 12)
    assert_same(a, b)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


@pytest.mark.parametrize("k", [0, 3, 7, 10, 23])
def test_resume_draws_exactly_the_uninterrupted_batches(k):
    # 10 batches per epoch: k=7 resumes mid-epoch, k=10 at an epoch boundary, k=23 in epoch 2.
    make = lambda: WindowSampler(15, 300, 40, 20, 6, seed=11, iterations_per_epoch=10)  # noqa: E731
    reference = make()
    expected = []
    for epoch in range(4):
        reference.set_epoch(epoch)
        expected.extend(reference)

    first = make()
    drawn = []
    for epoch in range(4):
        if len(drawn) == k:
            break
        first.set_epoch(epoch)
        for item in first:
            drawn.append(item)
            if len(drawn) == k:
                break
    state = json.loads(json.dumps(first.state_dict()))  # plain values survive JSON
    assert (state["epoch"], state["position"]) == divmod(k, 10)

    resumed = make()
    resumed.load_state_dict(state)
    for epoch in range(state["epoch"], 4):
        resumed.set_epoch(epoch)
        drawn.extend(resumed)
    assert_same(drawn, expected)


def test_epochs_advance_without_set_epoch_and_match_set_epoch():
    a = WindowSampler(10, 200, 20, 10, 4, seed=1)
    b = WindowSampler(10, 200, 20, 10, 4, seed=1)
    auto = [*a, *a]
    assert len(auto) == 2 * len(a) and a.epoch == 2
    b.set_epoch(0)
    manual = list(b)
    b.set_epoch(1)
    manual += list(b)
    assert_same(auto, manual)


def test_windows_stay_inside_and_units_are_unique_per_batch():
    n_time, length, warmup = 100, 30, 20
    sampler = WindowSampler(12, n_time, length, warmup, 12, seed=2, iterations_per_epoch=300)
    starts_seen = []
    for units, starts in sampler:
        assert len(np.unique(units)) == 12
        assert starts.min() >= 0 and (starts + warmup + length).max() <= n_time
        starts_seen.append(starts)
    allstarts = np.concatenate(starts_seen)
    assert allstarts.min() == 0 and allstarts.max() == n_time - warmup - length  # both edges reachable


def test_unit_pool_and_oversized_batches():
    pool = np.array([3, 8, 9])
    sampler = WindowSampler(10, 50, 10, 0, 7, seed=0, units=pool)
    for units, _ in sampler:
        assert set(units.tolist()) <= {3, 8, 9}
        counts = np.bincount(units, minlength=10)[pool]
        assert counts.min() >= 2 and counts.max() <= 3  # 7 = 2 full rounds + 1
    with pytest.raises(InputError, match="unit index 10 is out of range"):
        WindowSampler(10, 50, 10, 0, 2, seed=0, units=np.array([10]))


def test_default_iterations_formula():
    sampler = WindowSampler(100, 3650, 365, 365, 32, seed=0)
    assert len(sampler) == math.ceil(100 * (3650 - 365) / (32 * 365))
    assert len(WindowSampler(2, 20, 20, 0, 64, seed=0)) == 1


def test_changed_settings_refuse_to_resume():
    state = WindowSampler(10, 100, 10, 5, 4, seed=0).state_dict()
    with pytest.raises(ConfigError, match="batch_size: saved 4, now 5"):
        WindowSampler(10, 100, 10, 5, 5, seed=0).load_state_dict(state)


def test_window_longer_than_data_is_a_config_error():
    with pytest.raises(ConfigError, match="warmup 40 \\+ length 80 = 120 steps does not fit in 100"):
        WindowSampler(5, 100, 80, 40, 2, seed=0)


@pytest.mark.parametrize("length", [None, 25, 7, 100])
def test_sequential_windows_cover_every_unit_and_step_once(length):
    n_units, n_time, warmup = 7, 60, 10
    windows = sequential_windows(n_units, n_time, length, warmup, units_per_batch=3)
    covered = np.zeros((n_units, n_time), dtype=int)
    for w in windows:
        assert len(w.units) <= 3 and w.start >= 0 and w.start + warmup + w.length <= n_time
        covered[np.ix_(w.units, np.arange(w.start + warmup, w.start + warmup + w.length))] += 1
    np.testing.assert_array_equal(covered[:, warmup:], 1)
    np.testing.assert_array_equal(covered[:, :warmup], 0)
    if length is None:
        assert len(windows) == 3 and all(w.length == n_time - warmup for w in windows)
