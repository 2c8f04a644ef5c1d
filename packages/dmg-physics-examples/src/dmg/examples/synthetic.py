"""Deterministic synthetic data for every example model, with the parameters that made them.

Each generator draws synthetic units with attributes in ``[0, 1]``, derives the *true*
physical parameters of each unit as smooth functions of those attributes, draws forcings,
runs the model, and adds optional observation noise.  Because the true parameters are known,
the data show whether a differentiable model recovers them::

    from dmg.examples import synthetic

    data = synthetic.linear_reservoir_data(n_units=32, seed=0)
    batch = data.to_batch()              # a dmg.core.data.Batch
    data.true_params["k"]                # [unit, 1] (1/day)
    data.targets["Q"]                    # [time - warmup, unit] (mm/day)

The same ``seed`` gives bit-identical data.  Noise on a target has, per unit, a standard
deviation of ``noise`` times that unit's standard deviation of the noise-free series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmg.core import InputError, PhysicsModel
from dmg.core.data import Batch
from dmg.core.signature import SlotFiller
from dmg.examples.epidemiology import SIR
from dmg.examples.hydrology import LinearReservoir
from dmg.examples.light_response import LightResponse
from dmg.examples.soil_carbon import SoilCarbon

TensorDict = dict[str, torch.Tensor]
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class SyntheticData:
    """Synthetic inputs, targets and the true parameters behind them.

    Attributes
    ----------
    forcings
        Physics forcings, name -> ``[time, unit]``.
    static_inputs
        Unit attributes ``[unit, attribute]``, each in ``[0, 1]``: the inputs a network uses to
        predict parameters.
    attribute_names
        Names of the columns of ``static_inputs``.
    nn_inputs
        ``[time, unit, forcing + attribute]``: forcings standardised over the whole series,
        then the attributes repeated along time.
    targets
        Observations with noise, name -> ``[time - warmup, unit]``.
    clean_targets
        The same without noise.
    true_params
        Physical parameters that generated the targets, in the shapes the model takes
        (``[unit, 1]`` static, ``[time, unit, 1]`` dynamic).
    warmup
        Leading steps that targets exclude.
    noise
        Relative noise level used (see the module docstring).
    unit_ids
        Names of the units.
    """

    forcings: TensorDict
    static_inputs: torch.Tensor
    attribute_names: tuple[str, ...]
    nn_inputs: torch.Tensor
    targets: TensorDict
    clean_targets: TensorDict
    true_params: TensorDict
    warmup: int
    noise: float
    unit_ids: tuple[str, ...]

    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(self.static_inputs.shape[0])

    @property
    def n_time(self) -> int:
        """Number of steps including warm-up."""
        return int(next(iter(self.forcings.values())).shape[0])

    def batch_dict(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~dmg.core.data.Batch`: ``Batch(**data.batch_dict())``."""
        return {
            "forcings": dict(self.forcings),
            "nn_inputs": self.nn_inputs,
            "static_inputs": self.static_inputs,
            "targets": dict(self.targets),
            "warmup": self.warmup,
            "unit_ids": self.unit_ids,
        }

    def to_batch(self) -> Batch:
        """All units and steps as one :class:`~dmg.core.data.Batch`."""
        return Batch(**self.batch_dict())


