"""dmg-physics-examples checks at import that the installed dmg-core provides an interface version it supports."""

from __future__ import annotations

from dmg.core.testing.interface import CoreInterfaceChecks
from dmg.examples import _interface


class TestCoreInterface(CoreInterfaceChecks):
    interface = _interface
    import_name = "dmg.examples"
