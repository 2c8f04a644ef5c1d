"""dmg.hydro: hydrology for dmg.

The public interface::

    HBV, HBV11p, HBV2        the published δHBV models (1.0, 1.1p, 2.0) as physics models
    GammaRouting             gamma unit-hydrograph routing of named flow series
    hargreaves, priestley_taylor    potential evapotranspiration (torch or numpy)

Adapters to external hydrology libraries live in :mod:`dmg.hydro.adapters` and are imported
on demand.
"""

from dmg.hydro.__about__ import __version__
from dmg.hydro._interface import SUPPORTED_CORE_INTERFACE as SUPPORTED_CORE_INTERFACE
from dmg.hydro.hbv import HBV, HBV2, HBV11p
from dmg.hydro.pet import hargreaves, priestley_taylor
from dmg.hydro.routing import GammaRouting

__all__ = ["HBV", "HBV2", "GammaRouting", "HBV11p", "__version__", "hargreaves", "priestley_taylor"]
