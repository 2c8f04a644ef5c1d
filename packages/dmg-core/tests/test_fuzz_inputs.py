"""Property-based fuzzing of `dmg validate` on mutated configs, YAML text, overrides and dataset files.

Every case runs the command line in-process on a tiny run (three units, four months, a 21-weight
network). A case passes when the command succeeds (status 0) or fails cleanly: status 2 and a message
whose first line starts with ``error: ``. Any exception escaping ``main`` (a traceback for a user)
fails the test with the smallest input hypothesis finds. The examples are derandomised, so CI runs the
same cases every time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmg.core.cli import main
from dmg.core.data import ArrayDataset

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def run_validate(config_path: str, overrides: Sequence[str] = ()) -> tuple[int, str]:
    """``dmg validate`` in-process: its status and what it wrote to standard error."""
    out, err = io.StringIO(), io.StringIO()
    args = ["validate", config_path, *(f"--set={item}" for item in overrides)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(args)
    return status, err.getvalue()


def assert_clean(status: int, err: str) -> None:
    """Success, or one ``error:`` message (a message listing several problems continues on later lines)."""
    assert status in (0, 2), f"exit status {status}; stderr: {err!r}"
    if status == 2:
        assert err.startswith("error: "), f"stderr does not start with 'error: ': {err!r}"
        assert "Traceback" not in err, err


# --------------------------------------------------------------------------- values and paths


def leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths (tuples of keys and list indices) of every key and item in a config."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    paths = []
    for key, value in items:
        paths.append((*prefix, key))
        paths += leaf_paths(value, (*prefix, key))
    return paths


def _finite_or_not() -> st.SearchStrategy[float]:
    return st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e308, -1.0, 0.5, 3.0])


DATE_TEXT = st.sampled_from(
    ["2000-01-01", "2000-02-30", "2015-13-45", "1999-12-31", "2000-04-29", "2000-04-30", "2100-01-01", "0000-00-00"]
)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, 1, 2, 3, 10, 365, 10**9]),
    _finite_or_not(),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    DATE_TEXT,
    st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)),
    st.sampled_from(["npz", "adam", "chain", "log", "sqrt", "none", "rmse", "P", "Q", "T", "k", "u0"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


def misspell(key: str, data: st.DataObject) -> str:
    """``key`` with one letter dropped, doubled, swapped or changed."""
    if not key:
        return "x"
    i = data.draw(st.integers(0, len(key) - 1))
    kind = data.draw(st.sampled_from(["drop", "double", "swap", "change", "case"]))
    if kind == "drop":
        return key[:i] + key[i + 1 :] or "x"
    if kind == "double":
        return key[:i] + key[i] + key[i:]
    if kind == "swap" and i + 1 < len(key):
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    if kind == "case":
        return key.swapcase()
    return key[:i] + data.draw(st.sampled_from("aeiou_1")) + key[i + 1 :]


def _parent(config: Any, path: tuple) -> Any:
    node = config
    for part in path[:-1]:
        node = node[part]
    return node


def mutate(config: dict, data: st.DataObject) -> None:
    """Apply one random mutation to ``config`` in place."""
    paths = leaf_paths(config)
    path = data.draw(st.sampled_from(paths))
    parent, key = _parent(config, path), path[-1]
    kind = data.draw(st.sampled_from(["set", "set", "delete", "rename", "add", "period", "empty"]))
    if kind == "set":
        parent[key] = data.draw(VALUES)
    elif kind == "delete":
        del parent[key]
    elif kind == "rename" and isinstance(parent, dict):
        parent[misspell(str(key), data)] = parent.pop(key)
    elif kind == "add" and isinstance(parent, dict):
        parent[data.draw(st.sampled_from([misspell(str(key), data), "extra", "options"]))] = data.draw(SCALARS)
    elif kind == "period" and isinstance(config.get("data"), dict):
        name = data.draw(st.sampled_from(["train", "valid", "test"]))
        config["data"][name] = {"start": data.draw(DATE_TEXT), "end": data.draw(DATE_TEXT)}
    elif kind == "empty" and isinstance(parent[key], (dict, list)):
        parent[key] = type(parent[key])()


# --------------------------------------------------------------------------- configs


@settings(FUZZ, max_examples=800)
@given(data=st.data())
def test_mutated_configs_fail_cleanly(tiny_run, data):
    config = tiny_run.config()
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(config, data)
    assert_clean(*run_validate(tiny_run.write(config, "fuzz.yaml")))


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_mutated_yaml_text_fails_cleanly(tiny_run, data):
    text = yaml.safe_dump(tiny_run.config(), sort_keys=False).encode("utf-8")
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["delete", "insert", "duplicate line", "truncate", "indent"]))
        if kind == "delete":
            text = text[:i] + text[i + data.draw(st.integers(1, 8)) :]
        elif kind == "insert":
            text = text[:i] + data.draw(st.binary(min_size=1, max_size=6)) + text[i:]
        elif kind == "duplicate line":
            start = text.rfind(b"\n", 0, i) + 1
            end = text.find(b"\n", i)
            end = len(text) if end < 0 else end + 1
            text = text[:end] + text[start:end] + text[end:]
        elif kind == "truncate":
            text = text[:i]
        else:
            start = text.rfind(b"\n", 0, i) + 1
            text = text[:start] + b" " * data.draw(st.integers(1, 3)) + text[start:]
    path = tiny_run.folder / "fuzz_text.yaml"
    path.write_bytes(text)
    assert_clean(*run_validate(str(path)))


OVERRIDE_KEYS = st.sampled_from(
    [
        "seed",
        "device",
        "data.warmup",
        "data.train.start",
        "data.train.end",
        "data.test",
        "data.valid",
        "data.units.kind",
        "data.units.fraction",
        "data.units.n_folds",
        "data.roles.forcings.P",
        "data.roles.targets",
        "data.roles.transforms.P",
        "data.roles.nn_static",
        "model.physics.nmul",
        "model.physics.dynamic",
        "model.nn.hidden_size",
        "model.couplings.0.learn",
        "model.dtype",
        "engine.backend.name",
        "engine.memory",
        "engine.chunk_size",
        "train.epochs",
        "train.window",
        "train.batch_size",
        "train.optimizer.lr",
        "train.optimizer.options.eps",
        "train.optimizer.options.betas",
        "train.scheduler.name",
        "train.grad_clip",
        "train.loss.name",
        "evaluate.metrics",
        "output.root",
        "output.name",
        "data.dataset.path",
        "x.y",
        "model.couplings.5.name",
        "data..train",
    ]
)
OVERRIDE_VALUES = st.one_of(
    st.sampled_from(
        ["true", "no", "~", "-1", "0", "1e-3", ".nan", "-.inf", "[1, 2", "{a: 1, a: 2}", "2015-13-45", "'", "[]"]
    ),
    DATE_TEXT,
    TEXT,
)


@settings(FUZZ, max_examples=300)
@given(items=st.lists(st.builds(lambda k, v: f"{k}={v}", OVERRIDE_KEYS, OVERRIDE_VALUES), min_size=1, max_size=3))
def test_mutated_overrides_fail_cleanly(tiny_run, items):
    assert_clean(*run_validate(tiny_run.write(tiny_run.config(), "fuzz_base.yaml"), items))


# --------------------------------------------------------------------------- dataset files


def _point_to(tiny_run, dataset: Path) -> str:
    config = tiny_run.config()
    config["data"]["dataset"]["path"] = str(dataset)
    return tiny_run.write(config, "fuzz_data.yaml")


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_damaged_dataset_files_fail_cleanly(tiny_run, data):
    raw = tiny_run.dataset_path.read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "garble", "insert", "zero"]))
    i = data.draw(st.integers(0, len(raw) - 1))
    if kind == "truncate":
        raw = raw[:i]
    elif kind == "garble":
        raw = raw[:i] + data.draw(st.binary(min_size=1, max_size=64)) + raw[i + 64 :]
    elif kind == "insert":
        raw = raw[:i] + data.draw(st.binary(min_size=1, max_size=16)) + raw[i:]
    else:
        raw = raw[:i] + bytes(data.draw(st.integers(1, 256))) + raw[i + 256 :]
    path = tiny_run.folder / "fuzz.npz"
    path.write_bytes(raw)
    assert_clean(*run_validate(_point_to(tiny_run, path)))


def _write_arrays(path: Path, dataset: ArrayDataset, **replaced: Any) -> None:
    """Write the arrays of :meth:`ArrayDataset.save`, some replaced (to make files ``save`` would refuse)."""
    arrays = {
        "format_version": np.array(1),
        "data": dataset.data,
        "variables": np.array(dataset.variables, dtype=str),
        "unit_ids": np.array(dataset.unit_ids, dtype=str),
        "dates": dataset.dates,
        "attributes": dataset.attributes,
        "attribute_names": np.array(dataset.attribute_names, dtype=str),
        "units": np.array("{}"),
    }
    with path.open("wb") as fh:
        np.savez(fh, **{**arrays, **replaced})


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_bad_dataset_values_fail_cleanly(tiny_run, data):
    dataset = ArrayDataset.load(tiny_run.dataset_path)
    values = np.array(dataset.data, dtype=np.float32)
    attributes = np.array(dataset.attributes)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    replaced: dict[str, Any] = {}
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(
            st.sampled_from(
                [
                    "non-finite forcing",
                    "non-finite attribute",
                    "all-missing target",
                    "negative rain",
                    "constant",
                    "duplicate unit",
                    "shuffled dates",
                    "short",
                    "one unit",
                    "renamed variable",
                ]
            )
        )
        var = data.draw(st.integers(0, values.shape[2] - 1))
        if kind == "non-finite forcing":
            mask = rng.random(values.shape[:2]) < data.draw(st.sampled_from([0.001, 0.05, 1.0]))
            values[:, :, var][mask] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        elif kind == "non-finite attribute":
            attributes[rng.integers(attributes.shape[0]), rng.integers(attributes.shape[1])] = np.nan
        elif kind == "all-missing target":
            values[:, :, dataset.variable_index("Q")] = np.nan
        elif kind == "negative rain":
            values[:, :, dataset.variable_index("P")] -= data.draw(st.sampled_from([0.001, 5.0]))
        elif kind == "constant":
            values[:, :, var] = data.draw(st.sampled_from([0.0, 1e30, -1.0]))
        elif kind == "duplicate unit":
            replaced["unit_ids"] = np.array(["u0", "u0", "u2"])
        elif kind == "shuffled dates":
            replaced["dates"] = rng.permutation(dataset.dates)
        elif kind == "short":
            n = data.draw(st.integers(1, 40))
            values = values[:, :n]
            replaced["dates"] = dataset.dates[:n]
        elif kind == "one unit":
            values, attributes = values[:1], attributes[:1]
            replaced["unit_ids"] = np.array(["u0"])
        else:
            names = list(dataset.variables)
            names[var] = misspell(names[var], data)
            replaced["variables"] = np.array(names)
    if "dates" in replaced and replaced["dates"].size != values.shape[1]:
        replaced["dates"] = dataset.dates[: values.shape[1]]
    if "unit_ids" in replaced and replaced["unit_ids"].size != values.shape[0]:
        replaced["unit_ids"] = np.array(dataset.unit_ids[: values.shape[0]])
    path = tiny_run.folder / "fuzz_values.npz"
    _write_arrays(path, dataset, data=values, attributes=attributes, **replaced)
    assert_clean(*run_validate(_point_to(tiny_run, path)))


def test_the_fuzzed_config_is_valid(tiny_run):
    """The starting point of every mutation passes, so a clean failure is the mutation's doing."""
    status, err = run_validate(tiny_run.write(tiny_run.config(), "fuzz.yaml"))
    assert (status, err) == (0, "")
