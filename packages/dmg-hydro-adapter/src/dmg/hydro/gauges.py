"""Routing of unit runoff to gauges, one (gauge, unit) pair at a time, with lag and area weighting.

A gauge collects the runoff of every unit draining to it (``outlet_topo[gauge, unit] = 1``).
Each (gauge, unit) pair ``p`` has its own gamma unit hydrograph (shape ``a_p = relu(route_a) + 0.1``,
scale ``θ_p = relu(route_b) + 0.5`` h, ``L = min(T, 72)`` hourly lags ``t_k = k + 0.5``, normalised
to one) delayed by a lag ``τ_p = k_p + f_p`` hours (``k`` whole hours, ``f`` the fraction) on the same
``L`` lags::

    v_j = (1 - f_p) w_(j - k_p) + f_p w_(j - k_p - 1)          (terms outside 0..L-1 are zero)
    contribution_p(t) = area_u / gauge_area_g * Σ_j v_j Qs_u(t - j)
    streamflow_g(t) = Σ_(p in g) contribution_p(t)              (mm/h over the gauge's area)

The delayed hydrograph is not renormalised, as published: the weight pushed past lag ``L - 1``
is lost, reported as ``lag_loss``.

:class:`GaugeRouting` works on pairs as its units (one pair per (gauge, unit) connection): every
input it reads is a per-pair value, so pairs can be batched like units.  The helpers below set a
run up from the published inputs (``areas`` and ``outlet_topo``)::

    pairs = RoutingPairs.from_topology(outlet_topo)
    attributes = pairs.attributes(areas)            # area and gauge_area per pair
    q_pairs = pairs.to_pairs(q_units)               # [time, unit] -> [time, pair]
    out = GaugeRouting()({"Q": q_pairs}, params, attributes=attributes)
    streamflow = pairs.to_gauges(out["streamflow"])  # [time, gauge]

Composed with a runoff model, the whole :class:`~dmg.core.Chain` runs over pairs (a unit draining
to several gauges is simulated once per pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, field_validator

from dmg.core import InputError, Parameter, SeriesModel, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.signature import NO_PROCESSES, Processes, TensorDict
from dmg.hydro.routing import UH_LENGTH_HOURS, convolve, gamma_unit_hydrograph

MAX_LAG_HOURS = 48.0
"""Largest lag of a pair's unit hydrograph (hours)."""
SMALLEST_GAUGE_AREA = 1e-6
"""Floor of a gauge's drainage area in the area weighting (km²)."""

GAUGE_ROUTE_A = Parameter(
    "gauge_route_a", 0.0, 5.0, "", "gamma shape of a pair's unit hydrograph, minus 0.1", per_component=False
)
GAUGE_ROUTE_B = Parameter(
    "gauge_route_b", 0.0, 12.0, "h", "gamma scale of a pair's unit hydrograph, minus 0.5 hour", per_component=False
)
GAUGE_ROUTE_TAU = Parameter(
    "gauge_route_tau", 0.0, MAX_LAG_HOURS, "h", "lag of a pair's unit hydrograph", per_component=False
)

AREA = Variable("area", "km²", "area of the pair's unit (its own catchment, not upstream)", (10.0, 1000.0))
GAUGE_AREA = Variable("gauge_area", "km²", "total area of the units draining to the pair's gauge", (10.0, 10000.0))


def delayed_unit_hydrograph(weights: torch.Tensor, lag: torch.Tensor) -> torch.Tensor:
    """A unit hydrograph ``[pair, L]`` delayed by ``lag`` ``[pair]`` steps on the same ``L`` lags.

    ``v_j = (1 - f) w_(j - k) + f w_(j - k - 1)`` with ``k = floor(lag)`` and ``f = lag - k``;
    weights shifted past lag ``L - 1`` are dropped (the result sums to at most one).  The
    gradient with respect to ``lag`` flows through ``f``.
    """
    n_lags = weights.shape[-1]
    whole = torch.floor(lag).detach()
    fraction = (lag - whole).unsqueeze(-1)
    # w_(i) for i = -1 .. L-1 at positions 0 .. L; positions below 0 read the zero in front
    padded = torch.nn.functional.pad(weights, (1, 0))
    source = torch.arange(n_lags, device=weights.device) - whole.long().unsqueeze(-1)  # j - k

    def at(index: torch.Tensor) -> torch.Tensor:
        return padded.gather(-1, (index + 1).clamp_min(0))

    return (1.0 - fraction) * at(source) + fraction * at(source - 1)


