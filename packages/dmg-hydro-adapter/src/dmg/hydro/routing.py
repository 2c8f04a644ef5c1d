"""Routing of runoff to the outlet with a gamma unit hydrograph, as a reusable physics model.

The unit hydrograph of the published δHBV models spans ``length`` (15) days.  With
``a = relu(route_a) + 0.1`` (shape) and ``θ = relu(route_b) + 0.5`` (scale, days), the
weight of lag ``k`` is proportional to the gamma density at the middle of the day,
``t_k = k + 0.5``::

    w_k ∝ t_k**(a - 1) * exp(-t_k / θ) / (Γ(a) * θ**a),     Σ_k w_k = 1

and routed flow is the causal convolution ``Q_routed[t] = Σ_k w_k * Q[t - k]`` with zeros
before the first step.  Weights beyond the length of a run act on no data, so a run
shorter than ``length`` uses the first weights only, unchanged.

:class:`GammaRouting` routes any named flow series with the same weights and reports the
base-flow index; chain it after a runoff model::

    Chain(runoff=HBV(nmul=16), routing=GammaRouting())
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import Field, ValidationInfo, field_validator

from dmg.core import Parameter, SeriesModel, SpecError, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.signature import NO_PROCESSES, Processes, TensorDict

UH_LENGTH = 15
"""Length of the published unit hydrograph (days)."""

SHAPE_OFFSET = 0.1
"""Added to ``relu(route_a)`` to give the gamma shape ``a``."""
SCALE_OFFSET = 0.5
"""Added to ``relu(route_b)`` to give the gamma scale ``θ`` (days)."""
BFI_EPSILON = 1e-5
"""Added to the routed streamflow total in the denominator of the base-flow index (mm)."""

ROUTE_A = Parameter("route_a", 0.0, 2.9, "", "gamma shape of the unit hydrograph, minus 0.1", per_component=False)
ROUTE_B = Parameter(
    "route_b", 0.0, 6.5, "day", "gamma scale of the unit hydrograph, minus 0.5 day", per_component=False
)


def gamma_unit_hydrograph(route_a: torch.Tensor, route_b: torch.Tensor, length: int = UH_LENGTH) -> torch.Tensor:
    """Weights of the gamma unit hydrograph, ``[..., length]``, summing to one.

    Parameters
    ----------
    route_a
        Shape parameter as learned (the gamma shape is ``relu(route_a) + 0.1``), any shape.
    route_b
        Scale parameter as learned (the gamma scale is ``relu(route_b) + 0.5`` days), same shape.
    length
        Number of daily lags.
    """
    if length < 1:
        raise SpecError(f"unit hydrograph length must be >= 1 day, got {length}")
    shape = (torch.relu(route_a) + SHAPE_OFFSET).unsqueeze(-1)
    scale = (torch.relu(route_b) + SCALE_OFFSET).unsqueeze(-1)
    t = torch.arange(length, dtype=shape.dtype, device=shape.device) + 0.5
    # The normalising constant Γ(a) θ^a is common to all lags and cancels in the normalisation.
    return torch.softmax((shape - 1.0) * torch.log(t) - t / scale, dim=-1)


def convolve(flows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Causal convolution of ``flows`` ``[time, unit, n]`` with per-unit ``weights`` ``[unit, lags]``.

    Returns ``[time, unit, n]`` with ``out[t] = Σ_k weights[k] * flows[t - k]`` (zeros before
    ``t = 0``), as one grouped 1-D convolution (one channel per unit and flow): one operation
    forward and one backward, whatever the number of lags.
    """
    n_time, n_units, n_flows = flows.shape
    n_lags = min(weights.shape[-1], n_time)
    series = flows.permute(1, 2, 0).reshape(1, n_units * n_flows, n_time)
    kernel = weights[:, :n_lags].flip(-1).repeat_interleave(n_flows, dim=0).unsqueeze(1)
    routed = torch.nn.functional.conv1d(
        torch.nn.functional.pad(series, (n_lags - 1, 0)), kernel, groups=series.shape[1]
    )
    return routed.reshape(n_units, n_flows, n_time).permute(2, 0, 1)


def baseflow_index(baseflow: torch.Tensor, streamflow: torch.Tensor) -> torch.Tensor:
    """Base-flow index (%) per unit: ``100 * Σ baseflow / (Σ streamflow + 1e-5)`` over time."""
    return 100.0 * baseflow.sum(0) / (streamflow.sum(0) + BFI_EPSILON)


