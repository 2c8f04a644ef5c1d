"""The convention every registered component follows: a pydantic ``Config`` and ``from_config``.

A component class (physics model, network, dataset, loss, metric) has

* ``Config``: a subclass of :class:`ComponentConfig` (``extra="forbid"``) listing its options
  with defaults and descriptions — the source of ``dmg schema`` and of the docs;
* ``from_config(config, **context)``: a classmethod building an instance from a validated
  ``Config`` plus what only the run knows (e.g. a network's input and output sizes).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ComponentConfig(BaseModel):
    """Base of component config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class PhysicsConfig(ComponentConfig):
    """Options every :class:`~dmg.core.physics.PhysicsModel` takes."""

    nmul: int = Field(1, ge=1, description="Parallel components per unit, each with its own parameters.")
    dynamic: list[str] = Field(default_factory=list, description="Names of time-varying parameters.")
    warmup_mode: Literal["spinup", "inline"] = Field(
        "spinup",
        description="'spinup': gradient-free pass sets initial states; 'inline': one pass, warm-up outputs dropped.",
    )
    backend: str = Field("eager", description="Time-stepping engine backend ('eager', 'checkpoint', ...).")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="Options of the engine backend.")


class NetworkConfig(ComponentConfig):
    """Base of network config models; input and output sizes come from the run, not the config."""
