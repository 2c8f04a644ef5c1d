"""The engine benchmark's registered models build and run (no speed is checked here)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def engine_speed():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))  # the benchmark imports its sibling modules
        module = importlib.import_module("engine_speed")
        yield module
    sys.modules.pop("engine_speed", None)


@pytest.mark.parametrize("name", ["hbv", "hbv2", "hbv2h", "hbv21h", "mts", "mts21h"])
def test_every_model_runs_forward_and_backward_through_its_couplings(engine_speed, name):
    case = engine_speed.make_case(name, units=2, window=4)
    assert case.n_time == engine_speed.MODELS[name].warmup + 4
    run, model = engine_speed.dmg_runner(case, engine_speed.make_engine("eager"), grad=True)
    q = run()
    assert q.shape == (4, 2) and torch.isfinite(q).all()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.nn.parameters())


def test_the_multi_timescale_model_counts_its_daily_spinup_in_days(engine_speed):
    model = engine_speed.MODELS["mts"]
    assert model.model_steps(168) == engine_speed.PUBLISHED_DAYS + 168 + engine_speed.HOURLY_WARMUP
    assert engine_speed.MODELS["hbv2"].model_steps(365) == 730


def test_minibatch_results_name_their_model(engine_speed, tmp_path, monkeypatch):
    monkeypatch.setattr(engine_speed, "minibatch_seconds", lambda backend, threads, model="hbv": 0.25)
    path = tmp_path / "minibatch.json"
    engine_speed.run_minibatch(["eager"], [1], None, str(path), ("hbv", "mts"))
    rows = json.loads(path.read_text())["minibatch"]
    assert [r["model"] for r in rows] == ["hbv", "mts"]
    assert set(engine_speed.MINIBATCHES) >= {"hbv", "hbv2", "mts"}