# ------------------------------------------------------------------ generators
def linear_reservoir_data(
    n_units: int = 16,
    n_time: int = 455,
    *,
    warmup: int = 90,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    evaporation: SlotFiller | None = None,
) -> SyntheticData:
    """Daily rainfall-runoff data for :class:`~dmg.examples.LinearReservoir`; target ``Q`` (mm/day).

    Attributes ``wetness``, ``permeability``, ``vegetation`` set the climate and the parameters::

        k = 0.02 + 0.25 * permeability**2 + 0.03 * wetness          (1/day)
        c = 0.4 + 0.8 * vegetation * (0.5 + 0.5 * wetness)           (-)

    Rain falls on random days, more often and more heavily at wet units and in the wet
    season; PET follows the seasons, lower at wet units.

    Parameters
    ----------
    n_units, n_time
        Units and daily steps (including ``warmup``).
    warmup
        Leading steps excluded from the targets.
    noise
        Relative observation noise (see the module docstring).
    seed
        Seed of every random draw.
    dtype
        Floating dtype of the returned tensors.
    evaporation
        Optional process replacing the model's default evaporation when generating the
        targets (a function of ``{"S": ..., "PET": ...}``), e.g. to build a case where the
        default process is wrong.  ``true_params["c"]`` is then the value the default would use.
    """
    _check_sizes(n_units, n_time, warmup, noise)
    rng = np.random.default_rng(seed)
    names = ("wetness", "permeability", "vegetation")
    wet, perm, veg = rng.uniform(0.0, 1.0, (len(names), n_units))
    day = np.arange(n_time)[:, None]
    season = np.sin(2 * math.pi * (day - 30.0) / DAYS_PER_YEAR)  # rainy season peaks around day 120
    wet_day_prob = np.clip((0.2 + 0.3 * wet) * (1.0 + 0.5 * season), 0.02, 0.95)
    rain_on_wet_days = rng.exponential(1.0, (n_time, n_units)) * (4.0 + 8.0 * wet)
    precipitation = np.where(rng.uniform(size=(n_time, n_units)) < wet_day_prob, rain_on_wet_days, 0.0)
    pet_season = 3.0 + 2.0 * np.sin(2 * math.pi * (day - 100.0) / DAYS_PER_YEAR)
    pet = pet_season * (1.2 - 0.5 * wet)
    params = {
        "k": 0.02 + 0.25 * perm**2 + 0.03 * wet,
        "c": 0.4 + 0.8 * veg * (0.5 + 0.5 * wet),
    }
    model = LinearReservoir()
    forcings = {"P": precipitation, "PET": pet}
    return _assemble(
        model,
        forcings,
        np.stack([wet, perm, veg], -1),
        names,
        params,
        ("Q",),
        warmup,
        noise,
        rng,
        dtype,
        fillers={"evaporation": evaporation} if evaporation is not None else None,
    )


def sir_data(
    n_units: int = 16,
    n_time: int = 150,
    *,
    warmup: int = 0,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    initial_infected: float = 1e-3,
    seasonal_beta: float = 0.0,
) -> SyntheticData:
    """Epidemics in separate populations for :class:`~dmg.examples.SIR`; targets ``new_infections``, ``I``.

    Attributes ``density``, ``mobility``, ``care`` set the parameters::

        beta  = 0.2 + 0.35 * density * (0.5 + 0.5 * mobility)      (1/day)
        gamma = 0.08 + 0.1 * care                                   (1/day)

    Contact starts at normal mixing and drops (smoothly, over about a week) to between 0.5
    and 0.8 at a day between 30 and 60 that comes earlier at more mobile units; a weekly cycle
    of ±5 % is added.

    Parameters
    ----------
    n_units, n_time
        Populations and daily steps (including ``warmup``).
    warmup, noise, seed, dtype
        As for :func:`linear_reservoir_data`.
    initial_infected
        Infected fraction on day 0 (-).
    seasonal_beta
        If positive, ``beta`` is time-varying, ``beta * (1 + seasonal_beta * cos(2π t / 365))``,
        and ``true_params["beta"]`` is ``[time, unit, 1]``; build the model with ``dynamic=["beta"]``.
    """
    _check_sizes(n_units, n_time, warmup, noise)
    if not 0.0 <= seasonal_beta < 1.0:
        raise InputError(f"seasonal_beta must lie in [0, 1), got {seasonal_beta}")
    rng = np.random.default_rng(seed)
    names = ("density", "mobility", "care")
    density, mobility, care = rng.uniform(0.0, 1.0, (len(names), n_units))
    day = np.arange(n_time)[:, None]
    start = 60.0 - 30.0 * mobility
    reduced = 0.5 + 0.3 * rng.uniform(size=n_units)
    distancing = 1.0 / (1.0 + np.exp(-(day - start) / 2.0))
    weekly = 1.0 + 0.05 * np.sin(2 * math.pi * day / 7.0)
    contact = (1.0 - (1.0 - reduced) * distancing) * weekly
    beta = 0.2 + 0.35 * density * (0.5 + 0.5 * mobility)
    params: dict[str, np.ndarray] = {"gamma": 0.08 + 0.1 * care}
    dynamic: tuple[str, ...] = ()
    if seasonal_beta > 0:
        params["beta"] = beta * (1.0 + seasonal_beta * np.cos(2 * math.pi * day / DAYS_PER_YEAR))
        dynamic = ("beta",)
    else:
        params["beta"] = beta
    model = SIR(initial_infected=initial_infected, dynamic=dynamic)
    return _assemble(
        model,
        {"contact": contact},
        np.stack([density, mobility, care], -1),
        names,
        params,
        ("new_infections", "I"),
        warmup,
        noise,
        rng,
        dtype,
    )


