"""Read the hourly reference runs of the published δHBV implementation and set up the same runs here.

The hourly reference file (``hbv_hourly_reference_hydrodl2_<version>.npz``) holds, per case, the
physical and raw parameters the published hourly models used, their unit runoff ``Qs``, their
gauge streamflow and the full series of their states (layout in ``docs/hydrology/hourly.md``).
:func:`load_hourly_reference` turns each stand-alone case (``h2h_*``, ``h21h_*``) into an
:class:`HourlyReferenceCase`, which builds the matching dmg model (a :class:`~dmg.core.Chain` of the
hourly variant, the hourly unit hydrograph where the case routes units, and
:class:`~dmg.hydro.gauges.GaugeRouting`) over the case's (gauge, unit) pairs, with inputs in dmg
names and shapes::

    for case in load_hourly_reference(path).values():
        out = case.run()                  # {"Qs": [time, unit], "streamflow": [time, gauge]}
        ...                               # compare with case.outputs

Multi-timescale cases (``mts_*``) are not read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmg.core import Chain
from dmg.core.signature import NO_PROCESSES
from dmg.hydro.gauges import GaugeRouting, RoutingPairs
from dmg.hydro.hbv.base import HBVBase
from dmg.hydro.hbv.hourly import HBV2Hourly, HBV21Hourly
from dmg.hydro.hbv.reference import PUBLISHED_ATTRIBUTES, PUBLISHED_STATES, parameter_name, read_reference
from dmg.hydro.routing import HourlyGammaRouting

PUBLISHED_HOURLY_MODELS: dict[str, type[HBVBase]] = {"Hbv_2_hourly": HBV2Hourly, "Hbv_2_1_hourly": HBV21Hourly}
"""Published class names of the stand-alone hourly models -> dmg classes."""

PUBLISHED_HOURLY_STATES = {**PUBLISHED_STATES, "SIE1": "SIE1", "SIE2": "SIE2"}
"""Published state names -> dmg state names (with the cascade stores of 2.1 hourly)."""

GAUGE_PARAMETERS = {"route_a": "gauge_route_a", "route_b": "gauge_route_b", "route_tau": "gauge_route_tau"}
"""Published names of the per-pair routing parameters (``distr__*``) -> dmg names."""


@dataclass
class HourlyReferenceCase:
    """One stand-alone hourly reference run: configuration, inputs and published results in dmg names.

    Attributes
    ----------
    name
        Case name in the file.
    model_class
        The dmg class of the variant.
    options
        Constructor options of the variant (``nmul``, ``dynamic``).
    warmup
        Warm-up steps (hours), run inline.
    unit_routing
        Whether the unit runoff passes the hourly unit hydrograph before the gauges.
    pairs
        The (gauge, unit) pairs of the gauge network.
    forcings
        ``P``, ``PET`` (mm/h) and ``T`` (°C) per unit, ``[time, unit]``.
    attributes
        ``upstream_area``, ``elevation`` and ``area`` per unit, ``[unit]``.
    params
        Physical parameters per unit (static ``[unit, nmul]``, dynamic ``[time, unit, nmul]``;
        ``route_a``, ``route_b`` ``[unit]`` with unit routing).
    gauge_params
        ``gauge_route_a``, ``gauge_route_b``, ``gauge_route_tau`` per pair, ``[pair]``.
    raw
        The published parameter tensors in ``[0, 1]``: ``dynamic`` ``[time, unit, Cd]``,
        ``static`` ``[unit, Cs]`` and ``distr`` ``[pair, 3]``.
    outputs
        ``Qs`` (unit runoff, mm/h, ``[time - warmup, unit]``) and ``streamflow`` (mm/h,
        ``[time - warmup, gauge]``).
    states
        Every store after every hour, warm-up included, ``[time, unit, nmul]``, dmg names.
    diagnostics
        Published internal rates (mm/day), ``[time, unit, nmul]``, published names.
    """

    name: str
    model_class: type[HBVBase]
    options: dict[str, Any]
    warmup: int
    unit_routing: bool
    pairs: RoutingPairs
    forcings: dict[str, torch.Tensor]
    attributes: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    gauge_params: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    states: dict[str, torch.Tensor]
    diagnostics: dict[str, torch.Tensor]

    def runoff_model(self, **options: Any) -> HBVBase:
        """The hourly variant configured as the case."""
        return self.model_class(**{**self.options, **options})

    def model(self, **options: Any) -> Chain:
        """``Chain(runoff=<variant>, [unit_routing=HourlyGammaRouting(...)], gauges=GaugeRouting())``."""
        members: dict[str, Any] = {"runoff": self.runoff_model(**options)}
        if self.unit_routing:
            members["unit_routing"] = HourlyGammaRouting(flows=["Q"], streamflow=None, baseflow=None)
        members["gauges"] = GaugeRouting()
        return Chain(**members)

    def pair_inputs(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Forcings, physical parameters and attributes of the chain, one unit per (gauge, unit) pair."""
        pairs = self.pairs
        forcings = {k: pairs.to_pairs(v) for k, v in self.forcings.items()}
        params = {k: pairs.to_pairs(v, 1 if v.dim() == 3 else 0) for k, v in self.params.items()}
        params.update(self.gauge_params)
        attributes = {k: pairs.to_pairs(v, 0) for k, v in self.attributes.items() if k != "area"}
        attributes.update(pairs.attributes(self.attributes["area"]))
        return forcings, params, attributes

    def pair_raw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw ``(dynamic, static)`` tensors of the chain over pairs: a pair reads its unit's
        channels, then its own three gauge-routing channels at the end of the static part."""
        pairs = self.pairs
        dynamic = pairs.to_pairs(self.raw["dynamic"])
        static = torch.cat([pairs.to_pairs(self.raw["static"], 0), self.raw["distr"]], dim=-1)
        return dynamic, static

    def results(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``Qs`` per unit and ``streamflow`` per gauge from the chain's per-pair outputs."""
        return {"Qs": self.pairs.to_units(outputs["Q"]), "streamflow": self.pairs.to_gauges(outputs["streamflow"])}

    def run(self) -> dict[str, torch.Tensor]:
        """Run the case from its physical parameters (no gradient): ``Qs`` and ``streamflow``."""
        forcings, params, attributes = self.pair_inputs()
        with torch.no_grad():
            out = self.model()(forcings, params, attributes=attributes, warmup=self.warmup, save=("Q", "streamflow"))
        return self.results(out)

    def hour_by_hour(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The runoff model's step applied hour after hour from the initial stores (no gradient).

        Returns
        -------
        tuple[dict, dict]
            Every store after every hour (mm) and every flux of every hour (mm/h; ``SWE`` in mm,
            ``evapfactor`` dimensionless), per component: ``[time, unit, nmul]``, warm-up included.
        """
        model = self.runoff_model()
        attributes = {k: v.unsqueeze(-1) for k, v in self.attributes.items() if k in model.attribute_names}
        params = {k: v for k, v in self.params.items() if k in model.parameter_spec}
        n_time, n_units = next(iter(self.forcings.values())).shape
        state = model.initial_state(n_units)
        states: dict[str, list[torch.Tensor]] = {name: [] for name in model.state_names}
        fluxes: dict[str, list[torch.Tensor]] = {name: [] for name in model.output_names}
        with torch.no_grad():
            for t in range(n_time):
                forcing_t = {k: v[t].unsqueeze(-1) for k, v in self.forcings.items()}
                params_t = {k: v[t] if v.dim() == 3 else v for k, v in params.items()}
                state, flux = model.step(state, forcing_t, {**params_t, **attributes}, NO_PROCESSES)
                for name in model.state_names:
                    states[name].append(state[name])
                for name in model.output_names:
                    fluxes[name].append(flux[name].expand(n_units, model.nmul))
        return (
            {name: torch.stack(values) for name, values in states.items()},
            {name: torch.stack(values) for name, values in fluxes.items()},
        )


def load_hourly_reference(path: str | Path) -> dict[str, HourlyReferenceCase]:
    """Every stand-alone hourly case of a reference file, by name.

    Raises
    ------
    InputError
        If ``path`` does not exist (the message names it).
    """
    arrays, meta, forcings = read_reference(path)
    attributes = {dmg: torch.from_numpy(arrays[key]) for key, dmg in PUBLISHED_ATTRIBUTES.items()}
    attributes["area"] = torch.from_numpy(arrays["areas"])
    pairs = RoutingPairs.from_topology(torch.from_numpy(arrays["outlet_topo"]))
    return {
        name: _case(name, info, arrays, forcings, attributes, pairs)
        for name, info in meta["cases"].items()
        if info.get("kind") == "hourly"
    }


def _case(
    name: str,
    info: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    forcings: dict[str, torch.Tensor],
    attributes: dict[str, torch.Tensor],
    pairs: RoutingPairs,
) -> HourlyReferenceCase:
    def get(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f"{name}__{key}"])

    routing = bool(info["routing"])
    params = {parameter_name(p): get(f"par__{p}") for p in info["param_names"]}
    if routing:
        params.update(route_a=get("route_a"), route_b=get("route_b"))
    prefix = f"{name}__"
    states, diagnostics = {}, {}
    for key in arrays:
        if key.startswith(prefix + "state__"):
            states[PUBLISHED_HOURLY_STATES[key[len(prefix + "state__") :]]] = torch.from_numpy(arrays[key])
        elif key.startswith(prefix + "diag__"):
            diagnostics[key[len(prefix + "diag__") :]] = torch.from_numpy(arrays[key])
    return HourlyReferenceCase(
        name=name,
        model_class=PUBLISHED_HOURLY_MODELS[info["cls"]],
        options={"nmul": int(info["nmul"]), "dynamic": [parameter_name(p) for p in info["dynamic"]]},
        warmup=int(info["warmup"]),
        unit_routing=routing,
        pairs=pairs,
        forcings=forcings,
        attributes=attributes,
        params=params,
        gauge_params={dmg: get(f"distr__{published}") for published, dmg in GAUGE_PARAMETERS.items()},
        raw={"dynamic": get("raw_params_dyn"), "static": get("raw_params_static"), "distr": get("raw_params_distr")},
        outputs={"Qs": get("out__Qs").squeeze(-1), "streamflow": get("out__streamflow").squeeze(-1)},
        states=states,
        diagnostics=diagnostics,
    )
