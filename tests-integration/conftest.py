"""The ``requires`` marker: ``@pytest.mark.requires("dmg-core>=0.3", ...)`` names the package versions a
test needs. ``nox -s compat`` sets ``DMG_COMPAT=1`` while it runs these tests against released versions;
then a test whose requirements the installed versions do not meet is skipped, saying why. From a checkout
(every other session) the marker is not enforced: the checkout holds what the next releases will."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement


def unmet(requirements: tuple[str, ...]) -> list[str]:
    """The requirements the installed distributions do not meet, each with what is installed."""
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            missing.append(f"{text} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (installed: {installed})")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DMG_COMPAT") != "1":
        return
    for item in items:
        for mark in item.iter_markers("requires"):
            missing = unmet(mark.args)
            if missing:
                item.add_marker(pytest.mark.skip(reason="needs " + ", ".join(missing)))


# --------------------------------------------------------------------------- trained runs for operational tests

HBV_SMALL = [
    "data.dataset.n_units=4",
    "data.dataset.years=2",
    "data.warmup=60",
    "data.train.start=2000-03-01",
    "data.train.end=2001-06-30",
    "data.test.start=2001-07-01",
    "data.test.end=2001-12-30",
    "train.epochs=1",
    "train.window=60",
    "train.batch_size=4",
    "train.iterations_per_epoch=1",
    "train.progress=false",
    "model.nn.hidden_size=8",
    "evaluate.plots=false",
]
"""A δHBV 1.0 run with gamma routing (the quickstart) small enough to train in seconds."""

SIR_DAYS = 200
"""Days of the SIR dataset, from 2000-01-01."""


def _train(config: str, run: Path, items: list[str]) -> Path:
    from dmg.core.cli import main

    code = main(["train", config, "--run-dir", str(run), *[a for item in items for a in ("--set", item)]])
    assert code == 0
    return run


@pytest.fixture(scope="session")
def hbv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained δHBV 1.0 run (LSTM, HBV with 4 components, gamma routing) on 4 synthetic basins."""
    quickstart = Path(__file__).resolve().parents[1] / "examples" / "configs" / "quickstart.yaml"
    return _train(str(quickstart), tmp_path_factory.mktemp("hbv") / "run", HBV_SMALL)


@pytest.fixture(scope="session")
def sir_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained SIR run (epidemiology, dmg-physics-examples; LSTM parameters) on 4 synthetic populations."""
    import numpy as np
    import yaml

    from dmg.core.data import ArrayDataset
    from dmg.examples import synthetic

    folder = tmp_path_factory.mktemp("sir")
    data = synthetic.sir_data(n_units=4, n_time=SIR_DAYS, seed=0)
    dataset = ArrayDataset.from_dicts(
        {
            "contact": data.forcings["contact"].T.numpy(),
            "new_infections": data.targets["new_infections"].T.numpy(),
        },
        data.unit_ids,
        np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + SIR_DAYS),
        attributes={name: data.static_inputs[:, i].numpy() for i, name in enumerate(data.attribute_names)},
        units={"contact": "1", "new_infections": "1/day"},
    )
    dataset.save(folder / "sir.npz")
    config = {
        "seed": 0,
        "device": "cpu",
        "data": {
            "dataset": {"name": "npz", "path": str(folder / "sir.npz")},
            "roles": {
                "forcings": {"contact": "contact"},
                "nn_inputs": ["contact"],
                "nn_static": list(data.attribute_names),
                "targets": {"new_infections": "new_infections"},
            },
            "warmup": 0,
            "train": {"start": "2000-01-01", "end": "2000-05-29"},
            "test": {"start": "2000-01-01", "end": "2000-07-18"},
        },
        "model": {
            "physics": {"name": "sir", "initial_infected": 1e-3},
            "nn": {"name": "lstm", "hidden_size": 8, "dropout": 0.0},
            "couplings": [{"name": "parameter_learning"}],
        },
        "train": {
            "epochs": 1,
            "batch_size": 4,
            "window": 60,
            "iterations_per_epoch": 1,
            "optimizer": {"name": "adam", "lr": 0.01},
            "progress": False,
        },
        "evaluate": {"metrics": ["rmse"], "plots": False},
        "output": {"predictions": "npz"},
    }
    path = folder / "sir.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return _train(str(path), folder / "run", [])
