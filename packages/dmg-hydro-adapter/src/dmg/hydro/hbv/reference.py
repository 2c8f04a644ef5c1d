"""Read reference runs of the published δHBV implementation and set up the same runs here.

The reference file (``hbv_reference_hydrodl2_<version>.npz``) holds, per case, the forcing,
the raw network-like parameters, the physical parameters the published code used, its
outputs and its final states (layout in ``docs/hydrology/hbv.md``).  :func:`load_reference`
turns each case into a :class:`ReferenceCase` that builds the matching dmg model
(``Chain(runoff=<variant>, routing=GammaRouting())``) and its inputs, with outputs and states
renamed to dmg names, so a parity check is a few lines::

    for case in load_reference(path).values():
        out = case.run()
        for name, expected in case.outputs.items():
            ...  # compare out[name] with expected
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmg.core import Chain, InputError
from dmg.core.physics import Outputs
from dmg.hydro.hbv.models import HBV, HBV2, HBV11p
from dmg.hydro.routing import GammaRouting

PUBLISHED_MODELS = {"Hbv": HBV, "Hbv_1_1p": HBV11p, "Hbv_2": HBV2}
"""Published class names -> dmg classes."""

PUBLISHED_OUTPUTS = {
    "streamflow": "Q",
    "srflow": "Q0",
    "ssflow": "Q1",
    "gwflow": "Q2",
    "streamflow_no_rout": "Q_unrouted",
    "srflow_no_rout": "Q0_unrouted",
    "ssflow_no_rout": "Q1_unrouted",
    "gwflow_no_rout": "Q2_unrouted",
    "AET_hydro": "AET",
    "PET_hydro": "PET",
    "SWE": "SWE",
    "recharge": "recharge",
    "excs": "excess",
    "evapfactor": "evapfactor",
    "tosoil": "tosoil",
    "percolation": "percolation",
    "capillary": "capillary",
    "BFI": "BFI",
}
"""Published output names -> dmg names in ``Chain(runoff=..., routing=GammaRouting())``."""

PUBLISHED_STATES = {"SNOWPACK": "SP", "MELTWATER": "MW", "SM": "SM", "SUZ": "SUZ", "SLZ": "SLZ"}
"""Published state names -> dmg state names."""

PUBLISHED_FORCINGS = {"prcp": "P", "tmean": "T", "pet": "PET"}
PUBLISHED_ATTRIBUTES = {"ac_all": "upstream_area", "elev_all": "elevation"}


def parameter_name(published: str) -> str:
    """dmg name of a published parameter name (``"parBETA"`` -> ``"BETA"``)."""
    return published[3:] if published.startswith("par") else published


def worst_ratio(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-5, abs_: float = 1e-6) -> float:
    """Largest deviation from a reference series divided by the allowed one; parity holds when <= 1.

    Parameters
    ----------
    ours, ref
        Our series and the published one, of the same shape.
    rel, abs_
        The allowed deviation, ``rel * max|ref| + abs_`` (by default the parity tolerance of
        ``docs/hydrology/hbv.md``).

    Returns
    -------
    float
        ``max|ours - ref| / (rel * max|ref| + abs_)``, computed in float64.

    Raises
    ------
    AssertionError
        If the shapes differ (the message gives both).
    """
    if ours.shape != ref.shape:
        raise AssertionError(f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}")
    allowed = rel * float(ref.abs().max()) + abs_
    return float((ours.double() - ref.double()).abs().max()) / allowed


class FixedOutput(torch.nn.Module):
    """A stand-in network that returns given raw parameters, e.g. those of a reference case.

    Parameters
    ----------
    output
        What :meth:`forward` returns whatever its input: a tensor, or the ``(dynamic, static)``
        pair of a model with static parameters.
    """

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output

    def forward(self, x: torch.Tensor) -> Any:
        """The given raw parameters (``x`` is ignored)."""
        return self.output


@dataclass
class ReferenceCase:
    """One reference run: configuration, inputs, and the published outputs in dmg names.

    Attributes
    ----------
    name
        Case name in the file.
    model_class
        The dmg class of the variant.
    options
        Constructor options of the variant (``nmul``, ``dynamic``, ``warmup_mode``).
    warmup
        Warm-up steps.
    forcings
        ``P``, ``T``, ``PET`` as ``[time, unit]``.
    attributes
        ``upstream_area`` and ``elevation`` ``[unit]`` (used by δHBV 2.0).
    params, warmup_params
        Physical parameters the published run used, in dmg names and shapes
        (``warmup_params``: those of the spin-up pass, or ``None``).
    raw
        The raw parameter tensors: ``{"raw": [T, B, C]}`` or, for δHBV 2.0,
        ``{"dynamic": [T, B, Cd], "static": [B, Cs]}``.
    outputs, states
        Published outputs (``[time, unit]`` or ``[unit]``) and final states ``[unit, nmul]``, dmg names.
    """

    name: str
    model_class: type
    options: dict[str, Any]
    warmup: int
    forcings: dict[str, torch.Tensor]
    attributes: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    warmup_params: dict[str, torch.Tensor] | None
    raw: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    states: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def warmup_mode(self) -> str:
        """``spinup`` or ``inline``."""
        return self.options.get("warmup_mode", "inline")

    def model(self, **options: Any) -> Chain:
        """``Chain(runoff=<variant>, routing=GammaRouting())`` configured as the case."""
        return Chain(runoff=self.model_class(**{**self.options, **options}), routing=GammaRouting())

    def run(self, model: Chain | None = None) -> Outputs:
        """Run the case from its physical parameters (no gradient)."""
        model = model or self.model()
        with torch.no_grad():
            return model(
                self.forcings,
                self.params,
                attributes=self.attributes,
                warmup=self.warmup,
                warmup_params=self.warmup_params,
            )


def load_reference(path: str | Path) -> dict[str, ReferenceCase]:
    """Every case of a reference file, by name.

    Raises
    ------
    InputError
        If ``path`` does not exist (the message names it).
    """
    arrays, meta, forcings = read_reference(path)
    attributes = {dmg: torch.from_numpy(arrays[key]) for key, dmg in PUBLISHED_ATTRIBUTES.items() if key in arrays}
    return {name: _case(name, info, arrays, forcings, attributes) for name, info in meta["cases"].items()}


def read_reference(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, torch.Tensor]]:
    """The arrays, the metadata and the forcings (in dmg names) of a reference file.

    Parameters
    ----------
    path
        A reference file (``.npz``) of the published implementation, daily or hourly.

    Returns
    -------
    tuple
        Every array of the file by key, its metadata (``meta_json``) and the forcings of
        ``x_phy`` by dmg name, each ``[time, unit]``.

    Raises
    ------
    InputError
        If ``path`` does not exist (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"reference file {path} does not exist")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta_json"]))
    x = torch.from_numpy(arrays["x_phy"])
    variables = meta.get("variables", list(PUBLISHED_FORCINGS))
    forcings = {PUBLISHED_FORCINGS[v]: x[..., i] for i, v in enumerate(variables)}
    return arrays, meta, forcings


