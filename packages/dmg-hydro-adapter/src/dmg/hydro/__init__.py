"""dmg.hydro: hydrology for dmg.

The public interface::

    HBV, HBV11p, HBV2        the published δHBV models (1.0, 1.1p, 2.0) as physics models
    HBV2Hourly, HBV21Hourly  hourly δHBV 2.0 and 2.1 with infiltration excess
    GammaRouting             gamma unit-hydrograph routing of named flow series
    HourlyGammaRouting       its 72-hour hourly form
    GaugeRouting, RoutingPairs   routing of units to gauges with lag and area weighting
    hargreaves, priestley_taylor    potential evapotranspiration (torch or numpy)

Adapters to external hydrology libraries live in :mod:`dmg.hydro.adapters` and are imported
on demand.
"""

from dmg.hydro.__about__ import __version__
from dmg.hydro._interface import SUPPORTED_CORE_INTERFACE as SUPPORTED_CORE_INTERFACE
from dmg.hydro.gauges import GaugeRouting, RoutingPairs
from dmg.hydro.hbv import HBV, HBV2, HBV11p
from dmg.hydro.hbv.hourly import HBV2Hourly, HBV21Hourly
from dmg.hydro.pet import hargreaves, priestley_taylor
from dmg.hydro.routing import GammaRouting, HourlyGammaRouting

__all__ = [
    "HBV",
    "HBV2",
    "GammaRouting",
    "GaugeRouting",
    "HBV2Hourly",
    "HBV11p",
    "HBV21Hourly",
    "HourlyGammaRouting",
    "RoutingPairs",
    "__version__",
    "hargreaves",
    "priestley_taylor",
]
