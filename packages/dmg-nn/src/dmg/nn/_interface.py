"""The dmg-core interface dmg-nn builds on, checked when ``dmg.nn`` is imported.

See :mod:`dmg.core.interface` for what the interface version covers. An installed dmg-core outside
:data:`SUPPORTED_CORE_INTERFACE`, or one older than interface versions, fails the import with a message
naming both versions and the range.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

PACKAGE = "dmg-nn"
SUPPORTED_CORE_INTERFACE = ">=1.0,<2"
"""The dmg-core interface versions this package works with."""


def installed_core_version() -> str:
    """The installed dmg-core version from its distribution metadata (``"unknown"`` without one)."""
    try:
        return version("dmg-core")
    except PackageNotFoundError:
        return "unknown"


def check_core() -> None:
    """Raise an ``ImportError`` unless the installed dmg-core provides a supported interface version.

    Raises
    ------
    ImportError
        dmg-core has no ``require_interface`` (it predates interface versions), or its
        :class:`dmg.core.InterfaceVersionError` when its interface lies outside the supported range.
    """
    import dmg.core

    require = getattr(dmg.core, "require_interface", None)
    if require is None:
        raise ImportError(
            f"{PACKAGE} needs dmg-core with interface {SUPPORTED_CORE_INTERFACE}, but the installed dmg-core "
            f"{installed_core_version()} predates interface versions (it has no dmg.core.require_interface). "
            f"Upgrade it: pip install --upgrade dmg-core {PACKAGE}"
        )
    require(PACKAGE, SUPPORTED_CORE_INTERFACE)


check_core()
