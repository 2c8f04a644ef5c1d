"""``dmg gui``'s server without a browser: token, Host and Origin checks, path confinement, round trip."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmg.core.cli import main
from dmg.core.gui import checks, documents
from dmg.core.gui.server import EditorServer, make_server

TOKEN = "test-token-123"


@pytest.fixture
def server(tiny_run) -> Iterator[EditorServer]:
    """An editor server for the tiny run's folder, on a free port, in a thread."""
    editor = make_server(tiny_run.folder, token=TOKEN)
    thread = threading.Thread(target=editor.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield editor
    editor.shutdown()
    editor.server_close()
    thread.join(5)


def call(
    server: EditorServer, path: str, body: Any = None, headers: dict[str, str] | None = None, token: str | None = TOKEN
) -> tuple[int, Any]:
    """(status, reply) of one request; the reply is JSON, or text for the page's files."""
    sent = {"X-Dmg-Token": token} if token else {}
    sent.update(headers or {})
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=data, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            status, raw, kind = reply.status, reply.read(), reply.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers["Content-Type"]
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


# ---------------------------------------------------------------------- security


def test_every_request_needs_the_token(server):
    assert call(server, "/api/schema", token=None)[0] == 403
    assert call(server, "/api/schema", token="wrong")[0] == 403
    assert call(server, "/", token=None)[0] == 403
    assert call(server, "/api/load", {"path": "run.yaml"}, token=None)[0] == 403
    status, reply = call(server, "/api/schema")
    assert status == 200
    assert reply["schema"]["title"] == "dmg run configuration"
    assert "nse" in reply["metrics"]
    assert call(server, f"/api/schema?token={TOKEN}", token=None)[0] == 200


def test_foreign_origin_or_host_is_refused(server):
    assert call(server, "/api/schema", headers={"Origin": "http://evil.example"})[0] == 403
    assert call(server, "/api/schema", headers={"Origin": f"http://127.0.0.1:{server.port + 1}"})[0] == 403
    assert call(server, "/api/schema", headers={"Host": f"evil.example:{server.port}"})[0] == 403
    assert call(server, "/api/schema", headers={"Origin": f"http://localhost:{server.port}"})[0] == 200
    assert call(server, "/api/schema", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_only_the_pages_own_files_are_served(server):
    status, page = call(server, "/")
    assert status == 200
    assert f"app.js?token={TOKEN}" in page and "__DMG_TOKEN__" not in page
    assert call(server, "/app.js")[0] == 200
    assert call(server, "/style.css")[0] == 200
    for path in ("/static/", "/static/app.js", "/../server.py", "/run.yaml", "/api/nothing", "/gui/"):
        assert call(server, path)[0] == 404, path


def test_server_binds_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url("a b.yaml") == f"http://127.0.0.1:{server.port}/?token={TOKEN}&path=a%20b.yaml"


# ---------------------------------------------------------------------- paths


def test_paths_outside_the_working_directory_are_refused(server, tiny_run, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("seed: 1\n")
    (tiny_run.folder / "link.yaml").unlink(missing_ok=True)
    (tiny_run.folder / "link.yaml").symlink_to(outside)
    for path in ("../outside.yaml", str(outside), "link.yaml", "sub/../../outside.yaml"):
        status, reply = call(server, "/api/load", {"path": path})
        assert status == 400 and "outside the working directory" in reply["error"], path
    status, reply = call(server, "/api/save", {"path": "../written.yaml", "config": {"seed": 1}})
    assert status == 400 and not (tiny_run.folder.parent / "written.yaml").exists()
    status, reply = call(server, "/api/save", {"path": "notes.txt", "config": {"seed": 1}})
    assert status == 400 and "not a YAML file" in reply["error"]


def test_confine_accepts_files_inside(tmp_path):
    root = tmp_path.resolve()
    assert documents.confine(root, "a/b.yml") == root / "a" / "b.yml"
    assert documents.confine(root, str(root / "c.yaml")) == root / "c.yaml"
    with pytest.raises(ValueError, match="give the path"):
        documents.confine(root, "  ")


# ---------------------------------------------------------------------- round trip

ORIGINAL = """\
# a comment
seed: 3
train:
  window: 20
  grad_clip: 1.0
  optimizer: {name: adam, lr: 0.01}
data:
  train: {start: 2000-01-11, end: "2000-02-29"}
  roles:
    targets: {Q: Q}
    forcings: {PET: PET, P: P}
model: {nn: {name: tiny_net, hidden_size: 4}, couplings: [{name: parameter_learning, learn: [k]}]}
"""


def keys(value: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += [prefix + key, *keys(item, f"{prefix}{key}.")]
    return found


def test_load_then_save_unchanged_keeps_values_and_order(server, tiny_run):
    (tiny_run.folder / "round.yaml").write_text(ORIGINAL)
    status, loaded = call(server, "/api/load", {"path": "round.yaml"})
    assert status == 200
    assert loaded["floats"] == [["train", "grad_clip"]]
    sent = json.loads(json.dumps(loaded["config"]).replace("1.0", "1"))  # as a browser sends it back
    status, reply = call(server, "/api/save", {"path": "round.yaml", "config": sent, "floats": loaded["floats"]})
    assert status == 409 and reply["exists"]
    assert (tiny_run.folder / "round.yaml").read_text() == ORIGINAL
    status, reply = call(
        server, "/api/save", {"path": "round.yaml", "config": sent, "floats": loaded["floats"], "overwrite": True}
    )
    assert status == 200 and reply == {"ok": True, "path": "round.yaml", "backup": "round.yaml.bak"}
    before, after = yaml.safe_load(ORIGINAL), yaml.safe_load((tiny_run.folder / "round.yaml").read_text())
    before["data"]["train"]["start"] = "2000-01-11"  # an unquoted date is written as its text
    assert after == before
    assert keys(after) == keys(before)
    assert isinstance(after["train"]["grad_clip"], float)
    assert (tiny_run.folder / "round.yaml.bak").read_text() == ORIGINAL


def test_save_writes_a_new_file_without_asking(server, tiny_run):
    target = tiny_run.folder / "new" / "fresh.yaml"
    status, reply = call(server, "/api/save", {"path": "new/fresh.yaml", "config": {"seed": 2, "device": "cpu"}})
    assert status == 200 and reply["backup"] is None
    assert target.read_text() == "seed: 2\ndevice: cpu\n"


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("'train.optimizer.lr': Input should be greater than 0 (got -0.1)", "train.optimizer.lr"),
        ("unknown key 'x.y'; did you mean 'x.z'? (valid keys here: z)", "x.y"),
        ("missing key 'data.roles'", "data.roles"),
        ("model.couplings.0.network: no network named 'x'; networks: ['default']", "model.couplings.0.network"),
        ("data.roles.targets is empty: name at least one model output", "data.roles.targets"),
        ("something else went wrong", ""),
    ],
)
def test_error_lines_name_their_keys(line, key):
    assert checks.error_key(line) == key


def test_validate_maps_each_error_to_its_key(server, tiny_run):
    config = tiny_run.config()
    config["train"]["optimizer"]["lr"] = -0.1
    config["train"]["epochz"] = 3
    status, reply = call(server, "/api/validate", {"config": config})
    assert status == 200 and not reply["ok"]
    found = {error["key"]: error["message"] for error in reply["errors"]}
    assert "greater than 0" in found["train.optimizer.lr"]
    assert "did you mean 'train.epochs'" in found["train.epochz"]
    assert "lr: -0.1" in reply["yaml"]
    config = tiny_run.config()
    config["model"]["nn"]["hidden_size"] = 0
    reply = call(server, "/api/validate", {"config": config})[1]
    assert [error["key"] for error in reply["errors"]] == ["model.nn.hidden_size"]
    assert call(server, "/api/validate", {"config": tiny_run.config()})[1] == {
        "ok": True,
        "errors": [],
        "yaml": documents.dump_document(tiny_run.config()),
    }


def test_check_runs_dmg_validate_with_paths_read_from_the_files_folder(server, tiny_run):
    config = tiny_run.config()
    config["data"]["dataset"]["path"] = "data.npz"  # relative: read from the folder of run.yaml
    status, reply = call(server, "/api/check", {"config": config, "path": "run.yaml"})
    assert status == 200 and reply["ok"], reply
    assert reply["summary"].startswith("config run.yaml: valid")
    config["data"]["dataset"]["path"] = "missing.npz"
    reply = call(server, "/api/check", {"config": config, "path": "run.yaml"})[1]
    assert not reply["ok"] and "missing.npz" in reply["error"]
    assert not list(tiny_run.folder.glob(".dmg-gui-*")), "temporary files are removed"


def test_bad_requests_are_answered_not_crashed(server):
    assert call(server, "/api/validate", {"config": [1, 2]})[0] == 400
    assert call(server, "/api/load", {"path": "missing.yaml"})[0] == 400
    status, reply = call(server, "/api/load", {})
    assert status == 400 and "give the path" in reply["error"]


# ---------------------------------------------------------------------- command line


def test_gui_command_prints_the_address_and_stops_on_ctrl_c(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)

    def interrupted(self, poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(EditorServer, "serve_forever", interrupted)
    assert main(["gui", "run.yaml", "--open"]) == 0
    out, err = capsys.readouterr()
    url = out.split("open ", 1)[1].split()[0]
    assert url.startswith("http://127.0.0.1:") and "token=" in url and url.endswith("&path=run.yaml")
    assert opened == [url]
    assert "stopped" in err


def test_gui_command_refuses_a_config_outside_the_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gui", "../elsewhere.yaml"]) == 2
    assert "outside the working directory" in capsys.readouterr().err


def test_static_files_are_package_data():
    static = Path(documents.__file__).parent / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "style.css"}
