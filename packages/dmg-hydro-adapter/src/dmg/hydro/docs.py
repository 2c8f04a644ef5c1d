"""Markdown tables generated from model declarations, for the documentation.

The tables in ``docs/hydrology/hbv.md`` are produced by these functions (a test checks that
the page and the code agree), so bounds and units are written down in one place only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dmg.core import PhysicsModel, Variable


def _number(x: float) -> str:
    return f"{x:g}"


def _unit(unit: str) -> str:
    return unit or "–"


def parameter_table(model_cls: type[PhysicsModel], **options: Any) -> str:
    """Markdown table of the parameters of ``model_cls(**options)``: name, bounds, unit, scope, description.

    Parameters
    ----------
    model_cls
        A :class:`~dmg.core.PhysicsModel` class.
    **options
        Constructor options that change the parameters (e.g. ``dynamic=["BETA", "BETAET"]``
        for :class:`~dmg.hydro.HBV`).

    Returns
    -------
    The table, one parameter per row in declaration (raw channel) order, ending in a newline.
    """
    spec = model_cls(**options).parameter_spec
    rows = [
        "| parameter | low | high | unit | one value per | time-varying | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in spec:
        scope = "component" if p.per_component else "unit"
        dynamic = "yes" if spec.is_dynamic(p.name) else "no"
        rows.append(
            f"| `{p.name}` | {_number(p.low)} | {_number(p.high)} | {_unit(p.unit)} | {scope} | {dynamic} "
            f"| {p.description} |"
        )
    return "\n".join(rows) + "\n"


def variable_table(variables: Iterable[Variable]) -> str:
    """Markdown table of declared forcings, attributes, states or outputs: name, unit, description."""
    rows = ["| name | unit | description |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {_unit(v.unit)} | {v.description} |" for v in variables]
    return "\n".join(rows) + "\n"
