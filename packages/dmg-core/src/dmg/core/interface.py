"""The version of the interface that sibling packages (dmg-nn, dmg-physics-examples, dmg-hydro-adapter and
downstream projects) build on, and the check they run at import.

:data:`INTERFACE_VERSION` is ``(major, minor)``. It covers

* the physics-model interface: :class:`~dmg.core.PhysicsModel`, :class:`~dmg.core.StepModel`
  (``step(state, forcing_t, params_t, processes)``) and :class:`~dmg.core.SeriesModel`
  (``simulate``), their :class:`~dmg.core.Signature` and declarations (parameters, variables,
  states, process slots, mass balance);
* the component convention of :mod:`dmg.core.components`: a nested pydantic ``Config``
  (:class:`~dmg.core.ComponentConfig`), ``__init__(config=None, /, *, <context>, **options)`` and
  ``from_config``;
* the registry: the entry-point groups of :data:`dmg.core.registry.GROUPS`;
* :class:`~dmg.core.Batch`, the time-major minibatch;
* the network interface of :mod:`dmg.core.networks` (``input_kind``, ``output_kind``,
  ``from_config(config, *, n_inputs, n_outputs, n_static=0)``);
* the couplings (:class:`~dmg.core.Coupling` and its context) through which networks and physics meet.

The major number changes when any of these changes in a way that breaks code written against it;
the minor number when something is added. dmg-core's own version (``dmg.core.__version__``) moves
independently: a release that changes none of the above keeps the interface version.

A sibling declares the range it supports and checks it when it is imported::

    from dmg.core import require_interface

    require_interface("dmg-nn", ">=1.0,<2")
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

INTERFACE_VERSION: tuple[int, int] = (1, 0)
"""``(major, minor)`` of the interface described in this module."""

_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*")
_OPERATORS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


class InterfaceVersionError(ImportError):
    """The installed dmg-core provides an interface version outside the range a package supports."""


def _padded(numbers: tuple[int, ...], width: int) -> tuple[int, ...]:
    return numbers + (0,) * (width - len(numbers))


def interface_string(interface: tuple[int, ...] | None = None) -> str:
    """``"1.0"`` for ``(1, 0)``; the installed :data:`INTERFACE_VERSION` when ``interface`` is ``None``."""
    return ".".join(str(n) for n in (INTERFACE_VERSION if interface is None else interface))


def satisfies(interface: tuple[int, ...], supported: str) -> bool:
    """Whether ``interface`` lies in ``supported``: comma-separated clauses such as ``">=1.0,<2"``.

    Missing components count as 0 (``<2`` is ``<2.0``).

    Raises
    ------
    ValueError
        A clause is not an operator (``>=``, ``<=``, ``==``, ``!=``, ``>``, ``<``) followed by a version.
    """
    for clause in supported.split(","):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise ValueError(f"cannot read the interface range {supported!r} (clause {clause!r})")
        bound = tuple(int(n) for n in match.group(2).split("."))
        width = max(len(bound), len(interface))
        if not _OPERATORS[match.group(1)](_padded(interface, width), _padded(bound, width)):
            return False
    return True


def _core_version() -> str:
    try:
        return version("dmg-core")
    except PackageNotFoundError:  # run from a source tree without installing
        from dmg.core.__about__ import __version__

        return __version__


def require_interface(package: str, supported: str) -> None:
    """Check that the installed dmg-core's :data:`INTERFACE_VERSION` lies in ``supported``.

    Parameters
    ----------
    package
        The distribution asking (``"dmg-nn"``), named in the error.
    supported
        The interface versions it supports, e.g. ``">=1.0,<2"``.

    Raises
    ------
    InterfaceVersionError
        Naming ``package``, the installed dmg-core version, its interface version and ``supported``.
    """
    if not satisfies(INTERFACE_VERSION, supported):
        raise InterfaceVersionError(
            f"{package} supports the dmg-core interface {supported}, but the installed dmg-core "
            f"{_core_version()} provides interface {interface_string()}. Install versions that fit "
            f"together, e.g. pip install --upgrade dmg-core {package}"
        )
