"""End-to-end runs through the `dmg` command with the real packages installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dmg.core import registry
from dmg.core.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "configs" / "quickstart.yaml"

SMALL = [
    "data.dataset.n_units=6",
    "data.dataset.years=2",
    "data.warmup=120",
    "data.train.start=2000-05-01",
    "data.train.end=2001-06-30",
    "data.test.start=2001-07-01",
    "data.test.end=2001-12-30",
    "train.epochs=2",
    "train.window=120",
    "train.batch_size=6",
    "train.iterations_per_epoch=2",
    "train.progress=false",
    "model.nn.hidden_size=8",
]


def sets(items):
    return [arg for item in items for arg in ("--set", item)]


def test_quickstart_cli_train_evaluate_simulate(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "dmg.core.cli", "train", str(QUICKSTART), "--run-dir", str(run), *sets(SMALL)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "nse" in result.stdout and "parameter recovery" in result.stdout
    report = json.loads((run / "evaluations" / "test_best" / "metrics.json").read_text())
    assert set(report["parameters"]) >= {"BETA", "FC", "route_a"}
    result = subprocess.run(
        [sys.executable, "-m", "dmg.core.cli", "simulate", str(run), "--start", "2001-01-01", "--name", "s"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert any((run / "simulations").glob("s.*"))


def test_cli_errors_have_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dmg.core.cli", "train", str(QUICKSTART), "--set", "train.optimiser.lr=0.1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "did you mean 'train.optimizer'" in result.stderr


@pytest.mark.parametrize("network", sorted(registry.entries("dmg.nn")))
def test_every_network_trains_in_a_delta_model(tmp_path, network, capsys):
    from dmg.core.config import component_model

    options = component_model("dmg.nn", network).model_fields
    small = {"hidden_size": 8, "hidden_sizes": "[8]", "d_model": 8, "n_heads": 2, "grid_size": 4}
    chosen = ", ".join(f"{k}: {v}" for k, v in small.items() if k in options)
    items = [i for i in SMALL if not i.startswith("model.nn")] + [f"model.nn={{name: {network}, {chosen}}}"]
    code = main(["train", str(QUICKSTART), "--run-dir", str(tmp_path / network), *sets(items)])
    assert code == 0, capsys.readouterr().err
    log = (tmp_path / network / "log.csv").read_text().splitlines()
    assert len(log) == 3


@pytest.mark.parametrize("variant", ["hbv", "hbv_1_1p", "hbv_2"])
def test_every_hbv_variant_trains_with_routing(tmp_path, variant, capsys):
    items = [*SMALL, f"model.physics.members.runoff.name={variant}"]
    if variant == "hbv_2":
        items += [
            "data.roles.attributes={upstream_area: area, elevation: elevation}",
            "model.physics.members.runoff.warmup_mode=inline",
            "model.nn={name: lstm_mlp}",
            "model.couplings=[{name: parameter_learning}]",
        ]
        items = [i for i in items if not i.startswith("model.nn.hidden_size")]
    code = main(["train", str(QUICKSTART), "--run-dir", str(tmp_path / variant), *sets(items)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / variant / "evaluations" / "test_best" / "metrics.json").read_text())
    assert metrics["targets"]["Q"]["summary"]["nse"]["median"] is not None


@pytest.mark.parametrize("group", registry.GROUPS)
def test_every_registered_component_loads(group):
    for name in registry.entries(group):
        assert registry.get(group, name) is not None
