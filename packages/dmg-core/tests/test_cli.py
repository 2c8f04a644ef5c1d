"""The `dmg` command line end to end on a small model: train, evaluate, simulate, resume, errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import Field
from torch import nn

from dmg.core import Batch, ConfigError, checkpoints, registry
from dmg.core.cli import main
from dmg.core.components import SELECTS_END, SELECTS_START, SELECTS_UNITS, NetworkConfig
from dmg.core.data import ArrayDataset
from dmg.core.data.sources import NpzDataset
from dmg.core.io import atomic_write_text
from dmg.core.runfolder import RunFolder
from dmg.core.testing.models import ToyReservoir


class ToyNet(nn.Module):
    """Pointwise two-layer network on [time, unit, features]."""

    input_kind = "sequence"
    output_kind = "single"

    class Config(NetworkConfig):
        hidden_size: int = Field(16, ge=1, description="Hidden width.")

    def __init__(self, n_inputs: int, n_outputs: int, hidden_size: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_inputs, hidden_size), nn.Tanh(), nn.Linear(hidden_size, n_outputs))

    @classmethod
    def from_config(cls, config, *, n_inputs, n_outputs, n_static=0):
        return cls(n_inputs, n_outputs, config.hidden_size)

    def forward(self, x):
        return self.net(x)


@pytest.fixture(autouse=True)
def toy_components():
    registry.register("dmg.physics", "toy_reservoir", ToyReservoir)
    registry.register("dmg.nn", "toy_net", ToyNet)
    yield
    registry.unregister("dmg.physics", "toy_reservoir")
    registry.unregister("dmg.nn", "toy_net")


def simulate_dataset(n_units: int = 8, years: int = 3, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + 365 * years)
    n_time = dates.size
    p = (rng.random((n_units, n_time)) < 0.35) * rng.exponential(5.0, (n_units, n_time))
    doy = np.arange(n_time)
    pet = np.broadcast_to(2.5 + 2.0 * np.sin(2 * np.pi * doy / 365.0), (n_units, n_time)).copy()
    wetness = np.linspace(0.0, 1.0, n_units)
    k = 0.1 + 0.3 * wetness
    model = ToyReservoir()
    out = model(
        {"P": torch.tensor(p.T, dtype=torch.float32), "PET": torch.tensor(pet.T, dtype=torch.float32)},
        {"k": torch.tensor(k, dtype=torch.float32)[:, None]},
    )
    q = out["Q"].numpy().T
    q[:, ::17] = np.nan  # gaps in the observations are masked, not errors
    return ArrayDataset.from_dicts(
        {"P": p, "PET": pet, "Q": q},
        [f"unit{i:02d}" for i in range(n_units)],
        dates,
        attributes={"wetness": wetness},
        units={"P": "mm/day", "PET": "mm/day", "Q": "mm/day"},
    )


def write_config(tmp_path, dataset_path="data.npz", **changes) -> str:
    config = {
        "seed": 3,
        "data": {
            "dataset": {"name": "npz", "path": dataset_path},
            "roles": {
                "forcings": {"P": "P", "PET": "PET"},
                "nn_inputs": ["P", "PET"],
                "nn_static": ["wetness"],
                "targets": {"Q": "Q"},
                "transforms": {"P": "log1p"},
            },
            "warmup": 60,
            "train": {"start": "2000-03-01", "end": "2001-12-31"},
            "valid": {"start": "2002-01-01", "end": "2002-06-30"},
            "test": {"start": "2002-07-01", "end": "2002-12-31"},
        },
        "model": {
            "physics": {"name": "toy_reservoir"},
            "nn": {"name": "toy_net", "hidden_size": 16},
            "couplings": [{"name": "parameter_learning", "learn": ["k"]}],
        },
        "train": {
            "epochs": 6,
            "batch_size": 8,
            "window": 120,
            "iterations_per_epoch": 12,
            "optimizer": {"name": "adam", "lr": 0.02},
            "loss": {"name": "nse"},
            "progress": False,
        },
        "evaluate": {"metrics": ["nse", "kge", "rmse"]},
        "output": {"root": str(tmp_path / "runs"), "predictions": "npz"},
    }
    for key, value in changes.items():
        node = config
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
def setup(tmp_path):
    simulate_dataset().save(tmp_path / "data.npz")
    return tmp_path


def test_train_evaluate_simulate_end_to_end(setup, capsys):
    tmp = setup
    cfg = write_config(tmp)
    assert main(["validate", cfg]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["train", cfg, "--run-dir", str(tmp / "run1")]) == 0
    printed = capsys.readouterr().out
    assert "nse" in printed and "run folder" in printed
    run = tmp / "run1"
    for name in (
        "config.yaml",
        "normalizer.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "log.csv",
        "evaluations/test_best/metrics.json",
        "evaluations/test_best/metrics.csv",
        "evaluations/test_best/predictions.npz",
    ):
        assert (run / name).is_file(), name
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 7 and log[0].startswith("epoch,train_loss,valid_loss")
    losses = [float(line.split(",")[1]) for line in log[1:]]
    assert losses[-1] < 0.5 * losses[0]
    results = run / "evaluations" / "test_best"
    assert f"results: {results}" in printed
    metrics = json.loads((results / "metrics.json").read_text())["targets"]["Q"]
    assert metrics["summary"]["nse"]["median"] > 0.8
    assert set(metrics["per_unit"]) == {f"unit{i:02d}" for i in range(8)}
    with (results / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["unit"] for r in rows] == [f"unit{i:02d}" for i in range(8)]
    assert list(rows[0]) == ["unit", "Q_nse", "Q_kge", "Q_rmse"]
    assert float(rows[3]["Q_nse"]) == pytest.approx(metrics["per_unit"]["unit03"]["nse"])
    if importlib.util.find_spec("matplotlib") is not None:
        assert (results / "plots" / "test_metric_cdf.png").is_file()
        assert (results / "plots" / "test_series_unit00.png").is_file()
        assert (results / "plots" / "test_parameters.png").is_file()
    saved = np.load(results / "predictions.npz")
    assert saved["Q"].shape == (183, 8) and str(saved["dates"][0]) == "2002-07-01"

    moved = tmp / "elsewhere" / "run1"
    shutil.move(str(run), str(moved))  # a run folder is relocatable
    assert main(["evaluate", str(moved), "--period", "valid", "--checkpoint", "last"]) == 0
    assert (moved / "evaluations" / "valid_last" / "metrics.json").is_file()
    assert (moved / "evaluations" / "test_best" / "metrics.json").is_file()  # not overwritten
    outside = tmp / "epoch.pt"
    shutil.copyfile(moved / "checkpoints" / "last.pt", outside)
    assert main(["evaluate", str(moved), "--checkpoint", str(outside)]) == 0
    report = json.loads((moved / "evaluations" / "test_file_epoch" / "metrics.json").read_text())
    assert report["checkpoint"] == f"file {outside}"
    assert "valid period 2002-01-01 to 2002-06-30" in capsys.readouterr().out
    assert main(["simulate", str(moved), "--start", "2002-02-01", "--end", "2002-12-31", "--name", "late"]) == 0
    sim = np.load(moved / "simulations" / "late.npz")
    assert sim["Q"].shape == (333, 8) and "Q_observed" not in sim


@pytest.mark.parametrize("checkpoint_every", [None, 2])
def test_resume_after_interruption_matches_uninterrupted_run(setup, monkeypatch, capsys, checkpoint_every):
    tmp = setup
    cfg = write_config(tmp, train__checkpoint_every=checkpoint_every)
    assert main(["train", cfg, "--run-dir", str(tmp / "straight"), "--no-evaluate"]) == 0

    import dmg.core.training as training

    real = training.make_batch
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 12 * 3 + 3 + 7:  # 3 epochs of 12 batches and 1 validation each, then batch 7 of epoch 4
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "make_batch", flaky)
    assert main(["train", cfg, "--run-dir", str(tmp / "killed"), "--no-evaluate"]) == 130
    assert "--resume" in capsys.readouterr().err
    resumed_calls = {"n": 0}

    def counting(*args, **kwargs):
        resumed_calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "make_batch", counting)
    assert main(["train", "--resume", str(tmp / "killed"), "--no-evaluate"]) == 0
    # from the end of epoch 3, or from batch 6 of epoch 4 with checkpoints every 2 batches; plus 3 validations
    assert resumed_calls["n"] == (72 - 36 - (6 if checkpoint_every else 0)) + 3
    a = torch.load(tmp / "straight" / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp / "killed" / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (tmp / "killed" / "log.csv").read_text().count("\n") == 7


def _error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_typo_in_config_names_key_and_closest_valid_key(setup, capsys):
    cfg = write_config(setup, train__epoch=3)
    assert main(["train", cfg]) == 2
    err = _error(capsys)
    assert "unknown key 'train.epoch'" in err and "did you mean 'train.epochs'" in err and "run.yaml" in err


def test_typo_in_component_option_names_component_key(setup, capsys):
    cfg = write_config(setup)
    assert main(["validate", cfg, "--set", "model.nn.hiden_size=8"]) == 2
    err = _error(capsys)
    assert "model.nn.hiden_size" in err and "hidden_size" in err


def test_unknown_component_lists_known_ones(setup, capsys):
    cfg = write_config(setup)
    assert main(["validate", cfg, "--set", "model.physics.name=toy_reservoirr"]) == 2
    err = _error(capsys)
    assert "model.physics.name" in err and "Did you mean 'toy_reservoir'" in err


def test_missing_data_file_is_named(setup, capsys):
    cfg = write_config(setup, dataset_path="nowhere.npz")
    assert main(["train", cfg]) == 2
    err = _error(capsys)
    assert "nowhere.npz" in err and "does not exist" in err


def test_nan_in_forcings_names_variable_unit_and_date(setup, capsys):
    ds = simulate_dataset()
    data = ds.data.copy()
    data[2, 400, ds.variables.index("P")] = np.nan
    ArrayDataset(data, ds.variables, ds.unit_ids, ds.dates, ds.attributes, ds.attribute_names).save(setup / "data.npz")
    cfg = write_config(setup)
    assert main(["train", cfg]) == 2
    err = _error(capsys)
    assert "forcing 'P'" in err and "'unit02'" in err and "2001-02-04" in err


def test_wrong_shaped_attribute_is_named(setup, capsys):
    ds = simulate_dataset()
    np.savez(
        setup / "bad.npz",
        data=ds.data,
        variables=np.array(ds.variables),
        unit_ids=np.array(ds.unit_ids),
        dates=ds.dates,
        attributes=np.zeros((3, 1), dtype=np.float32),
        attribute_names=np.array(["wetness"]),
    )
    cfg = write_config(setup, dataset_path="bad.npz")
    assert main(["validate", cfg]) == 2
    err = _error(capsys)
    assert "attribute" in err and "bad.npz" in err


def test_run_folder_is_never_overwritten(setup, capsys):
    cfg = write_config(setup, train__epochs=1)
    assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 0
    assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 2
    assert "already exists" in _error(capsys)


def test_schema_and_list_include_registered_components(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    text = json.dumps(schema)
    assert "toy_reservoir" in text and "hidden_size" in text and "additionalProperties" in text
    assert main(["list", "physics"]) == 0
    assert "toy_reservoir" in capsys.readouterr().out
    assert main(["schema", "--markdown"]) == 0
    assert "`train.epochs`" in capsys.readouterr().out


def test_overrides_parse_yaml_values():
    from dmg.core.config import apply_override

    data = {"train": {"epochs": 1}, "model": {"couplings": [{"name": "parameter_learning"}]}}
    apply_override(data, "train.epochs=5")
    apply_override(data, "train.optimizer.lr=1e-3")
    apply_override(data, "model.couplings.0.learn=[k]")
    assert data["train"] == {"epochs": 5, "optimizer": {"lr": 1e-3}}
    assert data["model"]["couplings"][0]["learn"] == ["k"]


def test_early_stopping_stops_after_patience_and_keeps_the_best(setup, monkeypatch, capsys):
    import dmg.core.training as training

    scores = iter([0.5, 0.4, 0.45, 0.47, 0.49, 0.3])
    monkeypatch.setattr(training.Trainer, "validate", lambda self: next(scores))
    cfg = write_config(setup, train__early_stopping={"patience": 3})
    assert main(["train", cfg, "--run-dir", str(setup / "es"), "--no-evaluate"]) == 0
    rows = (setup / "es" / "log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[2] for r in rows] == ["0.5", "0.4", "0.45", "0.47", "0.49"]  # stopped before epoch 6
    state = torch.load(setup / "es" / "checkpoints" / "best.pt", weights_only=False)["train_state"]
    assert state["best_epoch"] == 2 and state["epoch"] == 2


def test_non_finite_losses_are_skipped_and_reported(setup, monkeypatch, capsys):
    import dmg.core.training as training

    real = training.target_loss
    calls = {"n": 0}

    def sometimes_nan(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] % 4 == 0 else loss

    monkeypatch.setattr(training, "target_loss", sometimes_nan)
    cfg = write_config(setup, train__epochs=1, train__progress=True)
    assert main(["train", cfg, "--run-dir", str(setup / "nan"), "--no-evaluate"]) == 0
    row = (setup / "nan" / "log.csv").read_text().splitlines()[1].split(",")
    assert row[4] == "3" and "skipped 3 non-finite" in capsys.readouterr().out
    weights = torch.load(setup / "nan" / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_all_non_finite_losses_end_with_a_clear_error(setup, monkeypatch, capsys):
    import dmg.core.training as training

    real = training.target_loss
    monkeypatch.setattr(training, "target_loss", lambda *args: real(*args) * float("nan"))
    cfg = write_config(setup, train__epochs=1, train__max_nonfinite=5)
    assert main(["train", cfg, "--run-dir", str(setup / "nan"), "--no-evaluate"]) == 2
    err = _error(capsys)
    assert "non-finite in 5 consecutive minibatches" in err and "train.optimizer.lr" in err


def test_a_network_shared_by_two_couplings_is_sized_from_both(setup):
    from dmg.core.build import build_model
    from dmg.core.config import load_config
    from dmg.core.couplings import CouplingContext

    couplings = [{"name": "parameter_learning", "learn": ["k"]}, {"name": "parameter_learning", "learn": ["c"]}]
    model = build_model(load_config(write_config(setup, model__couplings=couplings)))
    assert model.nn.net[-1].out_features == 2
    assert [c.channels for c in model.couplings] == [(slice(0, 1),), (slice(1, 2),)]
    batch_inputs = torch.randn(20, 3, 3)
    batch = Batch(forcings={"P": torch.rand(20, 3), "PET": torch.rand(20, 3)}, nn_inputs=batch_inputs)
    ctx = CouplingContext(batch=batch, networks=model.networks, phy_model=model.phy_model)
    for c in model.couplings:
        c.before(ctx)
    raw = model.nn(batch_inputs)
    k, c_ = model.phy_model.parameter_spec["k"], model.phy_model.parameter_spec["c"]
    assert torch.allclose(ctx.params["k"][..., 0], k.scale(torch.sigmoid(raw[-1, :, 0])))
    assert torch.allclose(ctx.params["c"][..., 0], c_.scale(torch.sigmoid(raw[-1, :, 1])))
    mixed = [{"name": "parameter_learning", "learn": ["k"]}, {"name": "process_replacement", "slot": "evaporation"}]
    with pytest.raises(ConfigError, match=r"couplings sharing network 'default' need different inputs"):
        build_model(load_config(write_config(setup, model__couplings=mixed)))


def test_older_config_keys_fail_saying_what_to_write(setup):
    from dmg.core.config import load_config

    old = write_config(setup, model__physics={"name": "toy_reservoir", "backend": "checkpoint"})
    with pytest.raises(ConfigError, match=r"model.physics.backend: the engine backend is chosen per run now.*engine:"):
        load_config(old)
    old = write_config(setup, model__physics={"name": "toy_reservoir", "backend_options": {"chunk_size": 8}})
    with pytest.raises(ConfigError, match=r"engine: \{memory: recompute, chunk_size: 32\}"):
        load_config(old)
    old = write_config(setup, model__couplings=[{"kind": "parameter_learning"}])
    with pytest.raises(ConfigError, match="write `name: parameter_learning` instead of `kind: parameter_learning`"):
        load_config(old)


def test_engine_section_builds_the_engine_and_rejects_unknown_backends(setup):
    from dmg.core.build import build_model
    from dmg.core.config import load_config
    from dmg.core.engine import Recompute

    config = load_config(write_config(setup), ["engine.memory=recompute", "engine.chunk_size=16"])
    model = build_model(config)
    assert model.engine.memory == Recompute(16) and model.engine.backend.name == "EagerBackend"
    with pytest.raises(ConfigError, match=r"engine.backend.name: no backends component named 'eagr'.*'eager'"):
        load_config(write_config(setup), ["engine.backend.name=eagr"])


# --------------------------------------------------------------------------- run folders a user can trust


@pytest.fixture
def trained(setup, capsys):
    """A finished three-epoch run (no evaluation yet)."""
    cfg = write_config(setup, train__epochs=3, train__iterations_per_epoch=4)
    assert main(["train", cfg, "--run-dir", str(setup / "run"), "--no-evaluate"]) == 0
    capsys.readouterr()
    return setup / "run"


def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, captured.err
    return lines[0]


def _tensors_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- silent wrong results


def test_a_stale_best_checkpoint_is_refused_then_repaired_by_resume(trained, capsys):
    folder = RunFolder(trained)
    last = checkpoints.load(folder.checkpoint("last"))
    assert last["train_state"]["best_epoch"] == 3  # the loss fell every epoch
    stale = dict(last, train_state={**last["train_state"], "epoch": 2})
    stale["model"] = {k: v + 1 for k, v in last["model"].items()}
    checkpoints.save(stale, folder.checkpoint("best"))  # as a kill inside the last best.pt write left it
    assert main(["evaluate", str(trained)]) == 2
    assert "best.pt holds epoch 2 but the run's best epoch is 3" in _one_error(capsys)
    assert main(["train", "--resume", str(trained), "--no-evaluate"]) == 0
    repaired = checkpoints.load(folder.checkpoint("best"))
    assert repaired["train_state"]["epoch"] == 3 and _tensors_equal(repaired["model"], last["model"])
    assert main(["evaluate", str(trained)]) == 0


def test_best_is_written_before_last(setup, monkeypatch, capsys):
    from dmg.core.training import Trainer

    order = []
    real = Trainer.save_checkpoint
    monkeypatch.setattr(Trainer, "save_checkpoint", lambda self, name: order.append(name) or real(self, name))
    cfg = write_config(setup, train__epochs=2, train__iterations_per_epoch=2)
    assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 0
    assert order[:2] == ["best", "last"]


def _dataset_with_variable(setup, name, change) -> None:
    data = simulate_dataset()
    values = data.data.copy()
    values[:, :, data.variable_index(name)] = change(values[:, :, data.variable_index(name)].copy())
    ArrayDataset(
        values, data.variables, data.unit_ids, data.dates, data.attributes, data.attribute_names, data.units
    ).save(setup / "data.npz")


def test_training_on_no_observation_is_refused(setup, capsys):
    _dataset_with_variable(setup, "Q", lambda q: np.full_like(q, np.nan))
    cfg = write_config(setup)
    assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 2
    assert "data.train: the target Q (variable 'Q') has no observation" in _one_error(capsys)
    assert not (setup / "r").exists()
    assert main(["validate", cfg]) == 2
    assert "has no observation" in _one_error(capsys)


def test_units_without_observations_are_named(setup, capsys):
    def two_empty(q):
        q[:2] = np.nan
        return q

    _dataset_with_variable(setup, "Q", two_empty)
    cfg = write_config(setup, train__epochs=1, train__iterations_per_epoch=2)
    with pytest.warns(UserWarning, match=r"2 of 8 units have no observation of Q .*: unit00, unit01"):
        assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 0


def test_evaluate_says_when_it_falls_back_to_last(trained, capsys):
    RunFolder(trained).checkpoint("best").unlink()
    with pytest.warns(UserWarning, match="no best.pt"):
        assert main(["evaluate", str(trained)]) == 0
    assert "(last, as best.pt is missing checkpoint)" in capsys.readouterr().out
    report = json.loads((trained / "evaluations" / "test_last" / "metrics.json").read_text())
    assert report["checkpoint"] == "last, as best.pt is missing"


def test_a_huge_input_is_named_with_its_unit_and_date(setup, capsys):
    def spike(p):
        p[3, 400] = 1e30
        return p

    _dataset_with_variable(setup, "P", spike)
    cfg = write_config(setup, train__epochs=1, train__iterations_per_epoch=3, train__max_nonfinite=1, train__window=365)
    assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 2
    err = _one_error(capsys)
    assert "output Q reaches" in err and "at unit unit03" in err
    assert "forcing P (variable 'P', mm/day) = 1e+30 at unit unit03 on 2001-02-04" in err
    assert "usual causes" in err


# --------------------------------------------------------------------------- locking


def test_a_second_writer_is_refused_naming_the_holder(trained, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from dmg.core.runfolder import RunFolder
                with RunFolder({str(trained)!r}).lock("dmg train --resume"):
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        rows = (trained / "log.csv").read_text()
        assert main(["train", "--resume", str(trained), "--no-evaluate"]) == 2
        err = _one_error(capsys)
        assert f"is in use by process {holder.pid} (dmg train --resume)" in err
        assert main(["evaluate", str(trained)]) == 2
        assert (trained / "log.csv").read_text() == rows
    finally:
        holder.communicate("\n", timeout=30)
    assert main(["evaluate", str(trained)]) == 0  # released when the holder ends


# --------------------------------------------------------------------------- security


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_a_foreign_object_is_refused_and_runs_nothing(trained, capsys):
    marker = trained.parent / "pwned"
    path = RunFolder(trained).checkpoint("best")
    saved = torch.load(path, weights_only=True)
    saved["extra"] = _Planted(marker)
    torch.save(saved, path)
    assert main(["evaluate", str(trained)]) == 2
    err = _one_error(capsys)
    assert "holds Python objects other than tensors" in err and "refused" in err
    assert not marker.exists()


def test_checkpoints_load_with_weights_only(trained):
    saved = torch.load(RunFolder(trained).checkpoint("last"), weights_only=True)
    assert {"model", "optimizer", "sampler", "rng", "train_state", "format"} <= set(saved)


def test_simulate_names_stay_inside_the_run_folder(trained, tmp_path, capsys):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    for name in (str(victim), "../../x", "a/b", ".."):
        assert main(["simulate", str(trained), "--name", name]) == 2
        assert "give a plain file name" in _one_error(capsys)
    assert victim.read_text() == "keep me"
    assert not (trained.parent / "x.npz").exists()
    assert main(["simulate", str(trained), "--start", "2002-01-01", "--name", "s1"]) == 0
    capsys.readouterr()
    assert main(["simulate", str(trained), "--start", "2002-01-01", "--name", "s1"]) == 2
    assert "already exists" in _one_error(capsys) and "--overwrite" in capsys.readouterr().err + "--overwrite"
    assert main(["simulate", str(trained), "--start", "2002-01-01", "--name", "s1", "--overwrite"]) == 0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        mode = (tmp_path / "a.txt").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o666 & ~umask


def test_run_files_get_the_same_mode(trained):
    modes = {p.name: p.stat().st_mode & 0o777 for p in trained.rglob("*") if p.is_file() and p.name != ".lock"}
    assert len(set(modes.values())) == 1, modes


# --------------------------------------------------------------------------- clean errors


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[:1000]), "truncated or not a checkpoint"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "truncated or not a checkpoint"),
        (lambda p: p.write_bytes(np.random.default_rng(1).bytes(50)), "truncated or not a checkpoint"),
        (lambda p: torch.save({"weights": torch.zeros(2)}, p), "it has no model"),
        (lambda p: torch.save([1, 2], p), "holds a list"),
        (
            lambda p: torch.save({"model": {"net.0.weight": torch.zeros(3, 3)}}, p),
            "does not fit the run's model",
        ),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "simulate", "resume"])
def test_damaged_checkpoints_give_one_error_line(trained, capsys, damage, message, command):
    folder = RunFolder(trained)
    for name in ("best", "last"):
        damage(folder.checkpoint(name))
    args = {
        "evaluate": ["evaluate", str(trained)],
        "simulate": ["simulate", str(trained)],
        "resume": ["train", "--resume", str(trained), "--no-evaluate"],
    }[command]
    assert main(args) == 2
    err = _one_error(capsys)
    assert "checkpoints" in err
    assert message in err or (command == "resume" and "not a dmg training checkpoint" in err), err


def test_a_damaged_normalizer_gives_one_error_line(trained, capsys):
    (trained / "normalizer.json").write_text("{not json")
    assert main(["evaluate", str(trained)]) == 2
    assert "normalizer.json" in _one_error(capsys)


@pytest.mark.parametrize(
    "start, end, message",
    [("2002-05-01", "2002-02-01", "before start"), ("2002-13-45", None, "start"), ("yesterday", None, "start")],
)
def test_bad_simulation_dates_give_one_error_line(trained, capsys, start, end, message):
    args = ["simulate", str(trained), "--start", start] + (["--end", end] if end else [])
    assert main(args) == 2
    err = _one_error(capsys)
    assert message in err and "--start" in err


def test_schema_output_to_a_folder_is_an_error(tmp_path, capsys):
    assert main(["schema", "--output", str(tmp_path)]) == 2
    assert "is a folder" in _one_error(capsys)


def test_a_failed_write_names_the_file_and_keeps_the_previous_one(tmp_path):
    """A file-size limit makes writes fail as a full disk does; the previous checkpoint survives."""
    target = tmp_path / "last.pt"
    checkpoints.save({"model": {"w": torch.zeros(4)}}, target)
    before = target.read_bytes()
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, torch
        from dmg.core import checkpoints
        from dmg.core.errors import DmgError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            checkpoints.save({{"model": {{"w": torch.zeros(100_000)}}}}, {str(target)!r})
        except DmgError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert f"could not write {target}" in done.stdout and "the previous last.pt is intact" in done.stdout
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------- recovery


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed_or_restarted(setup, capsys):
    cfg = write_config(setup, train__epochs=1, train__iterations_per_epoch=2, output__name="early")
    assert main(["train", cfg, "--no-evaluate"]) == 0
    run = setup / "runs" / "early"
    shutil.rmtree(run / "checkpoints")
    (run / "log.csv").unlink()
    (run / ".normalizer.json.1234.tmp").write_text("half")
    assert main(["train", "--resume", str(run), "--no-evaluate"]) == 0  # from scratch
    assert RunFolder(run).checkpoint("last").is_file() and not list(run.glob("*.tmp"))
    shutil.rmtree(run / "checkpoints")
    capsys.readouterr()
    assert main(["train", cfg, "--no-evaluate"]) == 0  # the same output.name is reused
    assert f"run folder: {run}" in capsys.readouterr().out


def test_a_failed_start_leaves_nothing_behind(setup, monkeypatch, capsys):
    from dmg.core import workflows
    from dmg.core.errors import InputError

    def broken(*args, **kwargs):
        raise InputError("boom")

    monkeypatch.setattr(workflows, "Trainer", broken)
    cfg = write_config(setup, output__name="failed")
    assert main(["train", cfg, "--no-evaluate"]) == 2
    run = setup / "runs" / "failed"
    assert not run.exists() or [p.name for p in run.iterdir()] in ([], [".lock"])


def test_resume_rewrites_the_log_from_the_checkpoint(trained):
    rows = (trained / "log.csv").read_text()
    (trained / "log.csv").write_text(rows + rows.splitlines()[-1] + "\n")  # a row the checkpoint does not have
    assert main(["train", "--resume", str(trained), "--no-evaluate"]) == 0
    assert (trained / "log.csv").read_text() == rows


def test_ctrl_c_names_the_run_folder_to_resume(setup, monkeypatch, capsys):
    from dmg.core.training import Trainer

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    cfg = write_config(setup)
    assert main(["train", cfg, "--run-dir", str(setup / "r")]) == 130
    captured = capsys.readouterr()
    assert f"run folder: {setup / 'r'}" in captured.out
    assert f"dmg train --resume {setup / 'r'}" in captured.err


def test_a_closed_pipe_ends_quietly(tmp_path):
    done = subprocess.run(
        f"{sys.executable} -m dmg.core.cli schema | head -1", shell=True, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "{" and "Traceback" not in done.stderr


def test_the_command_line_restores_the_warning_format(setup, capsys):
    import warnings

    shown = warnings.formatwarning
    main(["validate", write_config(setup)])
    assert warnings.formatwarning is shown


def test_period_messages_name_the_period_key(setup, capsys):
    cfg = write_config(setup, data__test={"start": "2002-07-01", "end": "2004-12-31"})
    with pytest.warns(UserWarning, match=r"^data.test: the period 2002-07-01 to 2004-12-31 reaches past the data"):
        assert main(["validate", cfg]) == 0
    cfg = write_config(setup, data__test={"start": "2005-07-01", "end": "2005-12-31"})
    assert main(["validate", cfg]) == 2
    assert _one_error(capsys).startswith("error: data.test: ")


def test_validate_uses_the_warmup_the_data_allow(setup, capsys):
    cfg = write_config(setup, data__warmup=200, data__train={"start": "2000-02-01", "end": "2000-12-31"})
    assert main(["validate", cfg]) == 0
    assert "with 31 warm-up" in capsys.readouterr().out


# --------------------------------------------------------------------------- paths and simulation selections


def test_relative_paths_follow_where_they_are_written(setup, monkeypatch, capsys):
    (setup / "configs").mkdir()
    cfg = setup / "configs" / "run.yaml"
    cfg.write_text(Path(write_config(setup, dataset_path="../data.npz")).read_text())
    elsewhere = setup / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", str(cfg)]) == 0  # written in the file: from the file's folder
    capsys.readouterr()
    assert main(["validate", str(cfg), "--set", "data.dataset.path=../data.npz"]) == 0  # from the working directory
    capsys.readouterr()
    assert main(["validate", str(cfg), "--set", "data.dataset.path=data.npz"]) == 2
    err = _one_error(capsys)
    assert (
        f"{elsewhere / 'data.npz'}" in err and "data.dataset.path 'data.npz' is read from the working directory" in err
    )


def test_output_root_written_in_a_file_is_relative_to_it(setup):
    from dmg.core.config import load_config

    (setup / "configs").mkdir()
    cfg = setup / "configs" / "run.yaml"
    cfg.write_text(Path(write_config(setup, dataset_path="../data.npz", output__root="out")).read_text())
    assert load_config(cfg).output.root == setup / "configs" / "out"
    assert load_config(cfg, ["output.root=out"]).output.root == Path.cwd() / "out"


class SelectableNpz(NpzDataset):
    """An npz dataset whose options select units and dates, as a real collection's would."""

    class Config(NpzDataset.Config):
        units: list[str] | None = Field(None, description="Units to load.", json_schema_extra=SELECTS_UNITS)
        start: str | None = Field(None, description="First date.", json_schema_extra=SELECTS_START)
        end: str | None = Field(None, description="Last date.", json_schema_extra=SELECTS_END)

    def load(self) -> ArrayDataset:
        data = super().load()
        if self.config.units:
            data = data.select_units(self.config.units)
        return data.select_time(self.config.start, self.config.end)


