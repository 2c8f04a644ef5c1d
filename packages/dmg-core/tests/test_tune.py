"""`dmg tune`: a tiny study end to end, continued after an interruption, and its errors."""

from __future__ import annotations

import csv

import pytest
import yaml

from dmg.core.cli import main
from dmg.core.config import SearchRange, TuneConfig, load_config

optuna = pytest.importorskip("optuna")


def _study_config(tiny_run, **tune):
    config = tiny_run.config()
    config["train"]["epochs"] = 3
    config["tune"] = {
        "space": {
            "train.optimizer.lr": {"low": 0.001, "high": 0.1, "log": True},
            "model.nn.hidden_size": {"low": 2, "high": 8, "step": 2},
            "train.grad_clip": {"choices": [0.5, 1.0]},
        },
        "warmup_epochs": 1,
        **tune,
    }
    return tiny_run.write(config, "tune.yaml")


def _trials(study):
    with (study / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_a_tiny_study_runs_and_continues(tiny_run, tmp_path, capsys):
    cfg = _study_config(tiny_run)
    study = tmp_path / "study"
    assert main(["tune", cfg, "--trials", "3", "--study-dir", str(study)]) == 0
    out = capsys.readouterr().out
    assert "best valid loss" in out and "best config:" in out
    rows = _trials(study)
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert all(r["state"] in ("complete", "pruned") for r in rows)
    assert {2, 4, 6, 8} >= {int(r["model.nn.hidden_size"]) for r in rows if r["model.nn.hidden_size"]}
    best = load_config(study / "best.yaml")
    finished = [r for r in rows if r["state"] == "complete"]
    winner = min(finished, key=lambda r: float(r["valid_loss"]))
    assert best.train.optimizer.lr == pytest.approx(float(winner["train.optimizer.lr"]))
    assert (study / "trial_0000" / "checkpoints" / "best.pt").is_file()
    assert (study / "plots" / "history.png").is_file()

    # a process killed in the middle of a trial leaves it running in the study: it is marked failed
    stored = optuna.load_study(study_name="dmg", storage=f"sqlite:///{study / 'study.db'}")
    stored.ask()
    assert main(["tune", cfg, "--trials", "5", "--study-dir", str(study)]) == 0
    rows = _trials(study)
    assert [r["state"] for r in rows].count("fail") == 1
    assert sum(r["state"] in ("complete", "pruned") for r in rows) == 5


def test_tune_needs_a_space_and_a_validation_period(tiny_run, capsys):
    config = tiny_run.config()
    assert main(["tune", tiny_run.write(config, "no_space.yaml")]) == 2
    assert "tune.space" in capsys.readouterr().err
    config["tune"] = {"space": {"train.optimizer.lr": {"low": 0.001, "high": 0.1}}}
    del config["data"]["valid"]
    assert main(["tune", tiny_run.write(config, "no_valid.yaml")]) == 2
    assert "data.valid" in capsys.readouterr().err


def test_a_key_outside_the_config_is_named(tiny_run, capsys):
    config = tiny_run.config()
    config["tune"] = {"space": {"train.optimiser.lr": {"low": 0.001, "high": 0.1}}}
    assert main(["tune", tiny_run.write(config, "typo.yaml")]) == 2
    err = capsys.readouterr().err
    assert "train.optimiser" in err and "tune.space.train.optimiser.lr" in err


def test_search_ranges_are_checked():
    assert SearchRange(low=2, high=8, step=2).is_integer
    assert not SearchRange(low=0.001, high=0.1, log=True).is_integer
    for bad in ({"low": 1.0}, {"low": 2, "high": 1}, {"low": 0.0, "high": 1.0, "log": True}, {"choices": []}):
        with pytest.raises(ValueError):
            SearchRange(**bad)
    written = yaml.safe_load(
        "space: {model.nn.hidden_size: {low: 2, high: 8}, train.optimizer.lr: {low: 1, high: 5.0}}"
    )
    space = TuneConfig.model_validate(written).space
    assert space["model.nn.hidden_size"].is_integer and not space["train.optimizer.lr"].is_integer
