"""Benchmark results carry the same provenance record as run folders (dmg.core.provenance)."""

from __future__ import annotations

import importlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def engine_speed(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmark imports its sibling modules
    module = importlib.import_module("engine_speed")
    yield module
    sys.modules.pop("engine_speed", None)


def test_the_minibatch_json_holds_the_provenance_record(engine_speed, tmp_path, monkeypatch):
    monkeypatch.setattr(engine_speed, "minibatch_seconds", lambda backend, threads: 0.25)
    path = tmp_path / "minibatch.json"
    engine_speed.run_minibatch(["eager"], [1], None, str(path))
    recorded = json.loads(path.read_text())["versions"]
    assert recorded["dmg"]["dmg-core"] == version("dmg-core")
    assert recorded["dmg"]["dmg-hydro-adapter"] == version("dmg-hydro-adapter")
    assert {"torch", "numpy", "pydantic", "hydrodl2"} <= set(recorded["packages"])
    assert {"python", "platform", "machine", "git"} <= set(recorded)


def test_every_benchmark_writing_json_records_provenance():
    """A benchmark that writes a JSON result file takes its versions from dmg.core.provenance."""
    for script in BENCHMARKS.glob("*.py"):
        text = script.read_text()
        if "json.dumps" in text and ".write_text(" in text:
            assert "provenance" in text, f"{script.name} writes JSON results without the provenance record"
