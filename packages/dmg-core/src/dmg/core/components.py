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

import datetime as dt
import types
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from dmg.core.errors import ConfigError


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types a field annotation admits: the members of a union, the base of ``Annotated``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return tuple(m for arg in get_args(annotation) for m in _members(arg))
    return (annotation,)


def _admits(annotation: Any, kind: type) -> bool:
    """Whether a field annotated ``annotation`` takes values of type ``kind`` as they are."""
    for member in _members(annotation):
        if member is Any or member is object or member is kind:
            return True
        if get_origin(member) is Literal and any(type(v) is kind for v in get_args(member)):
            return True
    return False


def _expected(annotation: Any) -> str:
    """What a field annotated ``annotation`` expects, in words."""
    words = {int: "an integer", float: "a number", str: "text", dt.date: "a date (YYYY-MM-DD)"}
    found = [words[m] for m in _members(annotation) if m in words]
    if any(get_origin(m) is Literal for m in _members(annotation)):
        found.append("one of " + ", ".join(repr(v) for m in _members(annotation) for v in get_args(m)))
    return " or ".join(dict.fromkeys(found)) or "a value of another type"


def check_scalar_type(value: Any, annotation: Any, field: str) -> None:
    """Refuse a boolean, or a number for a date, that pydantic would silently convert for ``field``.

    Pydantic reads ``true`` as ``1`` for a number and a number as seconds since 1970 for a date;
    in a config file either is a mistake.

    Raises
    ------
    pydantic_core.PydanticCustomError
        ``bool_not_allowed`` or ``number_not_date``, with the field name as context ``field``.
    """
    if isinstance(value, bool) and not _admits(annotation, bool):
        raise PydanticCustomError(
            "bool_not_allowed",
            "{field}: expected {expected}, not a boolean",
            {"field": field, "expected": _expected(annotation)},
        )
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and _admits(annotation, dt.date) and not (_admits(annotation, int) or _admits(annotation, float)):
        raise PydanticCustomError(
            "number_not_date", "{field}: expected a date (YYYY-MM-DD), not a number", {"field": field}
        )


SCALAR_TYPE_ERRORS = frozenset({"bool_not_allowed", "number_not_date"})
"""Types of the errors of :func:`check_scalar_type`; their context ``field`` names the key at fault."""


class OptionsModel(BaseModel):
    """Base of the config models a user writes: unknown keys are errors, numbers are finite, and a
    boolean is not taken for a number (nor a number for a date)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _scalar_types(cls, data: Any) -> Any:
        # A model validator, not a field validator: a field validator may not sit on the `name`
        # field that discriminates components in the JSON schema.
        if isinstance(data, Mapping):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if field is not None:
                    check_scalar_type(value, field.annotation, key)
        return data


class ComponentConfig(OptionsModel):
    """Base of component config models: unknown keys are errors (see :class:`OptionsModel`)."""


# --------------------------------------------------------------------------- option roles

ROLE_KEY = "dmg_role"
"""Key of an option's ``json_schema_extra`` that says what the option is to the framework."""

PATH_OPTION = {ROLE_KEY: "path"}
"""A file or folder path: a relative one is read from the folder of the config file it is written in,
or from the working directory when it is given on the command line (``--set``)."""

SELECTS_UNITS = {ROLE_KEY: "units"}
"""The units (ids) a dataset loads: ``dmg simulate --units`` sets it."""

SELECTS_START = {ROLE_KEY: "start"}
"""The first date a dataset loads: ``dmg simulate --start/--end`` widens it to the whole record."""

SELECTS_END = {ROLE_KEY: "end"}
"""The last date a dataset loads: ``dmg simulate --start/--end`` widens it to the whole record."""


def options_with_role(config_class: type[BaseModel], role: str) -> list[str]:
    """Names of the options of ``config_class`` marked with ``role`` (see :data:`PATH_OPTION` and others).

    Mark an option with ``Field(..., json_schema_extra=PATH_OPTION)``.
    """
    return [
        name
        for name, field in config_class.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(ROLE_KEY) == role
    ]


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
        cls, config: BaseModel | Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None
    ) -> Any:
        """One validated ``Config`` from an instance or mapping ``config`` and/or keyword ``options``."""
        options = dict(options or {})
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
