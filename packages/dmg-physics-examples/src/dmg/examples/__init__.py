"""dmg.examples: small process models from several domains, for learning dmg.

Models (each a :class:`dmg.core.PhysicsModel`, registered under the ``dmg.physics`` entry points;
the first three are :class:`dmg.core.StepModel` s, the last a :class:`dmg.core.SeriesModel`)::

    LinearReservoir   hydrology      one store, streamflow and replaceable evapotranspiration
    SIR               epidemiology   susceptible-infected-recovered fractions, replaceable transmission
    SoilCarbon        ecosystems     fast and slow soil carbon pools with Q10 decomposition
    LightResponse     ecosystems     photosynthesis light response, no state and no time loop

:mod:`dmg.examples.synthetic` generates data for each, with the true parameters behind them.
"""

from dmg.examples.__about__ import __version__
from dmg.examples._interface import SUPPORTED_CORE_INTERFACE as SUPPORTED_CORE_INTERFACE
from dmg.examples.epidemiology import SIR
from dmg.examples.hydrology import LinearReservoir
from dmg.examples.light_response import LightResponse
from dmg.examples.soil_carbon import SoilCarbon

__all__ = ["SIR", "LightResponse", "LinearReservoir", "SoilCarbon", "__version__"]
