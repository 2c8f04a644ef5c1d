"""dmg-hydro-adapter checks at import that the installed dmg-core provides an interface version it supports."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

import dmg.core
import dmg.core.interface
from dmg.hydro import _interface


def test_the_installed_core_interface_is_supported():
    _interface.check_core()
    assert dmg.core.interface.satisfies(dmg.core.INTERFACE_VERSION, _interface.SUPPORTED_CORE_INTERFACE)


def test_an_older_core_interface_fails_naming_both_versions_and_the_range(monkeypatch):
    monkeypatch.setattr(dmg.core.interface, "INTERFACE_VERSION", (0, 9))
    with pytest.raises(dmg.core.InterfaceVersionError) as raised:
        _interface.check_core()
    message = str(raised.value)
    assert isinstance(raised.value, ImportError)
    assert "dmg-hydro-adapter" in message and f"dmg-core {version('dmg-core')}" in message
    assert "interface 0.9" in message and ">=1.0,<2" in message


def test_a_core_older_than_interface_versions_fails_clearly(monkeypatch):
    monkeypatch.delattr(dmg.core, "require_interface")
    with pytest.raises(ImportError, match="predates interface versions") as raised:
        _interface.check_core()
    message = str(raised.value)
    assert "dmg-hydro-adapter" in message and f"dmg-core {version('dmg-core')}" in message and ">=1.0,<2" in message


def test_the_check_runs_when_the_package_is_imported():
    code = "import dmg.core.interface as i; i.INTERFACE_VERSION = (2, 0); import dmg.hydro"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "InterfaceVersionError" in result.stderr and "provides interface 2.0" in result.stderr
