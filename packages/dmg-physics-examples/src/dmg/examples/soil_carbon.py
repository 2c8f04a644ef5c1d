"""Two-pool soil carbon: fast and slow organic matter decomposing at temperature-dependent rates.

Litter enters the fast pool; decomposition of the fast pool sends a fraction ``transfer`` to the
slow pool and respires the rest; decomposition of the slow pool is all respired.  Each day::

    f        = temperature_response(T)         default: Q10 ** ((T - T_ref) / 10)
    D_fast   = C_fast * (1 - exp(-k_fast * f))
    D_slow   = C_slow * (1 - exp(-k_slow * f))
    C_fast  <- C_fast + litter - D_fast
    C_slow  <- C_slow + transfer * D_fast - D_slow
    Rh       = (1 - transfer) * D_fast + D_slow

``1 - exp(-rate)`` is the exact daily loss of first-order decay at a constant rate, so pools stay
non-negative.  Carbon is conserved: ``sum(litter) - sum(Rh) = ΔC_fast + ΔC_slow``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from pydantic import Field

from dmg.core import MassBalance, Parameter, Processes, ProcessSlot, State, StepModel, Variable
from dmg.core.components import PhysicsConfig
from dmg.core.signature import TensorDict


class SoilCarbonConfig(PhysicsConfig):
    """Options of :class:`SoilCarbon`."""

    reference_temperature: float = Field(
        15.0, description="Temperature at which decay rates equal k_fast, k_slow (°C)."
    )
    initial_fast: float = Field(300.0, ge=0.0, description="Fast pool at the start of a simulation (gC/m²).")
    initial_slow: float = Field(3000.0, ge=0.0, description="Slow pool at the start of a simulation (gC/m²).")


class SoilCarbon(StepModel):
    """Fast and slow soil carbon pools with Q10 temperature dependence, daily step.

    Forcings
        ``litter`` litter input (gC/m²/day), ``T`` soil temperature (°C).
    Parameters
        ``k_fast`` and ``k_slow`` decay rates at the reference temperature (1/day), ``transfer``
        fraction of fast-pool decomposition moved to the slow pool (-), ``Q10`` factor by which
        decay rates rise per 10 °C warming (-).
    States
        ``C_fast``, ``C_slow`` carbon stored (gC/m²).
    Outputs
        ``Rh`` heterotrophic respiration (gC/m²/day).
    Process slot
        ``"temperature_response"``: rate modifier (-) from input ``(T,)``, non-negative.
    Mass balance
        ``sum(litter) - sum(Rh) = ΔC_fast + ΔC_slow``.

    Parameters
    ----------
    config
        A :class:`SoilCarbonConfig` (or a mapping of its options); alternatively give the options as
        keywords.
    **options
        Options of :class:`SoilCarbonConfig`: ``reference_temperature``, at which the decay rates
        equal ``k_fast`` and ``k_slow`` (°C, default 15); ``initial_fast`` and ``initial_slow``, the
        pools at the start of a simulation (gC/m², >= 0, default 300 and 3000); and those of every
        physics model (``nmul``, ``dynamic``, ``warmup_mode``).

    Raises
    ------
    dmg.core.ConfigError
        For an unknown option or a negative initial pool.
    """

    Config = SoilCarbonConfig

    forcings = (
        Variable("litter", "gC/m²/day", "litter input to the fast pool", (0.0, 3.0)),
        Variable("T", "°C", "soil temperature", (-5.0, 30.0)),
    )
    physical_parameters = (
        Parameter("k_fast", 1e-3, 3e-2, "1/day", "decay rate of the fast pool at the reference temperature"),
        Parameter("k_slow", 1e-5, 1e-3, "1/day", "decay rate of the slow pool at the reference temperature"),
        Parameter("transfer", 0.05, 0.6, "", "fraction of fast-pool decomposition moved to the slow pool"),
        Parameter("Q10", 1.2, 4.0, "", "factor by which decay rates rise per 10 °C warming"),
    )
    states = (
        State("C_fast", "gC/m²", "fast soil carbon pool", (0.0, 2000.0), initial=300.0),
        State("C_slow", "gC/m²", "slow soil carbon pool", (0.0, 20000.0), initial=3000.0),
    )
    outputs = (Variable("Rh", "gC/m²/day", "heterotrophic respiration", (0.0, 10.0)),)
    slots = (
        ProcessSlot(
            "temperature_response",
            ("T",),
            "",
            low=0.0,
            description="multiplier of both decay rates at soil temperature T",
        ),
    )
    mass_balance = MassBalance(inputs=("litter",), outputs=("Rh",), storages=("C_fast", "C_slow"))

    def __init__(self, config: SoilCarbonConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        config = self.validate_config(config, options)
        fast, slow = type(self).states
        super().__init__(
            config, states=(replace(fast, initial=config.initial_fast), replace(slow, initial=config.initial_slow))
        )

    def q10_response(self, temperature: torch.Tensor, q10: torch.Tensor | float) -> torch.Tensor:
        """``Q10 ** ((T - T_ref) / 10)`` (-): 1 at the reference temperature ``T_ref`` of the config.

        Parameters
        ----------
        temperature
            Soil temperature ``T`` (°C).
        q10
            Factor by which decay rates rise per 10 °C warming (-).
        """
        return torch.pow(q10, (temperature - self.config.reference_temperature) / 10.0)

    def step(
        self, state: TensorDict, forcing_t: TensorDict, params_t: TensorDict, processes: Processes
    ) -> tuple[TensorDict, TensorDict]:
        """One day of litter input, decomposition, transfer and respiration.

        Parameters
        ----------
        state
            ``C_fast``, ``C_slow`` (gC/m²), ``[unit, nmul]``.
        forcing_t
            ``litter`` (gC/m²/day) and ``T`` (°C) of this day, ``[unit, 1]``.
        params_t
            ``k_fast``, ``k_slow`` (1/day), ``transfer`` and ``Q10`` (-), ``[unit, nmul]``.
        processes
            Fillers of the slot ``"temperature_response"`` (given ``T``).

        Returns
        -------
        tuple of dict
            The new pools (gC/m²) and this day's ``Rh`` (gC/m²/day).
        """
        fast, slow = state["C_fast"], state["C_slow"]
        temperature = forcing_t["T"]
        modifier = processes.compute(
            "temperature_response", lambda: self.q10_response(temperature, params_t["Q10"]), T=temperature
        )
        decay_fast = -fast * torch.expm1(-params_t["k_fast"] * modifier)
        decay_slow = -slow * torch.expm1(-params_t["k_slow"] * modifier)
        moved = params_t["transfer"] * decay_fast
        respiration = decay_fast - moved + decay_slow
        new_state = {"C_fast": fast + forcing_t["litter"] - decay_fast, "C_slow": slow + moved - decay_slow}
        return new_state, {"Rh": respiration}

    def steady_state(
        self, litter: torch.Tensor, params: dict[str, torch.Tensor], modifier: torch.Tensor | float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Pools (gC/m²) at which constant ``litter`` (gC/m²/day) and rate ``modifier`` (-) balance decay.

        Solves ``litter = D_fast`` and ``transfer * D_fast = D_slow`` for the daily step, so a run
        started from these pools with constant forcing stays there.

        Parameters
        ----------
        litter
            Constant litter input (gC/m²/day), broadcastable against the parameters.
        params
            Physical parameters ``k_fast``, ``k_slow``, ``transfer`` (static shapes).
        modifier
            Constant temperature response (-), e.g. :meth:`q10_response` of the mean temperature.
        """
        loss_fast = -torch.expm1(-params["k_fast"] * modifier)
        loss_slow = -torch.expm1(-params["k_slow"] * modifier)
        fast = litter / loss_fast
        return {"C_fast": fast, "C_slow": params["transfer"] * litter / loss_slow}