class GaugeRoutingConfig(PhysicsConfig):
    """Options of :class:`GaugeRouting`."""

    flow: str = Field("Q", description="Name of the unit runoff to route (mm per step, e.g. mm/h).")
    output: str = Field("streamflow", description="Name of the routed contribution at the gauge.")
    length: int = Field(UH_LENGTH_HOURS, ge=1, description="Length of the unit hydrographs (steps, hours).")

    @field_validator("dynamic")
    @classmethod
    def _static(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError(f"gauge-routing parameters are static, got time-varying {value}")
        return value


class GaugeRouting(SeriesModel):
    """Routing of unit runoff to gauges with a delayed gamma unit hydrograph per (gauge, unit) pair.

    Its units are the pairs (see the module docstring): forcing ``flow`` is the runoff of the
    pair's unit (mm/h), attributes ``area`` and ``gauge_area`` (km²) weight it, and the
    parameters ``gauge_route_a``, ``gauge_route_b`` and ``gauge_route_tau`` (h) are one value per
    pair.  Outputs are the pair's contribution to its gauge's streamflow (``output``, mm/h over
    the gauge's area; :meth:`RoutingPairs.to_gauges` sums them per gauge) and ``lag_loss``, the
    part of the runoff the delayed hydrograph drops (mm/h over the gauge's area).

    The routing keeps no state; with inline warm-up (the default) it routes the whole series,
    warm-up included, before the warm-up steps are dropped. Run step by step
    (:mod:`dmg.core.stepping`), it is given the last ``length - 1`` runoff values of each pair with
    each step (:attr:`stream_memory`); while the run is shorter than ``length`` its unit hydrograph
    is cut to the run, as in a window run of that length.

    Parameters
    ----------
    config
        A :class:`GaugeRoutingConfig`, or a mapping of its options.
    **options
        Options of :class:`GaugeRoutingConfig` as keywords: ``flow``, ``output``, ``length``
        (hours), ``warmup_mode``; ``dynamic`` must stay empty.
    """

    Config = GaugeRoutingConfig
    physical_parameters = (GAUGE_ROUTE_A, GAUGE_ROUTE_B, GAUGE_ROUTE_TAU)
    attributes = (AREA, GAUGE_AREA)
    warmup_modes = ("inline", "spinup")

    def __init__(self, config: GaugeRoutingConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        super().__init__(
            config,
            forcings=(Variable(config.flow, "mm/h", "runoff of the pair's unit", (0.0, 1.0)),),
            outputs=(
                Variable(config.output, "mm/h", "the pair's contribution to its gauge's streamflow", (0.0, 1.0)),
                Variable("lag_loss", "mm/h", "runoff the delayed unit hydrograph drops, over the gauge", (0.0, 1.0)),
            ),
        )

    @property
    def stream_memory(self) -> int:
        """Past steps of the runoff a routed value depends on (``length - 1``): the buffer a model run step by
        step carries (:mod:`dmg.core.stepping`)."""
        return self.config.length - 1

    def unit_hydrograph(self, params: TensorDict, n_time: int) -> torch.Tensor:
        """Delayed weights ``[pair, min(length, n_time)]`` from the physical parameters ``[pair]``."""
        length = min(self.config.length, n_time)
        weights = gamma_unit_hydrograph(params["gauge_route_a"], params["gauge_route_b"], length)
        return delayed_unit_hydrograph(weights, params["gauge_route_tau"])

    def simulate(
        self,
        forcings: TensorDict,
        params: TensorDict,
        attributes: TensorDict,
        state: TensorDict,
        processes: Processes = NO_PROCESSES,
        save: frozenset[str] | None = None,
    ) -> tuple[TensorDict, TensorDict]:
        """Route each pair's runoff over the whole series; routing keeps no state.

        Parameters
        ----------
        forcings
            ``flow``: runoff of the pair's unit (mm/h), ``[time, pair]``.
        params
            ``gauge_route_a``, ``gauge_route_b``, ``gauge_route_tau`` (h), ``[pair]`` each.
        attributes
            ``area`` and ``gauge_area`` (km²), ``[pair]`` each.
        state, processes, save
            Unused: no state, no process slot; both outputs are cheap.

        Returns
        -------
        tuple[dict, dict]
            The contribution to the gauge and ``lag_loss`` (mm/h, ``[time, pair]``), and an empty state.
        """
        runoff = forcings[self.config.flow]
        share = attributes["area"] / attributes["gauge_area"].clamp_min(SMALLEST_GAUGE_AREA)
        weights = self.unit_hydrograph(params, runoff.shape[0]).to(runoff)
        routed = convolve((share * runoff).unsqueeze(-1), weights).squeeze(-1)
        lost = (1.0 - weights.sum(-1)) * share * runoff
        return {self.config.output: routed, "lag_loss": lost}, {}

    def extra_repr(self) -> str:
        return f"flow={self.config.flow!r}, length={self.config.length}"


@dataclass(frozen=True)
class RoutingPairs:
    """The (gauge, unit) pairs of a gauge network, in the published order (gauge by gauge, units ascending).

    Attributes
    ----------
    gauge, unit
        Gauge and unit index of every pair, ``[pair]`` (long).
    n_gauges, n_units
        Size of the network.
    """

    gauge: torch.Tensor
    unit: torch.Tensor
    n_gauges: int
    n_units: int

    @classmethod
    def from_topology(cls, outlet_topo: torch.Tensor) -> RoutingPairs:
        """Pairs of a ``[gauge, unit]`` 0/1 matrix (1 where the unit drains to the gauge)."""
        gauge, unit = torch.nonzero(outlet_topo != 0, as_tuple=True)
        return cls(gauge=gauge, unit=unit, n_gauges=int(outlet_topo.shape[0]), n_units=int(outlet_topo.shape[1]))

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return int(self.gauge.numel())

    def attributes(self, areas: torch.Tensor) -> dict[str, torch.Tensor]:
        """``area`` and ``gauge_area`` (km²) of every pair from the units' own areas ``[unit]``."""
        gauge_area = torch.zeros(self.n_gauges, dtype=areas.dtype, device=areas.device)
        gauge_area = gauge_area.index_add(0, self.gauge.to(areas.device), areas[self.unit])
        return {"area": areas[self.unit], "gauge_area": gauge_area[self.gauge]}

    def to_pairs(self, values: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Per-unit ``values`` repeated for every pair of their unit, along dimension ``dim``."""
        return values.index_select(dim, self.unit.to(values.device))

    def first_pairs(self) -> torch.Tensor:
        """Index of the first pair of every unit ``[unit]`` (every unit must drain to some gauge)."""
        first = torch.full((self.n_units,), -1, dtype=torch.long)
        for p in reversed(range(self.n_pairs)):
            first[self.unit[p]] = p
        if bool((first < 0).any()):
            missing = [int(u) for u in torch.nonzero(first < 0).flatten()]
            raise InputError(f"units {missing} drain to no gauge")
        return first

    def to_units(self, values: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Per-pair ``values`` of a unit-level quantity back per unit (from each unit's first pair)."""
        return values.index_select(dim, self.first_pairs().to(values.device))

    def to_gauges(self, contributions: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Per-pair contributions summed per gauge along dimension ``dim`` (``[..., pair]`` -> ``[..., gauge]``)."""
        shape = list(contributions.shape)
        shape[dim] = self.n_gauges
        out = torch.zeros(shape, dtype=contributions.dtype, device=contributions.device)
        return out.index_add(dim, self.gauge.to(contributions.device), contributions)