class GammaRoutingConfig(PhysicsConfig):
    """Options of :class:`GammaRouting`."""

    flows: list[str] = Field(
        default_factory=lambda: ["Q", "Q0", "Q1", "Q2"], description="Names of the flow series to route (mm/day)."
    )
    streamflow: str | None = Field(
        "Q", validate_default=True, description="Total flow among `flows`, denominator of the base-flow index."
    )
    baseflow: str | None = Field(
        "Q2", validate_default=True, description="Baseflow among `flows`, numerator of the base-flow index."
    )
    length: int = Field(UH_LENGTH, ge=1, description="Length of the unit hydrograph (days).")
    unrouted_suffix: str = Field("_unrouted", description="Suffix of the outputs repeating the unrouted inputs.")

    @field_validator("dynamic")
    @classmethod
    def _static(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError(f"routing parameters are static, got time-varying {value}")
        return value

    @field_validator("flows")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"give one or more distinct flow names to route, got {value}")
        return value

    @field_validator("streamflow", "baseflow")
    @classmethod
    def _routed(cls, value: str | None, info: ValidationInfo) -> str | None:
        flows = info.data.get("flows")
        if value is not None and flows is not None and value not in flows:
            raise ValueError(f"{value!r} is not among the routed flows {flows}")
        if (
            info.field_name == "baseflow"
            and "streamflow" in info.data
            and (value is None) != (info.data["streamflow"] is None)
        ):
            raise ValueError("set both streamflow and baseflow for the base-flow index, or neither")
        return value

    @field_validator("unrouted_suffix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty: unrouted outputs would replace the routed ones")
        return value


