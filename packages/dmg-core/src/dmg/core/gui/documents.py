"""Config documents of the editor: paths confined to one folder, YAML read as written, saved with a backup.

The editor keeps a loaded file's mapping as its document and changes only the keys a user edits, so
saving an unchanged document gives back every value in its order (comments are not kept; the previous
file is kept as ``<name>.bak``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from dmg.core.config import parse_yaml, read_config_text
from dmg.core.errors import ConfigError, InputError
from dmg.core.io import atomic_open, atomic_write_text

__all__ = [
    "SUFFIXES",
    "confine",
    "dump_document",
    "load_document",
    "plain",
    "restore_floats",
    "save_document",
    "whole_floats",
]

SUFFIXES = (".yaml", ".yml")
"""File names the editor reads and writes."""


def confine(root: Path, given: Any) -> Path:
    """The YAML file ``given`` (relative to ``root``) resolved, refused unless it lies inside ``root``.

    Parameters
    ----------
    root
        The folder every file must lie in (the editor's working directory), already resolved.
    given
        The path a user typed, relative to ``root`` (an absolute path inside ``root`` is accepted).

    Raises
    ------
    InputError
        For an empty path, one outside ``root`` (also through ``..`` or a symbolic link) or one that is
        not named ``*.yaml``/``*.yml``.
    """
    if not isinstance(given, str) or not given.strip():
        raise InputError("give the path of a YAML file, relative to the working directory")
    path = (root / given.strip()).resolve()
    if not path.is_relative_to(root):
        raise InputError(f"{given!r} is outside the working directory {root}; only files inside it can be used")
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{given!r} is not a YAML file name (*.yaml or *.yml)")
    return path


def plain(value: Any) -> Any:
    """``value`` with dates and times as ISO text, so that it can be sent as JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def whole_floats(value: Any, path: tuple[Any, ...] = ()) -> list[list[Any]]:
    """The key paths of the floats with whole values (``1.0``) in a document.

    JSON in a browser reads ``1.0`` as ``1``; the page sends these paths back so that
    :func:`restore_floats` can write them as the file had them.
    """
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in whole_floats(v, (*path, k))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in whole_floats(v, (*path, i))]
    return [list(path)] if isinstance(value, float) and value.is_integer() else []


def restore_floats(document: Any, paths: Any) -> Any:
    """``document`` with the whole numbers at ``paths`` (from :func:`whole_floats`) made floats again, in place."""
    for path in paths if isinstance(paths, list) else []:
        if not isinstance(path, list) or not path:
            continue
        node = document
        for part in path[:-1]:
            node = _child(node, part)
        last = path[-1]
        value = _child(node, last)
        if isinstance(value, int) and not isinstance(value, bool):
            node[last] = float(value)
    return document


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def load_document(root: Path, given: Any) -> dict[str, Any]:
    """The mapping of the YAML config ``given`` (inside ``root``), in the file's key order.

    Raises
    ------
    InputError
        For a path outside ``root`` (see :func:`confine`).
    ConfigError
        For a missing file, one that is not YAML, or YAML that is not a mapping.
    """
    path = confine(root, given)
    data = parse_yaml(read_config_text(path), f"config file {given}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {given} must hold a mapping of sections, got {type(data).__name__}")
    return plain(data)


class _SectionDumper(yaml.SafeDumper):
    """YAML's safe dumper writing the mappings whose ids are in ``block`` one key per line."""

    block: frozenset[int] = frozenset()

    def represent_mapping(self, tag: str, mapping: Any, flow_style: bool | None = None) -> yaml.MappingNode:
        node = super().represent_mapping(tag, mapping, flow_style)
        if id(mapping) in self.block:
            node.flow_style = False
        return node


def dump_document(document: Any) -> str:
    """The YAML text of a document: keys in their order, the top level and its sections one key per
    line, the innermost lists and mappings below them on one line (as configs are usually written)."""
    if not isinstance(document, dict):
        raise InputError(f"a config is a mapping of sections, got {type(document).__name__}")
    sections = [id(document)] + [id(value) for value in document.values() if isinstance(value, dict)]
    dumper = type("Dumper", (_SectionDumper,), {"block": frozenset(sections)})
    return yaml.dump(document, Dumper=dumper, sort_keys=False, default_flow_style=None, allow_unicode=True, width=110)


def save_document(root: Path, given: Any, document: Any, overwrite: bool = False) -> tuple[Path, Path | None]:
    """Write ``document`` as YAML to ``given`` (inside ``root``) atomically; return the file and its backup.

    An existing file is replaced only with ``overwrite``; its previous content is kept as
    ``<name>.bak`` (itself written atomically) before the new one replaces it.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is false.
    InputError
        For a path outside ``root``, a folder, or a document that is not a mapping.
    """
    path = confine(root, given)
    text = dump_document(document)
    if path.is_dir():
        raise InputError(f"{given!r} is a folder; give a file name")
    backup = None
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{given} exists; confirm to overwrite it (the old file is kept as .bak)")
        backup = path.with_name(path.name + ".bak")
        with atomic_open(backup, "wb") as fh:
            fh.write(path.read_bytes())
    atomic_write_text(path, text)
    return path, backup
