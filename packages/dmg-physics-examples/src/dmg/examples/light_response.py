"""Light response of ecosystem photosynthesis: a model with no state and no time loop.

The rectangular hyperbola relates gross primary production to photosynthetically active
radiation::

    GPP = alpha * PAR * Pmax / (alpha * PAR + Pmax)
    NEE = Reco - GPP

``alpha`` is the initial slope (quantum efficiency), ``Pmax`` the light-saturated rate that GPP
approaches in bright light (half of it at ``PAR = Pmax / alpha``) and ``Reco`` the ecosystem
respiration.  NEE follows the eddy-covariance sign convention: positive is a release of CO2.

Every time step is independent of the others, so :class:`LightResponse` is a
:class:`~dmg.core.SeriesModel`: it implements :meth:`~dmg.core.SeriesModel.simulate` and computes
the whole series at once instead of implementing ``step``.  The engine handles warm-up as for any
other model; with no state to warm up, warm-up steps are simply dropped.
"""

from __future__ import annotations

import torch

from dmg.core import Parameter, Processes, SeriesModel, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.signature import NO_PROCESSES, TensorDict


class LightResponseConfig(PhysicsConfig):
    """Options of :class:`LightResponse`: those of every physics model (``nmul``, ``dynamic``, ``warmup_mode``)."""


class LightResponse(SeriesModel):
    """Rectangular-hyperbola light response of GPP, computed for all time steps at once.

    Forcings
        ``PAR`` photosynthetically active radiation (µmol photons/m²/s).
    Parameters
        ``alpha`` quantum efficiency (µmol CO2/µmol photons), ``Pmax`` light-saturated GPP
        (µmol CO2/m²/s), ``Reco`` ecosystem respiration (µmol CO2/m²/s).
    Outputs
        ``GPP`` gross primary production and ``NEE`` net ecosystem exchange (µmol CO2/m²/s).

    Any parameter may be time-varying (``dynamic=[...]``).  There is no state to spin up, so the
    model warms up ``inline`` by default: the engine drops the warm-up steps of one pass.
    ``spinup`` is accepted too and gives the same outputs.

    Parameters
    ----------
    config
        A :class:`LightResponseConfig` (or a mapping of its options); alternatively give the options as
        keywords (``nmul``, ``dynamic``, ``warmup_mode``).
    """

    Config = LightResponseConfig
    warmup_modes = ("inline", "spinup")
    stream_memory = 0
    """Each step's output depends on that step alone: run step by step (:mod:`dmg.core.stepping`), it
    needs no past inputs."""

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
        """``alpha * PAR * Pmax / (alpha * PAR + Pmax)`` (µmol CO2/m²/s).

        Parameters
        ----------
        par
            Photosynthetically active radiation (µmol photons/m²/s).
        alpha
            Quantum efficiency (µmol CO2/µmol photons).
        pmax
            Light-saturated gross primary production (µmol CO2/m²/s).
        """
        light_limited = alpha * par
        return light_limited * pmax / (light_limited + pmax)

    def simulate(
        self,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        state: TensorDict,
        processes: Processes = NO_PROCESSES,
        save: frozenset[str] | None = None,
    ) -> tuple[TensorDict, TensorDict]:
        """GPP and NEE at every step of the series, averaged over the ``nmul`` components.

        Parameters
        ----------
        forcings
            ``PAR`` (µmol photons/m²/s), ``[time, unit]``.
        params
            ``alpha`` (µmol CO2/µmol photons), ``Pmax`` and ``Reco`` (µmol CO2/m²/s): ``[unit, nmul]``,
            or ``[time, unit, nmul]`` for time-varying ones.
        attributes
            Unused (the model declares none).
        state
            Unused (the model has no state): ``{}``.
        processes
            Unused (the model declares no process slots).

        Returns
        -------
        tuple of dict
            ``GPP`` and ``NEE`` (µmol CO2/m²/s), ``[time, unit]``, and the (empty) final state.
        """
        spec = self.parameter_spec
        par = forcings["PAR"].unsqueeze(-1)  # [time, unit, 1] broadcasts against [.., unit, nmul]
        values = {}
        for p in spec:
            value = params[p.name] if p.per_component else params[p.name].unsqueeze(-1)
            values[p.name] = value if spec.is_series(p.name, params[p.name]) else value.unsqueeze(0)
        gpp = self.gross_production(par, values["alpha"], values["Pmax"])
        nee = values["Reco"] - gpp
        return {"GPP": gpp.mean(-1), "NEE": nee.mean(-1)}, {}