class GammaRouting(SeriesModel):
    """Gamma unit-hydrograph routing of named flow series, with per-unit parameters.

    Forcings are the flow series named in ``flows`` (mm/day, e.g. the outputs of a runoff
    model in a :class:`~dmg.core.Chain`); outputs are the routed series under the same
    names, the unrouted inputs as ``<name>_unrouted`` and, when ``baseflow`` and
    ``streamflow`` are set, the base-flow index ``BFI`` (%) per unit over the whole series
    the model is given (with inline warm-up, warm-up steps included).  The parameters
    ``route_a`` and ``route_b`` are shared by a unit's components (one value per unit) and
    static.

    Routing keeps no state between calls. Alone it warms up ``inline`` by default (warm-up
    steps are routed, then dropped); in a :class:`~dmg.core.Chain` it follows the chain's
    mode, which is its first member's. Run step by step (:mod:`dmg.core.stepping`), it is given
    the last ``length - 1`` flows with each step (:attr:`stream_memory`), kept in the model's state.

    Parameters
    ----------
    config
        A :class:`GammaRoutingConfig`, or a mapping of its options.
    **options
        Options of :class:`GammaRoutingConfig` as keywords: ``flows`` (names of the flow series
        to route), ``streamflow`` and ``baseflow`` (names among ``flows`` of total flow and
        baseflow for the base-flow index; ``None``: no ``BFI`` output), ``length`` (days),
        ``unrouted_suffix``, ``nmul`` and ``warmup_mode``; ``dynamic`` must stay empty.
    """

    Config = GammaRoutingConfig
    physical_parameters = (ROUTE_A, ROUTE_B)
    warmup_modes = ("inline", "spinup")
    flow_unit: ClassVar[str] = "mm/day"
    """Unit of the routed flows (amounts per step)."""
    step_days: ClassVar[float] = 1.0
    """Length of one step (days)."""

    def __init__(self, config: GammaRoutingConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        flows, suffix, unit = config.flows, config.unrouted_suffix, self.flow_unit
        typical = (0.0, 30.0 * self.step_days)
        routed = tuple(Variable(f, unit, f"flow {f} routed to the outlet", typical) for f in flows)
        unrouted = tuple(Variable(f + suffix, unit, f"flow {f} before routing", typical) for f in flows)
        bfi = (Variable("BFI", "%", "base-flow index over the simulated window", (0.0, 100.0)),)
        super().__init__(
            config,
            forcings=tuple(Variable(f, unit, f"flow {f} to route", typical) for f in flows),
            outputs=routed + unrouted + (bfi if config.baseflow is not None else ()),
        )

    @property
    def stream_memory(self) -> int:
        """Past steps of the flows a routed value depends on (``length - 1``): the buffer a model run step
        by step carries (:mod:`dmg.core.stepping`)."""
        return self.config.length - 1

    def unit_hydrograph(self, params: TensorDict) -> torch.Tensor:
        """Weights ``[unit, length]`` from the physical ``route_a`` and ``route_b`` ``[unit]``."""
        return gamma_unit_hydrograph(params["route_a"], params["route_b"], self.config.length)

    def weights(self, params: TensorDict, n_time: int) -> torch.Tensor:
        """Weights ``[unit, lags]`` applied to a series of ``n_time`` steps: the unit hydrograph's
        first ``n_time`` weights, unchanged (later ones act on no data)."""
        return self.unit_hydrograph(params)[..., :n_time]

    def forcings_needed(self, save: frozenset[str] | None) -> tuple[str, ...]:
        """The flows to route for the outputs ``save``: a flow for its routed or unrouted output, the
        streamflow and baseflow for ``BFI``."""
        config = self.config
        if save is None:
            return tuple(config.flows)
        wanted = {f for f in config.flows if f in save or f + config.unrouted_suffix in save}
        if "BFI" in save and config.baseflow is not None:
            wanted |= {config.streamflow, config.baseflow}
        return tuple(f for f in config.flows if f in wanted)

    def simulate(
        self,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        state: TensorDict,
        processes: Processes = NO_PROCESSES,
        save: frozenset[str] | None = None,
    ) -> tuple[TensorDict, TensorDict]:
        """Route the flows over the series given (those the outputs ``save`` need); routing keeps no state.

        Parameters
        ----------
        forcings
            The flows to route (mm/day), ``[time, unit]`` each: those :meth:`forcings_needed` names.
        params
            ``route_a`` and ``route_b`` (``[unit]``).
        attributes, state, processes
            Unused: routing reads no attribute, carries no state and has no process slot.
        save
            The outputs the caller keeps (``None``: all).

        Returns
        -------
        tuple[dict, dict]
            Routed flows and ``<name>_unrouted`` (mm/day, ``[time, unit]``), ``BFI`` (%, ``[unit]``)
            over the whole series, and an empty final state.
        """
        config = self.config
        names = self.forcings_needed(save)
        flows = torch.stack([forcings[f] for f in names], dim=-1)
        weights = self.weights(params, flows.shape[0]).to(flows)
        routed = convolve(flows, weights)
        outputs: TensorDict = {}
        for i, f in enumerate(names):
            outputs[f] = routed[..., i]
            outputs[f + config.unrouted_suffix] = forcings[f]
        if config.baseflow is not None and config.baseflow in outputs and config.streamflow in outputs:
            outputs["BFI"] = baseflow_index(outputs[config.baseflow], outputs[config.streamflow])
        return outputs, {}

    def extra_repr(self) -> str:
        return f"flows={self.config.flows}, length={self.config.length}"


# ------------------------------------------------------------------ hourly
UH_LENGTH_HOURS = 72
"""Length of the unit hydrograph of the hourly δHBV models (hours)."""

ROUTE_A_HOURLY = Parameter(
    "route_a", 0.0, 5.0, "", "gamma shape of the hourly unit hydrograph, minus 0.1", per_component=False
)
ROUTE_B_HOURLY = Parameter(
    "route_b", 0.0, 12.0, "h", "gamma scale of the hourly unit hydrograph, minus 0.5 hour", per_component=False
)


class HourlyGammaRoutingConfig(GammaRoutingConfig):
    """Options of :class:`HourlyGammaRouting`."""

    length: int = Field(UH_LENGTH_HOURS, ge=1, description="Length of the unit hydrograph (hours).")


class HourlyGammaRouting(GammaRouting):
    """The gamma unit hydrograph of the hourly δHBV models: in hours, 72 hours long.

    As :class:`GammaRouting` with lags in hours (``t_k = k + 0.5`` h), the scale ``θ`` in hours
    and wider bounds (``route_a`` up to 5, ``route_b`` up to 12 h).  A run shorter than
    ``length`` hours uses a unit hydrograph of its own length, normalised to sum to one, as
    published.  Flows are in mm per hour.

    Parameters
    ----------
    config
        A :class:`HourlyGammaRoutingConfig`, or a mapping of its options.
    **options
        Options as for :class:`GammaRouting`; ``length`` in hours (default 72).
    """

    Config = HourlyGammaRoutingConfig
    physical_parameters = (ROUTE_A_HOURLY, ROUTE_B_HOURLY)
    flow_unit = "mm/h"
    step_days = 1 / 24

    def weights(self, params: TensorDict, n_time: int) -> torch.Tensor:
        """The unit hydrograph over ``min(length, n_time)`` hours, normalised to sum to one."""
        length = min(self.config.length, n_time)
        return gamma_unit_hydrograph(params["route_a"], params["route_b"], length)
