"""The .npz cache of assembled datasets: hits, invalidation by config and by source files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from dmg.core.data import ArrayDataset
from dmg.hydro.datasets import camels
from dmg.hydro.datasets.cache import CachedDataset, CacheOptions, default_cache_dir
from dmg.hydro.datasets.camels import CamelsUS

SAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camels_us_sample"


class CountingText(CachedDataset):
    """A minimal dataset component: one text file of numbers, one unit, daily from 2000-01-01."""

    cache_name: ClassVar[str] = "counting_text"
    builds = 0

    class Config(CacheOptions):
        path: str
        scale: float = 1.0

    def source_files(self) -> list[Path]:
        return [Path(self.config.path)]

    def build(self) -> ArrayDataset:
        type(self).builds += 1
        values = np.loadtxt(self.config.path, ndmin=1) * self.config.scale
        dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + len(values))
        return ArrayDataset.from_dicts({"x": values[None, :]}, ["u"], dates)


@pytest.fixture
def text_source(tmp_path):
    CountingText.builds = 0
    path = tmp_path / "values.txt"
    path.write_text("1 2 3\n")
    return path


def make(path: Path, cache_dir: Path, **options) -> CountingText:
    return CountingText(CountingText.Config(path=str(path), cache_dir=str(cache_dir), **options))


def test_second_load_is_served_from_the_cache(text_source, tmp_path):
    cache_dir = tmp_path / "cache"
    first = make(text_source, cache_dir).load()
    second = make(text_source, cache_dir).load()
    assert CountingText.builds == 1
    np.testing.assert_array_equal(first.data, second.data)
    np.testing.assert_array_equal(first.dates, second.dates)
    assert len(list(cache_dir.glob("counting_text-*.npz"))) == 1


def test_changed_source_or_config_rebuilds(text_source, tmp_path):
    cache_dir = tmp_path / "cache"
    make(text_source, cache_dir).load()
    # Touching the file (same content, new modification time) invalidates the entry.
    stat = text_source.stat()
    os.utime(text_source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    make(text_source, cache_dir).load()
    assert CountingText.builds == 2
    # New content of another size.
    text_source.write_text("1 2 3 4\n")
    assert make(text_source, cache_dir).load().n_time == 4
    assert CountingText.builds == 3
    # Another config value.
    scaled = make(text_source, cache_dir, scale=2.0).load()
    assert CountingText.builds == 4
    np.testing.assert_array_equal(scaled.variable("x")[0], [2, 4, 6, 8])
    # The cache options themselves are not part of the key.
    make(text_source, cache_dir, scale=2.0).load()
    assert CountingText.builds == 4


def test_cache_off_and_unreadable_entries(text_source, tmp_path):
    cache_dir = tmp_path / "cache"
    make(text_source, cache_dir, cache=False).load()
    assert not cache_dir.exists()
    component = make(text_source, cache_dir)
    component.load()
    component.cache_path().write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = component.load()
    assert again.n_time == 3 and CountingText.builds == 3
    assert ArrayDataset.load(component.cache_path()).n_time == 3  # rewritten whole


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DMG_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DMG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dmg" / "datasets"


def test_camels_is_served_from_the_cache(monkeypatch, tmp_path):
    if not SAMPLE.is_dir():
        pytest.skip(f"CAMELS-US sample not found at {SAMPLE}")
    options = {"root": str(SAMPLE), "gauges": ["01022500", "01547700"], "cache_dir": str(tmp_path)}
    built = CamelsUS.from_config({**options, "attributes": ["aridity"]}).load()

    def refuse(*args, **kwargs):
        raise AssertionError("the text files were parsed again")

    monkeypatch.setattr(camels, "read_forcing", refuse)
    monkeypatch.setattr(camels, "read_streamflow", refuse)
    cached = CamelsUS.from_config({**options, "attributes": ["aridity"]}).load()
    np.testing.assert_array_equal(cached.data, built.data)
    np.testing.assert_array_equal(cached.attributes, built.attributes)
    assert cached.unit_ids == built.unit_ids and cached.units == built.units
    assert cached.dates.dtype == np.dtype("datetime64[D]")
    # A changed config misses the cache and parses again.
    with pytest.raises(AssertionError, match="parsed again"):
        CamelsUS.from_config({**options, "attributes": ["aridity", "q_mean"]}).load()
