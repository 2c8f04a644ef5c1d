"""What a result was computed with: package versions, Python, platform and the git commit.

:func:`collect` gathers the record that ``dmg train`` writes to ``versions.json`` in every run folder
and that the benchmarks store in their JSON results::

    {
      "dmg": {"dmg-core": "0.1.0", "dmg-nn": "0.1.0", ...},    every installed dmg-* distribution
      "packages": {"numpy": "2.4.6", "pydantic": "2.12.5", "torch": "2.13.0"},
      "python": "3.12.3",
      "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
      "machine": "x86_64",
      "git": {"commit": "08f9f59...", "dirty": true}            null unless dmg-core runs from a git checkout
    }

:func:`check_versions` compares such a record with what is installed now; ``dmg evaluate`` uses it
to warn (:class:`VersionMismatchWarning`) when a run was trained under other dmg versions.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import warnings
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import Any

THIRD_PARTY = ("torch", "numpy", "pydantic")
"""Packages besides the dmg ones whose versions every record holds."""

NOT_INSTALLED = "not installed"
GIT_TIMEOUT_S = 5.0


class VersionMismatchWarning(UserWarning):
    """A run was recorded under dmg package versions other than the installed ones."""


def dmg_versions() -> dict[str, str]:
    """Versions of every installed distribution whose name starts with ``dmg-``, by name."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name.lower().replace("_", "-").startswith("dmg-") and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items()))


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution in ``names`` (``"not installed"`` when absent)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = NOT_INSTALLED
    return out


def _git(folder: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(folder: str | Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``folder`` (default: dmg.core's).

    ``None`` when git is missing, slow, or ``folder`` is not inside a work tree (an installed wheel).
    """
    if shutil.which("git") is None:
        return None
    where = Path(folder) if folder is not None else Path(__file__).resolve().parent
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(where, "status", "--porcelain")
    return {"commit": commit.strip(), "dirty": bool(status.strip()) if status is not None else None}


def collect(extra: Iterable[str] = ()) -> dict[str, Any]:
    """The provenance record described in the module docstring.

    Parameters
    ----------
    extra
        More distributions to record under ``packages`` (a benchmark's comparison packages).
    """
    return {
        "dmg": dmg_versions(),
        "packages": package_versions(dict.fromkeys([*THIRD_PARTY, *extra])),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "git": git_state(),
    }


def version_mismatches(recorded: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """The dmg packages whose version in ``recorded`` differs from the installed one: ``{name: (then, now)}``."""
    then = recorded.get("dmg")
    if not isinstance(then, Mapping):
        return {}
    now = package_versions(then)
    return {name: (str(v), now[name]) for name, v in then.items() if str(v) != now[name]}


def check_versions(
    recorded: Mapping[str, Any], what: str = "this run", stacklevel: int = 2
) -> dict[str, tuple[str, str]]:
    """Warn once (:class:`VersionMismatchWarning`) naming every dmg package whose version differs.

    Returns the mismatches (see :func:`version_mismatches`); ``stacklevel`` is that of the caller's caller.
    """
    mismatches = version_mismatches(recorded)
    if mismatches:
        listed = "; ".join(f"{name} {then} when recorded, {now} installed" for name, (then, now) in mismatches.items())
        warnings.warn(
            f"{what} was made with other dmg versions than the installed ones ({listed}); "
            "results may differ from the original ones",
            VersionMismatchWarning,
            stacklevel=stacklevel + 1,
        )
    return mismatches


def check_file(path: str | Path, what: str) -> dict[str, tuple[str, str]]:
    """:func:`check_versions` of the record in ``path`` (a ``versions.json``); nothing when absent or unreadable."""
    try:
        recorded = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return check_versions(recorded, what, stacklevel=3) if isinstance(recorded, Mapping) else {}
