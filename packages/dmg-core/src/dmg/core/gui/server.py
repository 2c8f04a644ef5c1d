"""``dmg gui``: a local web page to edit run configs, served by the standard library's HTTP server.

``floats`` are the key paths of whole-valued floats (``1.0``) of the loaded file, which JSON in a
browser reads as integers; they are written back as floats.

The server binds 127.0.0.1 only. Every request must carry the session's random token (in the
``X-Dmg-Token`` header or the ``token`` query parameter) and, where it names them, the server's own
``Host`` and ``Origin``; anything else is answered 403. Files are read and written only inside the
working directory the server started in, and only the page's own three files are served.

API (JSON in, JSON out):

========================  ===================================================================
``GET /api/schema``       ``{schema, metrics}``: the run config JSON Schema, registered metrics
``POST /api/load``        ``{path}`` -> ``{path, config, floats, yaml}``
``POST /api/validate``    ``{config, floats?, path?}`` -> ``{ok, errors: [{key, message}], yaml}``
``POST /api/check``       ``{config, floats?, path?}`` -> ``{ok, summary | error}`` (``dmg validate``)
``POST /api/save``        ``{path, config, floats?, overwrite}`` -> ``{ok, path, backup}``; 409 if it exists
========================  ===================================================================
"""

from __future__ import annotations

import hmac
import json
import secrets
import sys
import webbrowser
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from dmg.core.errors import DmgError, InputError
from dmg.core.gui import checks, documents

__all__ = ["EditorServer", "make_server", "serve"]

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
"""The only files served: URL path -> (file in ``dmg.core.gui/static``, content type)."""

TOKEN_PLACEHOLDER = "__DMG_TOKEN__"
"""Replaced by the session token in ``index.html`` (for the URLs of the page's script and style)."""

MAX_BODY = 2**20
"""Largest request body accepted (bytes)."""

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


class EditorServer(ThreadingHTTPServer):
    """The editor's HTTP server: its token, working directory and the origins it accepts."""

    daemon_threads = True

    def __init__(self, root: Path, port: int = 0, token: str | None = None) -> None:
        super().__init__(("127.0.0.1", port), EditorHandler)
        self.root = root.resolve()
        self.token = token or secrets.token_urlsafe(24)
        self.port = int(self.server_address[1])
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{host}" for host in self.hosts}

    def url(self, config: str | None = None) -> str:
        """The page's address with the token (and the config to open first, if any)."""
        opened = f"&path={quote(config)}" if config else ""
        return f"http://127.0.0.1:{self.port}/?token={self.token}{opened}"


