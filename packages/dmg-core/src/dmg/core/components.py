"""The convention every registered component follows: its pydantic ``Config`` is the only source of its options.

A component class (physics model, network, coupling, engine backend, dataset, loss) has

* ``Config``: a subclass of :class:`ComponentConfig` (``extra="forbid"``) listing every option with
  its default, bounds and description — the source of ``dmg schema``, of the docs and of validation;
* ``__init__(config=None, /, *, <context>, **options)``: takes either a ``Config`` instance or its
  options as keywords (validated by ``Config``, errors naming the key), plus what only the caller
  knows (a network's sizes, a composite's members) as keyword *context*;
* ``from_config(config, **context)``: builds an instance from a validated ``Config``.

:class:`Component` implements the last two once; a component keeps its validated options in
``self.config`` and reads them from there, so no option is listed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dmg.core.errors import ConfigError


class ComponentConfig(BaseModel):
    """Base of component config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def validate_options(
    config_class: type[ComponentConfig], config: BaseModel | Mapping[str, Any] | None, who: str
) -> Any:
    """``config`` (an instance, a mapping of options or ``None``) as an instance of ``config_class``.

    Raises :class:`~dmg.core.errors.ConfigError` naming ``who``, each key at fault and, for an
    unknown key, the closest valid one.
    """
    if config is None:
        config = {}
    if isinstance(config, config_class):
        return config
    if isinstance(config, BaseModel):
        if not issubclass(config_class, type(config)):  # a base class's options extend fine; others do not
            raise ConfigError(f"{who} takes a {config_class.__name__}, got a {type(config).__name__}")
        config = config.model_dump()
    try:
        return config_class.model_validate(dict(config))
    except ValidationError as exc:
        from dmg.core.config import config_error  # the config layer sits above the components

        raise config_error(exc, config_class, where=f" of {who}") from None


class Component:
    """Mixin implementing the component convention (see the module docstring).

    Subclasses set ``Config`` and, in ``__init__``, call :meth:`validate_config` first::

        class Scale(Component, nn.Module):
            class Config(ComponentConfig):
                factor: float = Field(1.0, description="Multiplier.")

            def __init__(self, config=None, /, **options):
                nn.Module.__init__(self)
                self.config = self.validate_config(config, options)
    """

    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    config: Any

    @classmethod
    def validate_config(
        cls, config: BaseModel | Mapping[str, Any] | None = None, options: Mapping[str, Any] = ()
    ) -> Any:
        """One validated ``Config`` from an instance or mapping ``config`` and/or keyword ``options``."""
        options = dict(options)
        if config is not None and not isinstance(config, (BaseModel, Mapping)):
            raise ConfigError(
                f"{cls.__name__} takes its options as keywords (or one {cls.Config.__name__}), "
                f"got a positional {type(config).__name__} {config!r}"
            )
        if config is not None and options:
            if isinstance(config, BaseModel) and not issubclass(cls.Config, type(config)):
                raise ConfigError(f"{cls.__name__} takes a {cls.Config.__name__}, got a {type(config).__name__}")
            base = config.model_dump() if isinstance(config, BaseModel) else dict(config)
            config = {**base, **options}
        elif config is None:
            config = options
        return validate_options(cls.Config, config, cls.__name__)

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any] | None = None, **context: Any) -> Any:
        """Build an instance from its ``Config`` (or a mapping of options) and the caller's ``context``."""
        return cls(cls.validate_config(config), **context)


class PhysicsConfig(ComponentConfig):
    """Options every :class:`~dmg.core.physics.PhysicsModel` takes."""

    nmul: int = Field(1, ge=1, description="Parallel components per unit, each with its own parameters.")
    dynamic: list[str] = Field(default_factory=list, description="Names of time-varying parameters.")
    warmup_mode: Literal["spinup", "inline"] | None = Field(
        None,
        description="'spinup': gradient-free pass sets initial states; 'inline': one pass, warm-up outputs dropped; "
        "default: the first mode the model supports ('spinup' unless it declares otherwise).",
    )


class NetworkConfig(ComponentConfig):
    """Base of network config models; input and output sizes come from the run, not the config."""
