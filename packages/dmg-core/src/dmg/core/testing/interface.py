"""A shared test kit for packages built on dmg-core: their import-time check of the interface version.

A sibling package keeps a module (e.g. ``dmg.nn._interface``) with ``PACKAGE``,
``SUPPORTED_CORE_INTERFACE`` and ``check_core()``, called when the package is imported. Its tests
subclass :class:`CoreInterfaceChecks`::

    from dmg.core.testing.interface import CoreInterfaceChecks
    from dmg.nn import _interface

    class TestCoreInterface(CoreInterfaceChecks):
        interface = _interface
        import_name = "dmg.nn"
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from types import ModuleType
from typing import Any, ClassVar

import dmg.core
import dmg.core.interface


class CoreInterfaceChecks:
    """Checks of a sibling's interface check; set :attr:`interface` and :attr:`import_name`."""

    interface: ClassVar[ModuleType]
    """The sibling's module with ``PACKAGE``, ``SUPPORTED_CORE_INTERFACE`` and ``check_core``."""

    import_name: ClassVar[str]
    """What a user imports, e.g. ``"dmg.nn"``."""

    def test_the_installed_core_interface_is_supported(self) -> None:
        self.interface.check_core()
        assert dmg.core.interface.satisfies(dmg.core.INTERFACE_VERSION, self.interface.SUPPORTED_CORE_INTERFACE)

    def test_an_older_core_interface_fails_naming_both_versions_and_the_range(self, monkeypatch: Any) -> None:
        import pytest

        monkeypatch.setattr(dmg.core.interface, "INTERFACE_VERSION", (0, 9))
        with pytest.raises(dmg.core.InterfaceVersionError) as raised:
            self.interface.check_core()
        message = str(raised.value)
        assert isinstance(raised.value, ImportError)
        assert self.interface.PACKAGE in message and f"dmg-core {version('dmg-core')}" in message
        assert "interface 0.9" in message and self.interface.SUPPORTED_CORE_INTERFACE in message

    def test_a_core_older_than_interface_versions_fails_clearly(self, monkeypatch: Any) -> None:
        import pytest

        monkeypatch.delattr(dmg.core, "require_interface")
        with pytest.raises(ImportError, match="predates interface versions") as raised:
            self.interface.check_core()
        message = str(raised.value)
        assert self.interface.PACKAGE in message and f"dmg-core {version('dmg-core')}" in message
        assert self.interface.SUPPORTED_CORE_INTERFACE in message

    def test_the_check_runs_when_the_package_is_imported(self) -> None:
        code = f"import dmg.core.interface as i; i.INTERFACE_VERSION = (2, 0); import {self.import_name}"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert result.returncode != 0
        assert "InterfaceVersionError" in result.stderr and "provides interface 2.0" in result.stderr