def test_simulate_needs_only_units_and_dates(setup, capsys):
    registry.register("dmg.datasets", "selectable_npz", SelectableNpz)
    try:
        dataset = {"name": "selectable_npz", "path": "data.npz", "units": [f"unit0{i}" for i in range(6)]}
        dataset["end"] = "2002-06-30"
        cfg = write_config(
            setup, data__dataset=dataset, data__test={"start": "2002-01-01", "end": "2002-06-30"}, train__epochs=1
        )
        assert main(["train", cfg, "--run-dir", str(setup / "r"), "--no-evaluate"]) == 0
        capsys.readouterr()
        args = ["simulate", str(setup / "r"), "--units", "unit07", "--start", "2002-08-01", "--name", "late"]
        assert main(args) == 0, capsys.readouterr().err
        saved = np.load(setup / "r" / "simulations" / "late.npz")
        assert list(saved["unit_ids"]) == ["unit07"] and str(saved["dates"][0]) == "2002-08-01"
    finally:
        registry.unregister("dmg.datasets", "selectable_npz")


def test_a_seed_ensemble_trains_members_and_evaluates_their_mean(setup, capsys):
    cfg = write_config(setup, train__epochs=2, train__iterations_per_epoch=3, train__seeds=[0, 1])
    run = setup / "ens"
    assert main(["train", cfg, "--run-dir", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "member seed 0" in printed and "member seed 1, Q medians: nse" in printed
    report = json.loads((run / "evaluations" / "test_best" / "metrics.json").read_text())
    assert report["checkpoint"] == "mean of 2 seeds, best" and set(report["members"]) == {"0", "1"}
    ensemble = np.load(run / "evaluations" / "test_best" / "predictions.npz")["Q"]
    members = []
    for seed in (0, 1):
        assert main(["evaluate", str(run / "members" / f"seed_{seed}")]) == 0
        member = run / "members" / f"seed_{seed}" / "evaluations" / "test_best"
        members.append(np.load(member / "predictions.npz")["Q"])
        nse = json.loads((member / "metrics.json").read_text())["targets"]["Q"]["summary"]["nse"]
        assert report["members"][str(seed)]["Q"]["nse"] == pytest.approx(nse)
    assert not np.allclose(members[0], members[1])  # the seeds made different members
    np.testing.assert_allclose(ensemble, (members[0] + members[1]) / 2, rtol=1e-6)

    weights = torch.load(run / "members" / "seed_1" / "checkpoints" / "last.pt", weights_only=True)["model"]
    shutil.rmtree(run / "members" / "seed_1")
    assert main(["train", "--resume", str(run), "--no-evaluate"]) == 0  # the missing member is trained again
    again = torch.load(run / "members" / "seed_1" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    capsys.readouterr()
    assert main(["simulate", str(run)]) == 2
    assert "is a seed ensemble" in _one_error(capsys)
