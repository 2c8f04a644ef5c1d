"""``dmg gui`` in a real headless Chromium: load δHBV's CAMELS config, edit it, see errors, save, check.

The server runs as ``dmg gui`` in a subprocess whose working directory is a temporary folder holding a
copy of ``examples/configs/dhbv_camels.yaml`` (its data root made absolute, as nothing else is copied).
The browser is Debian's ``chromium`` driven by Playwright; without either, the test is skipped.
A screenshot of the loaded config is kept in the temporary folder; with ``DMG_UPDATE_DOCS_IMAGES=1`` it also
replaces the docs' ``docs/img/gui.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "dhbv_camels.yaml"
SAMPLE = ROOT.parent / "shared" / "data" / "camels_us_sample"
SCREENSHOT = ROOT / "docs" / "img" / "gui.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: browser tests skipped")
if not Path(CHROMIUM).is_file():
    pytest.skip("Chromium (/usr/bin/chromium) is not installed: browser tests skipped", allow_module_level=True)
if not SAMPLE.is_dir():
    pytest.skip(f"the CAMELS-US sample is not at {SAMPLE}", allow_module_level=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory with the δHBV config (data root absolute) and a YAML file just outside it."""
    work = tmp_path / "work"
    work.mkdir()
    text = CONFIG.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s+root: ).*$", lambda m: f"{m.group(1)}{SAMPLE}", text, count=1)
    (work / "dhbv_camels.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "outside.yaml").write_text("seed: 1\n", encoding="utf-8")
    return work


@pytest.fixture
def server(workdir: Path, tmp_path: Path) -> Iterator[str]:
    """``dmg gui`` serving ``workdir``; yields its URL (with the token) and checks that Ctrl-C stops it."""
    env = {**os.environ, "DMG_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dmg.core.cli", "gui"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell without job control starts background jobs with Ctrl-C ignored, and children inherit that:
        # give the server the default disposition, so that Ctrl-C stops it as it does in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        url = ""
        for line in process.stdout:
            if line.startswith("open "):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:"), process.stderr.read()
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, err
    assert "stopped" in err


def request(url: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """An API call with urllib: (status, JSON reply)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.split("/?")[0] + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def key_order(value: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a nested mapping, in document order."""
    keys: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            keys.append(prefix + str(key))
            keys += key_order(item, f"{prefix}{key}.")
    return keys


def test_edit_validate_save_check(server: str, workdir: Path, tmp_path: Path) -> None:
    token = server.split("token=")[1]
    original = yaml.safe_load((workdir / "dhbv_camels.yaml").read_text())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(server)
        page.wait_for_selector("body[data-ready=true]")

        page.fill("#path", "dhbv_camels.yaml")
        page.click("#load")
        sync_api.expect(page.locator("#status")).to_have_text("valid configuration", timeout=15000)
        sync_api.expect(page.locator('[id="f-model.nn.hidden_size"]')).to_have_value("256")
        sync_api.expect(page.locator('[id="f-data.dataset.name"]')).to_have_value("camels_us")
        sync_api.expect(page.locator('[id="f-model.physics.members.runoff.name"]')).to_have_value("hbv")
        sync_api.expect(page.locator("#yaml")).to_contain_text("nse_batch")
        page.screenshot(path=str(tmp_path / "gui.png"))
        if os.environ.get("DMG_UPDATE_DOCS_IMAGES"):  # refresh the docs' picture on request only
            shutil.copyfile(tmp_path / "gui.png", SCREENSHOT)

        page.fill('[id="f-train.epochs"]', "5")
        lr = page.locator('[data-key="train.optimizer.lr"] > .error')
        page.fill('[id="f-train.optimizer.lr"]', "-0.1")
        sync_api.expect(lr).to_contain_text("greater than 0")
        sync_api.expect(page.locator("#status")).to_have_text("1 problem")
        page.fill('[id="f-train.optimizer.lr"]', "0.0005")
        sync_api.expect(lr).to_be_empty()
        sync_api.expect(page.locator("#status")).to_have_text("valid configuration")
        sync_api.expect(page.locator("#yaml")).to_contain_text("epochs: 5")

        page.click("#save")  # the file exists: the page asks, the dialog handler confirms
        sync_api.expect(page.locator("#status")).to_contain_text("saved dhbv_camels.yaml")
        page.click("#check")
        sync_api.expect(page.locator("#check-result")).to_contain_text("dhbv_camels.yaml: valid", timeout=60000)

        page.select_option('[id="f-model.nn.name"]', "tcn")
        sync_api.expect(page.locator('[data-key="model.nn.kernel_size"]')).to_be_visible()
        sync_api.expect(page.locator('[data-key="model.nn.hidden_size"]')).to_have_count(1)
        sync_api.expect(page.locator('[data-key="model.nn.recurrent_dropout"]')).to_have_count(0)
        sync_api.expect(page.locator("#yaml")).to_contain_text("nn: {name: tcn}")
        browser.close()

    saved = yaml.safe_load((workdir / "dhbv_camels.yaml").read_text())
    assert yaml.safe_load((workdir / "dhbv_camels.yaml.bak").read_text()) == original
    expected = json.loads(json.dumps(original))
    expected["train"]["epochs"] = 5
    expected["train"]["optimizer"]["lr"] = 0.0005
    assert saved == expected
    assert key_order(saved) == key_order(original)
    assert isinstance(saved["train"]["grad_clip"], float)  # 1.0 stays 1.0 although JSON in a browser drops the .0
    result = subprocess.run(
        [sys.executable, "-m", "dmg.core.cli", "validate", "dhbv_camels.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "DMG_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout

    host = server.split("/?")[0].removeprefix("http://")
    assert request(server, f"/api/schema?token={token}")[0] == 200
    assert request(server, "/api/schema")[0] == 403
    assert request(server, f"/api/schema?token={token}", headers={"Origin": "http://evil.example"})[0] == 403
    assert request(server, f"/?token={token}", headers={"Host": f"evil.example:{host.split(':')[1]}"})[0] == 403
    status, reply = request(server, "/api/load", {"path": "../outside.yaml"}, {"X-Dmg-Token": token})
    assert status == 400 and "outside the working directory" in reply["error"]
