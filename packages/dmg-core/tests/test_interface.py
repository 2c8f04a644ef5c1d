"""The interface version siblings build on, and :func:`dmg.core.require_interface`."""

from __future__ import annotations

from importlib.metadata import version

import pytest

import dmg.core
from dmg.core import interface


def test_the_interface_version_is_exported():
    assert dmg.core.INTERFACE_VERSION == interface.INTERFACE_VERSION == (1, 0)
    dmg.core.require_interface("dmg-nn", ">=1.0,<2")


@pytest.mark.parametrize(
    ("version_", "supported", "expected"),
    [
        ((1, 0), ">=1.0,<2", True),
        ((1, 7), ">=1.0,<2", True),
        ((2, 0), ">=1.0,<2", False),
        ((0, 9), ">=1.0,<2", False),
        ((1, 2), ">1.1", True),
        ((1, 2), "==1.2", True),
        ((1, 2), "!=1.2", False),
        ((1, 2), "<=1", False),
    ],
)
def test_ranges(version_, supported, expected):
    assert interface.satisfies(version_, supported) is expected


def test_an_unreadable_range_is_refused():
    with pytest.raises(ValueError, match="cannot read the interface range"):
        interface.satisfies((1, 0), "~1.0")


def test_an_unsupported_interface_names_the_package_both_versions_and_the_range(monkeypatch):
    monkeypatch.setattr(interface, "INTERFACE_VERSION", (2, 1))
    with pytest.raises(dmg.core.InterfaceVersionError) as raised:
        dmg.core.require_interface("dmg-foo", ">=1.0,<2")
    message = str(raised.value)
    assert isinstance(raised.value, ImportError)
    assert "dmg-foo" in message and f"dmg-core {version('dmg-core')}" in message
    assert "interface 2.1" in message and ">=1.0,<2" in message
