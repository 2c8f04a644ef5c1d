"""Hydrology presets of the multi-timescale composite (:class:`dmg.core.multiscale.MultiTimescale`).

The published multi-timescale δHBV 2.0 (Yang et al. 2026) runs the daily δHBV 2.0 over the 351
days before an hourly window and hands its five stores, unchanged and without gradient, to an
hourly δHBV (2.0 or 2.1 hourly); the parameters that both declare static take the daily network's
value, rescaled to the hourly bounds. In dmg this is a configuration of the domain-free composite:

* :data:`DAILY_AGGREGATION`: daily forcings from hourly ones (precipitation and PET summed, mm/h
  to mm/day; temperature averaged);
* :func:`hbv_handover`: the identity map of the five HBV stores (stores only the hourly model
  declares, such as the infiltration-excess cascade of 2.1 hourly, start from their initial values);
* :func:`shared_static_parameters`: every parameter static in both models, supplied daily;
* :func:`hbv_multi_timescale`: the composite built from these.
"""

from __future__ import annotations

from typing import Any

from dmg.core.multiscale import MultiTimescale
from dmg.core.physics import PhysicsModel

HOURS_PER_DAY = 24
"""Fine (hourly) steps per coarse (daily) step."""

PUBLISHED_DAYS = 351
"""Days of the published daily spin-up before each hourly window."""

DAILY_AGGREGATION: dict[str, Any] = {"P": "sum", "T": "mean", "PET": "sum"}
"""Daily forcing from 24 hourly values: P and PET summed (mm/h to mm/day), T averaged (°C)."""

HBV_STORES = ("SP", "MW", "SM", "SUZ", "SLZ")
"""The HBV stores (mm) handed from the daily to the hourly model, unchanged."""

HBV_HANDOVER: dict[str, Any] = {name: name for name in HBV_STORES}
"""The handover of the HBV stores to an hourly HBV used on its own (not inside a Chain)."""


def hbv_handover(hourly: PhysicsModel) -> dict[str, Any]:
    """The identity map of the HBV stores onto ``hourly``'s states: ``SP`` or, inside a
    :class:`~dmg.core.Chain`, the member's ``"<member>.SP"``.

    Raises
    ------
    ValueError
        When ``hourly`` carries a store under no name or under several.
    """
    out = {}
    for store in HBV_STORES:
        found = [n for n in hourly.state_names if n == store or n.endswith(f".{store}")]
        if len(found) != 1:
            raise ValueError(f"the hourly model carries the store {store!r} as {found or 'no state'}; need one")
        out[found[0]] = store
    return out


def shared_static_parameters(daily: PhysicsModel, hourly: PhysicsModel) -> dict[str, Any]:
    """Every parameter static in both models, supplied by the daily one (rescaled to the hourly bounds).

    Parameters
    ----------
    daily, hourly
        The coarse and the fine model (a fine :class:`~dmg.core.Chain` counts its members' parameters).
    """
    daily_spec, hourly_spec = daily.parameter_spec, hourly.parameter_spec
    return {
        name: "coarse"
        for name in daily_spec.names
        if name in hourly_spec and not daily_spec.is_dynamic(name) and not hourly_spec.is_dynamic(name)
    }


def hbv_multi_timescale(
    daily: PhysicsModel, hourly: PhysicsModel, *, days: int = PUBLISHED_DAYS, detach_handover: bool = True
) -> MultiTimescale:
    """The published multi-timescale arrangement of a daily and an hourly HBV.

    Parameters
    ----------
    daily
        The daily model (e.g. :class:`~dmg.hydro.HBV2`), forcings ``P``, ``T``, ``PET`` per day.
    hourly
        The hourly model (e.g. ``HBV2Hourly``, or a :class:`~dmg.core.Chain` of it and a routing).
    days
        Days the daily model runs before the hourly span.
    detach_handover
        Hand the daily stores over without gradient, as published.
    """
    return MultiTimescale(
        coarse=daily,
        fine=hourly,
        ratio=HOURS_PER_DAY,
        coarse_steps=days,
        aggregation=DAILY_AGGREGATION,
        handover=hbv_handover(hourly),
        shared=shared_static_parameters(daily, hourly),
        detach_handover=detach_handover,
    )
