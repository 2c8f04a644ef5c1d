"""Temporal split with warm-up and spatial splits of units."""

from __future__ import annotations

import numpy as np
import pytest

from dmg.core.data import ArrayDataset, holdout_units, kfold_units, split_time
from dmg.core.errors import ConfigError, InputError


@pytest.fixture
def dataset() -> ArrayDataset:
    n_time = 100
    data = np.arange(3 * n_time, dtype=np.float32).reshape(3, n_time, 1)
    return ArrayDataset(data, ("x",), ("a", "b", "c"), np.datetime64("2000-01-01") + np.arange(n_time))


def test_split_time_prepends_the_warmup(dataset):
    sub, warmup = split_time(dataset, "2000-02-01", "2000-02-29", 10)
    assert warmup == 10
    assert str(sub.dates[0]) == "2000-01-22" and str(sub.dates[warmup]) == "2000-02-01"
    assert str(sub.dates[-1]) == "2000-02-29"
    np.testing.assert_array_equal(sub.data, dataset.data[:, 21:60])


def test_split_time_refuses_a_warmup_before_the_data(dataset):
    with pytest.raises(
        InputError, match=r"before 2000-01-05 would begin on 1999-12-26.*begin on 2000-01-01.*2000-01-11 or later"
    ):
        split_time(dataset, "2000-01-05", None, 10)
    sub, warmup = split_time(dataset, "2000-01-05", None, 10, allow_short_warmup=True)
    assert warmup == 4 and sub.n_time == 100


def test_kfold_partitions_cover_every_unit_once():
    ids = [f"{i:08d}" for i in range(23)]
    tests = []
    for fold in range(5):
        train, test = kfold_units(ids, 5, fold, seed=4)
        assert set(train).isdisjoint(test) and sorted(train + test) == ids
        assert train == [u for u in ids if u in train]  # original order kept
        assert len(test) in (4, 5)
        tests.extend(test)
    assert sorted(tests) == ids
    assert kfold_units(ids, 5, 2, seed=4) == kfold_units(ids, 5, 2, seed=4)
    assert kfold_units(ids, 5, 2, seed=4) != kfold_units(ids, 5, 2, seed=5)


def test_kfold_and_holdout_errors():
    with pytest.raises(ConfigError, match=r"fold must be in 0\.\.2"):
        kfold_units(["a", "b", "c"], 3, 3)
    with pytest.raises(ConfigError, match="exceeds the number of units"):
        kfold_units(["a", "b"], 3, 0)
    with pytest.raises(InputError, match="repeated"):
        kfold_units(["a", "a", "b"], 2, 0)
    with pytest.raises(ConfigError, match="fraction"):
        holdout_units(["a", "b"], 1.0)


def test_holdout_fraction_and_determinism():
    ids = list(range(40))
    train, test = holdout_units(ids, 0.25, seed=1)
    assert len(test) == 10 and sorted(train + test) == ids
    assert holdout_units(ids, 0.25, seed=1) == (train, test)
    assert len(holdout_units(["a", "b", "c"], 0.01)[1]) == 1
