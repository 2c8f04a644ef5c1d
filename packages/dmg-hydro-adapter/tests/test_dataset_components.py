"""The hydrology datasets follow the component convention and name the metrics `dmg evaluate` reports."""

from __future__ import annotations

import numpy as np
import pytest

from dmg.core import ConfigError, registry
from dmg.hydro.datasets import CamelsUS, PerUnitNetCDF
from dmg.hydro.metrics import HYDROLOGY_METRICS
from dmg.hydro.twin import HBVTwin

DATASETS = {"camels_us": CamelsUS, "netcdf_units": PerUnitNetCDF, "hbv_twin": HBVTwin}


@pytest.mark.parametrize("name", list(DATASETS))
def test_registered_datasets_report_the_hydrology_metrics(name):
    cls = registry.get("dmg.datasets", name)
    assert cls is DATASETS[name]
    assert cls.default_metrics == ("nse", "kge", "kge_r", "kge_alpha", "kge_beta", "rmse", "bias", "correlation")
    assert cls.default_metrics == HYDROLOGY_METRICS
    assert all(registry.get("dmg.metrics", m) for m in cls.default_metrics)


def test_options_come_only_through_the_config(tmp_path):
    by_keywords = CamelsUS(root=str(tmp_path), gauges=["01022500"], cache=False)
    by_config = CamelsUS(CamelsUS.Config(root=str(tmp_path), gauges=["01022500"], cache=False))
    by_mapping = CamelsUS.from_config({"root": str(tmp_path), "gauges": ["01022500"], "cache": False})
    assert by_keywords.config == by_config.config == by_mapping.config
    merged = CamelsUS({"root": str(tmp_path), "gauges": ["01022500"]}, cache=False)
    assert merged.config == by_config.config
    with pytest.raises(ConfigError, match=r"unknown key 'gauge'; did you mean 'gauges'"):
        CamelsUS(root=str(tmp_path), gauge=["01022500"])
    with pytest.raises(ConfigError, match="takes its options as keywords"):
        PerUnitNetCDF(str(tmp_path))
    with pytest.raises(ConfigError, match=r"'years'"):
        HBVTwin(years=0)


def test_twin_is_deterministic_from_its_config():
    a = HBVTwin(n_units=3, years=1, seed=5).load()
    b = HBVTwin.from_config({"n_units": 3, "years": 1, "seed": 5}).load()
    assert a.unit_ids == b.unit_ids and a.n_time == 365
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.attributes, b.attributes)
    assert "true_FC" in a.attribute_names and "streamflow" in a.variables
