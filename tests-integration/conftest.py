"""The ``requires`` marker: ``@pytest.mark.requires("dmg-core>=0.3", ...)`` names the package versions a
test needs. ``nox -s compat`` sets ``DMG_COMPAT=1`` while it runs these tests against released versions;
then a test whose requirements the installed versions do not meet is skipped, saying why. From a checkout
(every other session) the marker is not enforced: the checkout holds what the next releases will."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement


def unmet(requirements: tuple[str, ...]) -> list[str]:
    """The requirements the installed distributions do not meet, each with what is installed."""
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            missing.append(f"{text} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (installed: {installed})")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DMG_COMPAT") != "1":
        return
    for item in items:
        for mark in item.iter_markers("requires"):
            missing = unmet(mark.args)
            if missing:
                item.add_marker(pytest.mark.skip(reason="needs " + ", ".join(missing)))