def _case(
    name: str,
    info: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    forcings: dict[str, torch.Tensor],
    attributes: dict[str, torch.Tensor],
) -> ReferenceCase:
    config = info["config"]
    cls = PUBLISHED_MODELS[info["cls"]]
    dynamic = [parameter_name(n) for n in info["dynamic"]]
    warmup = int(config["warmup"])
    options: dict[str, Any] = {"nmul": int(config["nmul"]), "dynamic": dynamic}
    if cls is not HBV2:
        options["warmup_mode"] = "spinup" if config["warmup_states"] else "inline"
    if cls is HBV2 and "elev_threshold" in config:
        options["elevation_threshold"] = bool(config["elev_threshold"])

    def get(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f"{name}__{key}"])

    params: dict[str, torch.Tensor] = {}
    spin: dict[str, torch.Tensor] = {}
    for published in info["param_names"]:
        pname = parameter_name(published)
        value = get(f"par__{published}")
        warm_key = f"{name}__wpar__{published}"
        warm = torch.from_numpy(arrays[warm_key]) if warm_key in arrays else None
        if value.dim() == 2:  # already one static value per unit and component
            params[pname] = value
        elif pname in dynamic:  # the main pass's series, preceded by the warm-up series
            params[pname] = value if warm is None else torch.cat([warm, value])
            if warm is not None:
                spin[pname] = params[pname]
        else:  # a static value repeated over time
            params[pname] = value[-1]
            if warm is not None:
                spin[pname] = warm[-1]
    for key in ("route_a", "route_b"):
        params[key] = get(key)
    warmup_params = None
    if spin:
        warmup_params = {**params, **spin}
    raw = (
        {"raw": get("raw_params")}
        if f"{name}__raw_params" in arrays
        else {"dynamic": get("raw_params_dyn"), "static": get("raw_params_static")}
    )
    outputs: dict[str, torch.Tensor] = {}
    states: dict[str, torch.Tensor] = {}
    prefix = f"{name}__"
    for key in arrays:
        if not key.startswith(prefix):
            continue
        field_name = key[len(prefix) :]
        value = torch.from_numpy(arrays[key])
        if field_name.startswith("out__"):
            published = field_name[len("out__") :]
            outputs[PUBLISHED_OUTPUTS[published]] = value.squeeze(-1) if value.dim() == 3 else value
        elif field_name.startswith("state__"):
            published = field_name[len("state__") :]
            states[PUBLISHED_STATES[published]] = value[-1] if value.dim() == 3 else value
    return ReferenceCase(
        name=name,
        model_class=cls,
        options=options,
        warmup=warmup,
        forcings=forcings,
        attributes=attributes if cls is HBV2 else {},
        params=params,
        warmup_params=warmup_params,
        raw=raw,
        outputs=outputs,
        states=states,
        meta=dict(info),
    )