def soil_carbon_data(
    n_units: int = 16,
    n_time: int = 1095,
    *,
    warmup: int = 365,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> SyntheticData:
    """Daily soil respiration for :class:`~dmg.examples.SoilCarbon`; target ``Rh`` (gC/m²/day).

    Attributes ``productivity``, ``climate`` (0 cold, 1 warm) and ``clay`` set the parameters::

        k_fast   = 0.004 + 0.012 * (1 - clay)                       (1/day)
        k_slow   = 1e-4 + 3e-4 * (1 - clay)**2                       (1/day)
        transfer = 0.15 + 0.35 * clay                                (-)
        Q10      = 1.6 + 1.2 * (1 - climate)                         (-)

    Litter falls mostly in autumn, ``0.5 + 2 * productivity`` gC/m²/day on average; soil
    temperature has a mean of ``20 * climate`` °C, a seasonal cycle and day-to-day noise.
    Pools start at the model's default initial values, not at equilibrium.
    """
    _check_sizes(n_units, n_time, warmup, noise)
    rng = np.random.default_rng(seed)
    names = ("productivity", "climate", "clay")
    productivity, climate, clay = rng.uniform(0.0, 1.0, (len(names), n_units))
    day = np.arange(n_time)[:, None]
    phase = 2 * math.pi * day / DAYS_PER_YEAR
    # exp(2 cos θ) peaks on day 290; its mean over a year is the Bessel function I0(2)
    autumn_pulse = np.exp(2.0 * np.cos(phase - 2 * math.pi * 290.0 / DAYS_PER_YEAR)) / np.i0(2.0)
    litter = (0.5 + 2.0 * productivity) * autumn_pulse
    temperature = 20.0 * climate - 10.0 * np.cos(phase - 2 * math.pi * 20.0 / DAYS_PER_YEAR)
    temperature = temperature + rng.normal(0.0, 1.5, (n_time, n_units))
    params = {
        "k_fast": 0.004 + 0.012 * (1.0 - clay),
        "k_slow": 1e-4 + 3e-4 * (1.0 - clay) ** 2,
        "transfer": 0.15 + 0.35 * clay,
        "Q10": 1.6 + 1.2 * (1.0 - climate),
    }
    return _assemble(
        SoilCarbon(),
        {"litter": litter, "T": temperature},
        np.stack([productivity, climate, clay], -1),
        names,
        params,
        ("Rh",),
        warmup,
        noise,
        rng,
        dtype,
    )


def light_response_data(
    n_units: int = 16,
    n_days: int = 10,
    *,
    steps_per_day: int = 48,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> SyntheticData:
    """Sub-daily carbon fluxes for :class:`~dmg.examples.LightResponse`; targets ``GPP``, ``NEE`` (µmol/m²/s).

    Attributes ``leaf_area``, ``nitrogen``, ``warmth`` set the parameters::

        alpha = 0.02 + 0.04 * leaf_area                             (µmol/µmol)
        Pmax  = 8 + 30 * nitrogen * (0.4 + 0.6 * leaf_area)          (µmol/m²/s)
        Reco  = 1 + 5 * warmth                                       (µmol/m²/s)

    PAR follows the sun from 6 h to 18 h, peaking at up to 2000 µmol/m²/s, dimmed by a
    random cloudiness per day and unit.  There is no warm-up (the model has no state).
    """
    _check_sizes(n_units, n_days * steps_per_day, 0, noise)
    rng = np.random.default_rng(seed)
    names = ("leaf_area", "nitrogen", "warmth")
    leaf_area, nitrogen, warmth = rng.uniform(0.0, 1.0, (len(names), n_units))
    hour = (np.arange(n_days * steps_per_day)[:, None] % steps_per_day) * 24.0 / steps_per_day
    sun = np.clip(np.sin(math.pi * (hour - 6.0) / 12.0), 0.0, None)
    clearness = np.repeat(rng.uniform(0.3, 1.0, (n_days, n_units)), steps_per_day, axis=0)
    par = 2000.0 * sun * clearness
    params = {
        "alpha": 0.02 + 0.04 * leaf_area,
        "Pmax": 8.0 + 30.0 * nitrogen * (0.4 + 0.6 * leaf_area),
        "Reco": 1.0 + 5.0 * warmth,
    }
    return _assemble(
        LightResponse(),
        {"PAR": par},
        np.stack([leaf_area, nitrogen, warmth], -1),
        names,
        params,
        ("GPP", "NEE"),
        0,
        noise,
        rng,
        dtype,
    )


# --------------------------------------------------------------------- helpers
def _check_sizes(n_units: int, n_time: int, warmup: int, noise: float) -> None:
    if n_units < 1:
        raise InputError(f"n_units must be >= 1, got {n_units}")
    if not 0 <= warmup < n_time:
        raise InputError(f"warmup must lie in [0, n_time) = [0, {n_time}), got {warmup}")
    if noise < 0:
        raise InputError(f"noise is a relative standard deviation and must be >= 0, got {noise}")


def _assemble(
    model: PhysicsModel,
    forcings: Mapping[str, np.ndarray],
    attributes: np.ndarray,
    attribute_names: tuple[str, ...],
    params: Mapping[str, np.ndarray],
    target_names: tuple[str, ...],
    warmup: int,
    noise: float,
    rng: np.random.Generator,
    dtype: torch.dtype,
    fillers: Mapping[str, SlotFiller] | None = None,
) -> SyntheticData:
    """Run ``model`` in float64 on the drawn inputs and package everything as :class:`SyntheticData`."""
    n_time, n_units = next(iter(forcings.values())).shape
    f64 = {
        k: torch.as_tensor(np.broadcast_to(v, (n_time, n_units)).copy(), dtype=torch.float64)
        for k, v in forcings.items()
    }
    true_params = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64)[..., None] for k, v in params.items()}
    with torch.no_grad():
        out = model(f64, true_params, warmup=warmup, processes=fillers)
    clean = {name: out[name] for name in target_names}
    noisy = {}
    for name, value in clean.items():
        spread = value.std(dim=0, keepdim=True)
        noisy[name] = value + noise * spread * torch.as_tensor(rng.standard_normal(tuple(value.shape)))
    stacked = torch.stack(list(f64.values()), dim=-1)
    mean = stacked.mean(dim=(0, 1))
    std = stacked.std(dim=(0, 1)).clamp_min(1e-12)
    static = torch.as_tensor(attributes, dtype=torch.float64)
    nn_inputs = torch.cat([(stacked - mean) / std, static.expand(n_time, *static.shape)], dim=-1)

    def cast(values: Mapping[str, torch.Tensor]) -> TensorDict:
        return {k: v.to(dtype) for k, v in values.items()}

    return SyntheticData(
        forcings=cast(f64),
        static_inputs=static.to(dtype),
        attribute_names=tuple(attribute_names),
        nn_inputs=nn_inputs.to(dtype),
        targets=cast(noisy),
        clean_targets=cast(clean),
        true_params=cast(true_params),
        warmup=warmup,
        noise=float(noise),
        unit_ids=tuple(f"unit_{i:03d}" for i in range(n_units)),
    )
