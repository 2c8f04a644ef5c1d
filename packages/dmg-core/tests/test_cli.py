"""The `dmg` command line end to end on a small model: train, evaluate, simulate, resume, errors."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from pydantic import Field
from torch import nn

from dmg.core import Batch, ConfigError, registry
from dmg.core.cli import main
from dmg.core.components import NetworkConfig
from dmg.core.data import ArrayDataset
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
        "metrics.json",
        "predictions_test.npz",
    ):
        assert (run / name).is_file(), name
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 7 and log[0].startswith("epoch,train_loss,valid_loss")
    losses = [float(line.split(",")[1]) for line in log[1:]]
    assert losses[-1] < 0.5 * losses[0]
    metrics = json.loads((run / "metrics.json").read_text())["test"]["targets"]["Q"]
    assert metrics["summary"]["nse"]["median"] > 0.8
    assert set(metrics["per_unit"]) == {f"unit{i:02d}" for i in range(8)}
    if importlib.util.find_spec("matplotlib") is not None:
        assert (run / "plots" / "test_metric_cdf.png").is_file()
        assert (run / "plots" / "test_series_unit00.png").is_file()
        assert (run / "plots" / "test_parameters.png").is_file()
    saved = np.load(run / "predictions_test.npz")
    assert saved["Q"].shape == (183, 8) and str(saved["dates"][0]) == "2002-07-01"

    moved = tmp / "elsewhere" / "run1"
    shutil.move(str(run), str(moved))  # a run folder is relocatable
    assert main(["evaluate", str(moved), "--period", "valid", "--checkpoint", "last"]) == 0
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
