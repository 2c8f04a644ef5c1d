"""The HBV documentation page shows the tables the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmg.hydro import HBV2, GammaRouting
from dmg.hydro.docs import parameter_table, variable_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "hydrology" / "hbv.md"


@pytest.fixture(scope="module")
def page() -> str:
    if not DOC.is_file():
        pytest.skip(f"documentation page not found: {DOC}")
    return DOC.read_text(encoding="utf-8")


def test_parameter_table_lists_bounds_units_and_scope():
    table = parameter_table(HBV2, dynamic=["BETA"])
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(HBV2().parameter_spec)
    assert "| `FC` | 50 | 1000 | mm | component | no |" in table
    assert "| `BETA` | 1 | 6 | – | component | yes |" in table
    assert "| `route_a` | 0 | 2.9 | – | unit | no |" in parameter_table(GammaRouting)


@pytest.mark.parametrize(
    "table",
    [
        pytest.param(lambda: parameter_table(HBV2, dynamic=["BETA", "K0", "BETAET"]), id="hbv2-parameters"),
        pytest.param(lambda: parameter_table(GammaRouting), id="routing-parameters"),
        pytest.param(lambda: variable_table(HBV2.forcings), id="forcings"),
        pytest.param(lambda: variable_table(HBV2.attributes), id="attributes"),
        pytest.param(lambda: variable_table(HBV2.states), id="states"),
        pytest.param(lambda: variable_table(HBV2.outputs), id="outputs"),
        pytest.param(lambda: variable_table(GammaRouting().outputs), id="routed-outputs"),
    ],
)
def test_page_shows_the_generated_table(page, table):
    generated = table()
    assert generated in page, f"{DOC} is out of date; regenerate this table:\n{generated}"
