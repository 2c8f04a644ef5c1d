"""Registry of components, loaded lazily from entry points.

Packages register components under the entry-point groups in :data:`GROUPS`::

    [project.entry-points."dmg.physics"]
    bucket = "my_package.models:Bucket"

Components can also be registered in-process with :func:`register` (notebooks, tests).
Each registered component carries its own pydantic config model as ``Config`` and builds
itself with ``from_config`` (see :mod:`dmg.core.components`).
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from importlib.metadata import entry_points
from typing import Any

from dmg.core.errors import RegistryError

GROUPS = (
    "dmg.physics",
    "dmg.nn",
    "dmg.couplings",
    "dmg.backends",
    "dmg.datasets",
    "dmg.losses",
    "dmg.metrics",
)
"""The entry-point groups dmg reads."""


@dataclass(frozen=True)
class Entry:
    """One registered component: its name, where it comes from, and how to load it."""

    group: str
    name: str
    target: str
    distribution: str
    _loader: Any

    def load(self) -> Any:
        """Import and return the component."""
        return self._loader()


_LOCAL: dict[str, dict[str, Entry]] = {g: {} for g in GROUPS}
_CACHE: dict[tuple[str, str], Any] = {}


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise RegistryError(f"unknown component group {group!r}; groups: {list(GROUPS)}")


def register(group: str, name: str, obj: Any) -> Any:
    """Register ``obj`` as component ``name`` of ``group`` in this process; returns ``obj``."""
    _check_group(group)
    target = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    _LOCAL[group][name] = Entry(group, name, target, "(registered at run time)", lambda: obj)
    _CACHE.pop((group, name), None)
    return obj


def unregister(group: str, name: str) -> None:
    """Remove a component registered with :func:`register`."""
    _check_group(group)
    _LOCAL[group].pop(name, None)
    _CACHE.pop((group, name), None)


def entries(group: str) -> dict[str, Entry]:
    """All components of ``group`` by name, without importing them."""
    _check_group(group)
    found: dict[str, Entry] = {}
    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else "?"
        found[ep.name] = Entry(group, ep.name, ep.value, dist, ep.load)
    found.update(_LOCAL[group])
    return dict(sorted(found.items()))


PROVIDERS = {"dmg.nn": ("dmg-nn", "the network zoo: lstm, mlp, lstm_mlp, ealstm, transformer, tcn, kan")}
"""The package providing most components of a group, named when it is not installed and a name is unknown."""


def _provider_hint(group: str, known: dict[str, Entry]) -> str:
    if group not in PROVIDERS:
        return ""
    package, what = PROVIDERS[group]
    if any(entry.distribution == package for entry in known.values()):
        return ""
    return f". {package} provides {what}; install it: pip install {package}"


def get(group: str, name: str) -> Any:
    """Load component ``name`` of ``group``; an unknown name fails listing the known ones."""
    key = (group, name)
    if key in _CACHE:
        return _CACHE[key]
    known = entries(group)
    if name not in known:
        close = get_close_matches(name, list(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RegistryError(
            f"no {group.split('.')[-1]} component named {name!r}.{hint} "
            f"Known: {', '.join(known) or 'none (install a package that provides some)'}"
            f"{_provider_hint(group, known)}"
        )
    try:
        obj = known[name].load()
    except Exception as exc:  # a broken plugin must say which one it is
        raise RegistryError(
            f"component {name!r} of {group} ({known[name].target}, from {known[name].distribution}) "
            f"failed to load: {exc}"
        ) from exc
    _CACHE[key] = obj
    return obj
