"""Bad config files and values: each is a ConfigError naming the file, key or value at fault."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest

from dmg.core.cli import main
from dmg.core.config import load_config, make_period, parse_yaml
from dmg.core.errors import ConfigError

# --------------------------------------------------------------------------- the file itself


def test_random_bytes_are_not_a_config(tmp_path):
    path = tmp_path / "noise.yaml"
    path.write_bytes(np.random.default_rng(0).bytes(10_000_000))
    with pytest.raises(ConfigError, match=rf"config file {re.escape(str(path))} is not UTF-8 text .*not a YAML config"):
        load_config(path)


def test_latin1_text_is_not_a_config(tmp_path, tiny_run):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        f"# débit\nseed: 0\ndata: {{dataset: {{name: npz, path: {tiny_run.dataset_path}}}}}\n".encode("latin-1")
    )
    with pytest.raises(ConfigError, match=r"latin1\.yaml is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        load_config(path)


def test_a_folder_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match=rf"config file {re.escape(str(tmp_path))} is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("seed: 0\nseed: 1\n", "seed", 2, 1),
        ("train:\n  epochs: 3\n  batch_size: 2\n  epochs: 4\n", "epochs", 4, 2),
        ("model:\n  physics: {name: a, nmul: 2, nmul: 3}\n", "nmul", 2, 2),
    ],
)
def test_a_key_repeated_in_one_mapping_is_refused(tmp_path, text, key, line, first):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    want = rf"config file {re.escape(str(path))}, line {line}: key '{key}' appears twice .*first on line {first}"
    with pytest.raises(ConfigError, match=want):
        load_config(path)


def test_merge_keys_may_be_overridden():
    text = "a: &x {k: 1, j: 2}\nb: {<<: *x, k: 3}\n"
    assert parse_yaml(text, "test") == {"a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}}


def test_a_malformed_unquoted_date_names_its_key(tiny_run):
    text = Path(tiny_run.write(tiny_run.config())).read_text()
    path = tiny_run.folder / "bad_date.yaml"
    path.write_text(text.replace("start: '2000-01-11'", "start: 2000-13-45"))
    with pytest.raises(ConfigError, match=r"'data\.train\.start': .*month value is outside.*'2000-13-45'"):
        load_config(path)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=true", r"'train\.epochs': expected an integer, not a boolean \(got True\)"),
        ("train.optimizer.lr=true", r"'train\.optimizer\.lr': expected a number, not a boolean"),
        ("data.warmup=false", r"'data\.warmup': expected an integer, not a boolean"),
        ("model.physics.nmul=true", r"'model\.physics\.nmul': expected an integer, not a boolean"),
        ("model.nn.hidden_size=true", r"'model\.nn\.hidden_size': expected an integer, not a boolean"),
        ("data.train.start=2000", r"'data\.train\.start': expected a date \(YYYY-MM-DD\), not a number"),
        ("train.optimizer.lr=.inf", r"'train\.optimizer\.lr': Input should be a finite number"),
        ("train.grad_clip=.nan", r"'train\.grad_clip': Input should be a finite number"),
    ],
)
def test_booleans_numbers_and_non_finite_values_of_the_wrong_kind(tiny_run, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_run.write(tiny_run.config()), [override])


def test_booleans_stay_booleans(tiny_run):
    config = load_config(tiny_run.write(tiny_run.config()), ["train.progress=true", "evaluate.plots=false"])
    assert config.train.progress is True and config.evaluate.plots is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.optimizer.options.betass=[0.9, 0.99]"], r"unknown option 'betass' of optimizer 'adam'; did you mean "),
        (["train.optimizer.options.lr=0.1"], r"'train\.optimizer\.options': 'lr' is a key of its own"),
        (["train.optimizer.options.weight_decay=0.1"], r"'weight_decay' is a key of its own"),
        (["train.optimizer.options.betas=[3, 0.9]"], r"optimizer 'adam' refuses these options: Invalid beta"),
        (
            ["train.scheduler.name=step", "train.scheduler.options.step=3"],
            r"'train\.scheduler\.options': unknown option 'step' of scheduler 'step'; did you mean 'step_size'\? "
            r"\(valid options: gamma, last_epoch, step_size",  # torch before 2.2 also lists 'verbose'
        ),
        (["train.scheduler.name=plateau", "train.scheduler.options.factor=2"], r"scheduler 'plateau' refuses"),
    ],
)
def test_optimizer_and_scheduler_options_are_checked(tiny_run, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_run.write(tiny_run.config()), overrides)


def test_valid_optimizer_and_scheduler_options_pass(tiny_run):
    overrides = [
        "train.optimizer.options.betas=[0.8, 0.9]",
        "train.optimizer.options.amsgrad=true",
        "train.scheduler.name=cosine",
        "train.scheduler.options.eta_min=0.0001",
    ]
    config = load_config(tiny_run.write(tiny_run.config()), overrides)
    assert config.train.optimizer.options == {"betas": [0.8, 0.9], "amsgrad": True}


def test_empty_targets_fail_validate_and_train(tiny_run, capsys):
    config = tiny_run.config()
    config["data"]["roles"]["targets"] = {}
    path = tiny_run.write(config, "no_targets.yaml")
    message = "data.roles.targets is empty: name at least one model output -> observed variable"
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    for command in ("validate", "train"):
        assert main([command, path]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_output_root_must_not_be_a_file(tiny_run):
    (tiny_run.folder / "a_file").write_text("")
    for root in ("a_file", "a_file/runs"):
        config = tiny_run.config()
        config["output"]["root"] = str(tiny_run.folder / root)
        with pytest.raises(ConfigError, match=r"output\.root in .*run\.yaml: .*a_file.* is not a folder"):
            load_config(tiny_run.write(config))


# --------------------------------------------------------------------------- periods typed by a user


def test_make_period_turns_bad_dates_into_config_errors():
    assert make_period("2015-01-01", None, "simulate --start/--end").start == dt.date(2015, 1, 1)
    with pytest.raises(ConfigError, match=r"^simulate --start/--end: start '2015-13-45' is not a date .*YYYY-MM-DD"):
        make_period("2015-13-45", None, "simulate --start/--end")
    with pytest.raises(ConfigError, match=r"^simulate: end 2015-01-01 is before start 2016-01-01$"):
        make_period("2016-01-01", "2015-01-01", "simulate")
    with pytest.raises(ConfigError, match=r"end True is not a date"):
        make_period(None, True, "simulate")