class EditorHandler(BaseHTTPRequestHandler):
    """One request: refused unless its token, host and origin are the server's; then a file or an API call."""

    server: EditorServer
    server_version = "dmg-gui"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing per request (the URL holds the token)."""

    # ------------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        if not self._allowed():
            return
        path = urlsplit(self.path).path
        if path == "/api/schema":
            self._json(HTTPStatus.OK, _schema())
        elif path in STATIC:
            self._static(*STATIC[path])
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._allowed():
            return
        action = ACTIONS.get(urlsplit(self.path).path)
        if action is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            body = self._body()
            status, reply = action(self.server, body)
        except FileExistsError as exc:
            status, reply = HTTPStatus.CONFLICT, {"ok": False, "exists": True, "error": str(exc)}
        except (DmgError, OSError) as exc:
            status, reply = HTTPStatus.BAD_REQUEST, {"ok": False, "error": str(exc)}
        except Exception as exc:  # a failure of ours: the page shows it, the server keeps serving
            status, reply = HTTPStatus.INTERNAL_SERVER_ERROR, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self._json(status, reply)

    # ------------------------------------------------------------------ security

    def _allowed(self) -> bool:
        """Whether the request carries the token and the server's own host and origin; else answer 403."""
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        query = parse_qs(urlsplit(self.path).query)
        given = self.headers.get("X-Dmg-Token") or (query.get("token") or [""])[0]
        if host not in self.server.hosts:
            reason = "unknown Host"
        elif origin is not None and origin not in self.server.origins:
            reason = "foreign Origin"
        elif not hmac.compare_digest(given.encode(), self.server.token.encode()):
            reason = "missing or wrong token"
        else:
            return True
        self._json(HTTPStatus.FORBIDDEN, {"error": f"forbidden: {reason}"})
        return False

    # ------------------------------------------------------------------ replies

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise InputError(f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InputError("request body must be a JSON object")
        return body

    def _static(self, name: str, content_type: str) -> None:
        data = (resources.files("dmg.core.gui") / "static" / name).read_bytes()
        if name == "index.html":
            data = data.replace(TOKEN_PLACEHOLDER.encode(), self.server.token.encode())
        self._send(HTTPStatus.OK, data, content_type)

    def _json(self, status: int, reply: Any) -> None:
        self._send(status, json.dumps(reply).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


# ---------------------------------------------------------------------- API


def _schema() -> dict[str, Any]:
    from dmg.core import registry
    from dmg.core.config import json_schema

    return {"schema": json_schema(), "metrics": sorted(registry.entries("dmg.metrics"))}


def _folder(server: EditorServer, body: dict[str, Any]) -> tuple[Path, str]:
    """The folder a document is read as being in (that of its path, if given) and the name it is shown by."""
    given = body.get("path")
    if isinstance(given, str) and given.strip():
        path = documents.confine(server.root, given)
        if path.parent.is_dir():
            return path.parent, given.strip()
    return server.root, "the config"


def _config(body: dict[str, Any]) -> dict[str, Any]:
    """The document of a request, its whole floats written as floats again (JSON in a browser drops ``.0``)."""
    config = body.get("config")
    if not isinstance(config, dict):
        raise InputError("give the config as a JSON object under 'config'")
    return documents.restore_floats(config, body.get("floats"))


def _load(server: EditorServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    config = documents.load_document(server.root, body.get("path"))
    reply = {"path": body["path"], "config": config, "floats": documents.whole_floats(config)}
    return HTTPStatus.OK, {"ok": True, **reply, "yaml": documents.dump_document(config)}


def _validate(server: EditorServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    folder, _ = _folder(server, body)
    return HTTPStatus.OK, checks.validate(_config(body), folder)


def _check(server: EditorServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    folder, name = _folder(server, body)
    return HTTPStatus.OK, checks.check(_config(body), folder, name)


def _save(server: EditorServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path, backup = documents.save_document(server.root, body.get("path"), _config(body), bool(body.get("overwrite")))
    shown = {"path": str(path.relative_to(server.root)), "backup": backup and str(backup.relative_to(server.root))}
    return HTTPStatus.OK, {"ok": True, **shown}


ACTIONS: dict[str, Callable[[EditorServer, dict[str, Any]], tuple[int, dict[str, Any]]]] = {
    "/api/load": _load,
    "/api/validate": _validate,
    "/api/check": _check,
    "/api/save": _save,
}


# ---------------------------------------------------------------------- starting


def make_server(root: str | Path | None = None, port: int = 0, token: str | None = None) -> EditorServer:
    """An editor server on 127.0.0.1 (``port`` 0: a free one) for the files in ``root`` (default: here)."""
    return EditorServer(Path.cwd() if root is None else Path(root), port, token)


def serve(config: str | None = None, port: int = 0, open_browser: bool = False) -> int:
    """Serve the editor until Ctrl-C; print its address (and open it in a browser with ``open_browser``).

    Parameters
    ----------
    config
        A YAML config in the working directory to open first.
    port
        Port on 127.0.0.1; 0 picks a free one.
    open_browser
        Open the page in the default web browser.
    """
    server = make_server(port=port)
    if config:
        documents.confine(server.root, config)  # refused now rather than in the page
    url = server.url(config)
    print(f"dmg gui: editing configs in {server.root}", flush=True)
    print(f"open {url}", flush=True)
    print("(the address holds this session's access token; press Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
