"""The HBV family of conceptual rainfall-runoff models as dmg physics models.

``HBV`` (δHBV 1.0), ``HBV11p`` (δHBV 1.1p) and ``HBV2`` (δHBV 2.0) produce unrouted runoff;
chain them with :class:`dmg.hydro.routing.GammaRouting` for routed streamflow.
"""

from dmg.hydro.hbv.base import NEAR_ZERO, HBVBase, HBVConfig
from dmg.hydro.hbv.models import HBV, HBV2, HBV2Config, HBV11p

__all__ = ["HBV", "HBV2", "NEAR_ZERO", "HBV2Config", "HBV11p", "HBVBase", "HBVConfig"]
