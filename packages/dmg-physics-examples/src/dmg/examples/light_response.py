"""Light response of ecosystem photosynthesis: a model with no state and no time loop.

The rectangular hyperbola relates gross primary production to photosynthetically active
radiation::

    GPP = alpha * PAR * Pmax / (alpha * PAR + Pmax)
    NEE = Reco - GPP

``alpha`` is the initial slope (quantum efficiency), ``Pmax`` the light-saturated rate that GPP
approaches in bright light (half of it at ``PAR = Pmax / alpha``) and ``Reco`` the ecosystem
respiration.  NEE follows the eddy-covariance sign convention: positive is a release of CO2.

Every time step is independent of the others, so :class:`LightResponse` overrides
:meth:`~dmg.core.PhysicsModel.simulate` and computes the whole series at once instead of
implementing ``step``: models without state fit :class:`~dmg.core.PhysicsModel` just as well.
"""

from __future__ import annotations

import torch

from dmg.core import Parameter, PhysicsModel, Variable
from dmg.core.components import PhysicsConfig


class LightResponseConfig(PhysicsConfig):
    """Options of :class:`LightResponse` (those of every physics model; ``backend`` is unused: no time loop)."""


class LightResponse(PhysicsModel):
    """Rectangular-hyperbola light response of GPP, computed for all time steps at once.

    Forcings
        ``PAR`` photosynthetically active radiation (µmol photons/m²/s).
    Parameters
        ``alpha`` quantum efficiency (µmol CO2/µmol photons), ``Pmax`` light-saturated GPP
        (µmol CO2/m²/s), ``Reco`` ecosystem respiration (µmol CO2/m²/s).
    Outputs
        ``GPP`` gross primary production and ``NEE`` net ecosystem exchange (µmol CO2/m²/s).

    Any parameter may be time-varying (``dynamic=[...]``); warm-up steps are simply dropped
    since there is no state to spin up.
    """

    Config = LightResponseConfig

    forcings = (Variable("PAR", "µmol/m²/s", "photosynthetically active radiation", (0.0, 2000.0)),)
    physical_parameters = (
        Parameter("alpha", 0.005, 0.1, "µmol/µmol", "quantum efficiency: initial slope of GPP against PAR"),
        Parameter("Pmax", 2.0, 60.0, "µmol/m²/s", "light-saturated gross primary production"),
        Parameter("Reco", 0.0, 10.0, "µmol/m²/s", "ecosystem respiration"),
    )
    outputs = (
        Variable("GPP", "µmol/m²/s", "gross primary production", (0.0, 60.0)),
        Variable("NEE", "µmol/m²/s", "net ecosystem exchange (positive: release to the air)", (-60.0, 10.0)),
    )

    @staticmethod
    def gross_production(par: torch.Tensor, alpha: torch.Tensor, pmax: torch.Tensor) -> torch.Tensor:
        """``alpha * PAR * Pmax / (alpha * PAR + Pmax)`` (µmol CO2/m²/s)."""
        light_limited = alpha * par
        return light_limited * pmax / (light_limited + pmax)

    def simulate(self, forcings, params, attributes, state, *, warmup, warmup_mode, warmup_params=None):
        par = forcings["PAR"].unsqueeze(-1)  # [time, unit, 1] broadcasts against [.., unit, nmul]
        values = {}
        for p in self.parameter_spec:
            value = params[p.name] if p.per_component else params[p.name].unsqueeze(-1)
            values[p.name] = value if self.is_series(p, params[p.name]) else value.unsqueeze(0)
        gpp = self.gross_production(par, values["alpha"], values["Pmax"])
        nee = values["Reco"] - gpp
        outputs = {"GPP": gpp.mean(-1), "NEE": nee.mean(-1)}
        return outputs, {}, warmup  # no state: warm-up steps are only dropped
