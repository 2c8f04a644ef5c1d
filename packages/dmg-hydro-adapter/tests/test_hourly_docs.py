"""The hourly models' documentation page shows the tables the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmg.hydro.docs import parameter_table, variable_table
from dmg.hydro.gauges import GaugeRouting
from dmg.hydro.hbv import HBV2Hourly, HBV21Hourly
from dmg.hydro.routing import HourlyGammaRouting

DOC = Path(__file__).resolve().parents[3] / "docs" / "hydrology" / "hourly.md"
PUBLISHED_DYNAMIC = ["BETA", "K0", "BETAET"]


@pytest.fixture(scope="module")
def page() -> str:
    if not DOC.is_file():
        pytest.skip(f"documentation page not found: {DOC}")
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "table",
    [
        pytest.param(lambda: parameter_table(HBV2Hourly, dynamic=PUBLISHED_DYNAMIC), id="hbv2-hourly-parameters"),
        pytest.param(lambda: parameter_table(HBV21Hourly, dynamic=PUBLISHED_DYNAMIC), id="hbv21-hourly-parameters"),
        pytest.param(lambda: parameter_table(HourlyGammaRouting), id="unit-routing-parameters"),
        pytest.param(lambda: parameter_table(GaugeRouting), id="gauge-routing-parameters"),
        pytest.param(lambda: variable_table(HBV2Hourly.forcings), id="forcings"),
        pytest.param(lambda: variable_table(HBV2Hourly.attributes), id="attributes"),
        pytest.param(lambda: variable_table(HBV21Hourly.states), id="states"),
        pytest.param(lambda: variable_table(HBV21Hourly.outputs), id="outputs"),
        pytest.param(lambda: variable_table(GaugeRouting().signature.attributes), id="gauge-attributes"),
        pytest.param(lambda: variable_table(GaugeRouting().signature.outputs), id="gauge-outputs"),
    ],
)
def test_page_shows_the_generated_table(page, table):
    generated = table()
    assert generated in page, f"{DOC} is out of date; regenerate this table:\n{generated}"


def test_page_names_every_registered_hourly_component(page):
    for name in ("hbv_2_hourly", "hbv_2_1_hourly", "hourly_gamma_routing", "gauge_routing"):
        assert f"`{name}`" in page, name
