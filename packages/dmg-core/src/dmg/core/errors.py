"""Exceptions raised by dmg with messages that name what is at fault and what to do."""

from __future__ import annotations


class DmgError(Exception):
    """Base class of every error dmg raises on purpose."""


class SpecError(DmgError, ValueError):
    """A model, parameter or variable declaration is inconsistent."""


class ShapeError(DmgError, ValueError):
    """A tensor has the wrong shape for the variable it stands for."""


class InputError(DmgError, ValueError):
    """Input data are missing, non-finite or otherwise unusable."""


class ConfigError(DmgError, ValueError):
    """A configuration is invalid; the message names the key and what is wrong."""


class RegistryError(DmgError, LookupError):
    """A component name is not registered; the message lists the known names."""


class DataWarning(UserWarning):
    """The data were used differently from what was asked (e.g. a period cut to the dates the data cover)."""


def is_dotted_name(name: str) -> bool:
    """Whether ``name`` is identifiers or integers joined by dots (``"Q"``, ``"hbv.BETA"``, ``"0.k"``)."""
    return bool(name) and all(p.isidentifier() or p.isdigit() for p in name.split("."))
