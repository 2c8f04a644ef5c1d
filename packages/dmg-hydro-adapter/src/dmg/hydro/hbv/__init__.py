"""The HBV family of conceptual rainfall-runoff models as dmg physics models.

``HBV`` (δHBV 1.0), ``HBV11p`` (δHBV 1.1p) and ``HBV2`` (δHBV 2.0) run daily, ``HBV2Hourly``
(δHBV 2.0 hourly) and ``HBV21Hourly`` (δHBV 2.1 hourly) hourly; all produce unrouted runoff.
Chain them with :class:`dmg.hydro.routing.GammaRouting` (daily) or
:class:`dmg.hydro.routing.HourlyGammaRouting` and :class:`dmg.hydro.gauges.GaugeRouting` (hourly).
"""

from dmg.hydro.hbv.base import NEAR_ZERO, HBVBase, HBVConfig
from dmg.hydro.hbv.hourly import HBV2Hourly, HBV21Hourly, HBVHourlyConfig
from dmg.hydro.hbv.models import HBV, HBV2, HBV2Config, HBV11p

__all__ = [
    "HBV",
    "HBV2",
    "NEAR_ZERO",
    "HBV2Config",
    "HBV2Hourly",
    "HBV11p",
    "HBV21Hourly",
    "HBVBase",
    "HBVConfig",
    "HBVHourlyConfig",
]
