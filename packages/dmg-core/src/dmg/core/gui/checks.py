"""The editor's checks of a document: the validation of ``load_config`` and the checks of ``dmg validate``.

Both read the document as the file it will be saved as: its YAML is written to a hidden temporary file
in the folder of that file, so that relative paths in it are read from that folder, as they will be
once it is saved (see :data:`dmg.core.config.PATH_RULE`). The temporary file is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dmg.core.config import load_config
from dmg.core.errors import DmgError
from dmg.core.gui.documents import dump_document

__all__ = ["check", "error_entries", "error_key", "validate"]

_QUOTED = re.compile(r"^'([^']+)':")
_NAMED = re.compile(r"^(?:unknown|missing) key '([^']+)'")
_DOTTED = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)+)\b")
_HEAD = "invalid configuration"
_ONE_AT_A_TIME = threading.Lock()  # a check builds a model and runs it: one at a time


def error_key(line: str) -> str:
    """The dotted config key an error line names, or ``""`` when it names none.

    Examples
    --------
    >>> error_key("'train.optimizer.lr': Input should be greater than 0 (got -0.1)")
    'train.optimizer.lr'
    >>> error_key("unknown key 'model.nn.hidden_sizee'; did you mean 'model.nn.hidden_size'?")
    'model.nn.hidden_sizee'
    >>> error_key("model.couplings.0.network: no network named 'x'")
    'model.couplings.0.network'
    """
    for pattern in (_QUOTED, _NAMED, _DOTTED):
        found = pattern.match(line)
        if found:
            return found.group(1)
    return ""


def error_entries(message: str) -> list[dict[str, str]]:
    """The lines of a :class:`~dmg.core.errors.ConfigError` message, each with the key it names.

    A message is one problem (``invalid configuration: 'a.b': ...``) or a head line followed by one
    indented problem per line.
    """
    head, *rest = message.split("\n")
    if rest and head.startswith(_HEAD) and head.endswith(":"):
        lines = [line.strip() for line in rest if line.strip()]
    else:
        lines = [message.removeprefix(_HEAD + ": ")]
    return [{"key": error_key(line), "message": line} for line in lines]


@contextlib.contextmanager
def _as_file(text: str, folder: Path) -> Iterator[Path]:
    """``text`` written to a hidden temporary YAML file in ``folder``, removed afterwards."""
    fd, name = tempfile.mkstemp(prefix=".dmg-gui-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def validate(document: Any, folder: Path) -> dict[str, Any]:
    """Validate ``document`` as ``load_config`` does a file in ``folder``.

    Returns
    -------
    dict
        ``ok``, ``errors`` (``[{key, message}]``, empty when valid) and ``yaml`` (the text that would
        be saved).
    """
    text = dump_document(document)
    with _as_file(text, folder) as path:
        try:
            load_config(path)
        except DmgError as exc:
            message = str(exc).replace(f" in {path}", "").replace(str(path), "the config")
            return {"ok": False, "errors": error_entries(message), "yaml": text}
    return {"ok": True, "errors": [], "yaml": text}


def check(document: Any, folder: Path, name: str) -> dict[str, Any]:
    """Run the checks of ``dmg validate`` on ``document`` as a file in ``folder`` shown as ``name``.

    Returns
    -------
    dict
        ``ok`` and ``summary`` (the report of ``dmg validate``) or ``error`` (what stopped it).
    """
    from dmg.core.validation import validate_config  # builds models: imported when first needed

    text = dump_document(document)
    with _ONE_AT_A_TIME, _as_file(text, folder) as path:
        try:
            summary = validate_config(path)
        except DmgError as exc:
            return {"ok": False, "error": str(exc).replace(str(path), name)}
        except Exception as exc:  # a component's own failure: shown, not a server crash
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}".replace(str(path), name)}
    return {"ok": True, "summary": summary.replace(str(path), name)}
