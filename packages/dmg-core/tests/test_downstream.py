"""A downstream project that installs only dmg-core registers its own model, network, coupling and
engine backend, and trains them with `dmg`, without any change to dmg-core.

The project is laid out in a temporary folder as an installed distribution (a package plus its
``.dist-info`` with entry points) and put on ``PYTHONPATH``, which is what ``pip install`` amounts to.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from dmg.core.data import ArrayDataset

MODELS = '''
import math
from pathlib import Path

import torch
from torch import nn
from pydantic import Field
from dmg.core import Coupling, MassBalance, Parameter, State, StepModel, Variable
from dmg.core.components import NetworkConfig
from dmg.core.couplings import CouplingConfig
from dmg.core.engine import Backend, BackendConfig, EagerBackend


class Leaky(StepModel):
    """A leaky bucket: S += P; Q = k * S."""

    forcings = (Variable("P", "mm/day", typical_range=(0.0, 20.0)),)
    physical_parameters = (Parameter("k", 0.01, 0.5, "1/day"),)
    states = (State("S", "mm", initial=1.0),)
    outputs = (Variable("Q", "mm/day"),)
    mass_balance = MassBalance(inputs=("P",), outputs=("Q",), storages=("S",))

    def step(self, state, forcing_t, params_t, processes):
        s = state["S"] + forcing_t["P"]
        q = params_t["k"] * s
        return {"S": s - q}, {"Q": q}


class LogParameters(Coupling):
    """The network's outputs set every parameter on a log scale between its bounds."""

    class Config(CouplingConfig):
        floor: float = Field(1e-3, gt=0, description="Smallest lower bound used on the log scale.")

    def network_outputs(self, phy_model, output_kind="single"):
        return len(phy_model.parameter_spec)

    def before(self, ctx):
        raw = self.take(ctx.network_output(self.network))
        for i, p in enumerate(ctx.phy_model.parameter_spec):
            low, high = math.log(max(p.low, self.config.floor)), math.log(p.high)
            value = torch.exp(low + torch.sigmoid(raw[..., i]) * (high - low))
            ctx.params[p.name] = value.unsqueeze(-1).expand(-1, ctx.phy_model.nmul)


class CountingBackend(Backend):
    """The eager loop, appending the number of steps of every loop it runs to a file."""

    class Config(BackendConfig):
        log_file: str = Field(description="File to which the step count of each loop is appended.")

    def run(self, loop):
        with Path(self.config.log_file).open("a") as fh:
            fh.write(f"{loop.n_time}\\n")
        return EagerBackend().run(loop)


class Affine(nn.Module):
    """One linear layer from static attributes to raw parameters."""

    input_kind = "static"

    class Config(NetworkConfig):
        scale: float = Field(1.0, description="Initial weight scale.")

    def __init__(self, n_static, n_outputs, scale):
        super().__init__()
        self.linear = nn.Linear(n_static, n_outputs)
        with torch.no_grad():
            self.linear.weight.mul_(scale)

    @classmethod
    def from_config(cls, config, *, n_inputs, n_outputs, n_static=0):
        return cls(n_static, n_outputs, config.scale)

    def forward(self, c):
        return self.linear(c)
'''

ENTRY_POINTS = """
[dmg.physics]
leaky = downstream_models:Leaky

[dmg.nn]
affine = downstream_models:Affine

[dmg.couplings]
log_parameters = downstream_models:LogParameters

[dmg.backends]
counting = downstream_models:CountingBackend
"""


def make_project(root):
    (root / "downstream_models.py").write_text(textwrap.dedent(MODELS))
    info = root / "downstream_models-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: downstream-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def make_data(path):
    rng = np.random.default_rng(0)
    n_units, n_time = 6, 400
    p = (rng.random((n_units, n_time)) < 0.4) * rng.exponential(4.0, (n_units, n_time))
    size = np.linspace(0.0, 1.0, n_units)
    k = 0.05 + 0.3 * size
    q = np.zeros_like(p)
    s = np.ones(n_units)
    for t in range(n_time):
        s = s + p[:, t]
        q[:, t] = k * s
        s = s - q[:, t]
    dates = np.arange(np.datetime64("2001-01-01"), np.datetime64("2001-01-01") + n_time)
    ArrayDataset.from_dicts(
        {"P": p, "Q": q}, [f"site{i}" for i in range(n_units)], dates, attributes={"size": size}
    ).save(path)


def run_config(**train):
    """A run of the downstream model on the data of :func:`make_data`, with ``train`` options."""
    return {
        "data": {
            "dataset": {"name": "npz", "path": "data.npz"},
            "roles": {"forcings": {"P": "P"}, "nn_static": ["size"], "targets": {"Q": "Q"}},
            "warmup": 30,
            "train": {"end": "2001-09-30"},
            "test": {"start": "2001-10-01"},
        },
        "model": {"physics": {"name": "leaky"}, "nn": {"name": "affine", "scale": 0.1}},
        "train": {"window": 60, "optimizer": {"lr": 0.05}, **train},
        "evaluate": {"metrics": ["nse"]},
    }


def test_downstream_registers_and_trains_through_the_cli(tmp_path):
    make_project(tmp_path)
    make_data(tmp_path / "data.npz")
    config = run_config(epochs=30, batch_size=6, progress=False)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def dmg(*args):
        return subprocess.run(
            [sys.executable, "-m", "dmg.core.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )

    listed = dmg("list", "physics")
    assert listed.returncode == 0 and "leaky" in listed.stdout and "downstream-models" in listed.stdout
    trained = dmg("train", "run.yaml", "--run-dir", "run")
    assert trained.returncode == 0, trained.stderr
    nse = json.loads((tmp_path / "run" / "evaluations" / "test_best" / "metrics.json").read_text())["targets"]["Q"][
        "summary"
    ]["nse"]
    assert nse["median"] > 0.9


def test_downstream_coupling_and_backend_through_entry_points_alone(tmp_path):
    """A coupling and an engine backend from the downstream distribution: listed, validated, trained with."""
    make_project(tmp_path)
    make_data(tmp_path / "data.npz")
    config = run_config(epochs=30, batch_size=6, progress=False)
    config["model"]["couplings"] = [{"name": "log_parameters"}]
    config["engine"] = {"backend": {"name": "counting", "log_file": "steps.txt"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def dmg(*args):
        return subprocess.run(
            [sys.executable, "-m", "dmg.core.cli", *args], capture_output=True, text=True, env=env, cwd=tmp_path
        )

    listed = dmg("list")
    assert listed.returncode == 0
    assert "log_parameters" in listed.stdout and "counting" in listed.stdout
    typo = dmg("validate", "run.yaml", "--set", "engine.backend.log_fil=x.txt")
    assert typo.returncode == 2 and "engine.backend.log_file" in typo.stderr, typo.stderr
    trained = dmg("train", "run.yaml", "--run-dir", "run")
    assert trained.returncode == 0, trained.stderr
    counts = [int(n) for n in (tmp_path / "steps.txt").read_text().split()]
    assert 30 in counts and 60 in counts  # the spin-up of each window and the window itself ran on it
    nse = json.loads((tmp_path / "run" / "evaluations" / "test_best" / "metrics.json").read_text())["targets"]["Q"][
        "summary"
    ]["nse"]
    assert nse["median"] > 0.9


def test_data_parallel_training_under_torchrun(tmp_path):
    """Two processes (gloo on CPU) train one model: rank 0 writes once, checkpoints hold both ranks' states."""
    import torch

    make_project(tmp_path)
    make_data(tmp_path / "data.npz")
    config = run_config(epochs=20, batch_size=3, progress=True)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*launch, "-m", "dmg.core.cli", "train", "run.yaml", "--run-dir", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run folder:") == 1 and result.stdout.count("epoch 20/20") == 1
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 21
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert len(saved["rng"]) == 2 and len(saved["sampler"]) == 2
    assert saved["sampler"][0]["seed"] != saved["sampler"][1]["seed"]  # each rank draws its own batches
    nse = json.loads((tmp_path / "run" / "evaluations" / "test_best" / "metrics.json").read_text())["targets"]["Q"][
        "summary"
    ]["nse"]
    assert nse["median"] > 0.9
    single = subprocess.run(
        [sys.executable, "-m", "dmg.core.cli", "train", "--resume", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert single.returncode == 2 and "same number (now 1)" in single.stderr


def _installed(dist):
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_core_alone_lists_and_trains_its_dense_network(tmp_path):
    """dmg-core ships one network, ``dense``: a project depending on dmg-core only trains out of the box."""
    make_project(tmp_path)
    make_data(tmp_path / "data.npz")
    config = run_config(epochs=30, batch_size=6, progress=False)
    config["model"]["nn"] = {"name": "dense", "hidden_sizes": [8]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def dmg(*args):
        return subprocess.run(
            [sys.executable, "-m", "dmg.core.cli", *args], capture_output=True, text=True, env=env, cwd=tmp_path
        )

    listed = dmg("list", "nn")
    assert listed.returncode == 0
    assert any(line.split()[:2] == ["dense", "dmg-core"] for line in listed.stdout.splitlines()), listed.stdout
    trained = dmg("train", "run.yaml", "--run-dir", "run")
    assert trained.returncode == 0, trained.stderr
    nse = json.loads((tmp_path / "run" / "evaluations" / "test_best" / "metrics.json").read_text())["targets"]["Q"][
        "summary"
    ]["nse"]
    assert nse["median"] > 0.9
    if not _installed("dmg-nn"):  # the nox session of dmg-core alone
        (tmp_path / "lstm.yaml").write_text(
            yaml.safe_dump({**config, "model": {**config["model"], "nn": {"name": "lstm"}}})
        )
        missing = dmg("train", "lstm.yaml", "--run-dir", "run_lstm")
        assert missing.returncode != 0
        assert "'lstm'" in missing.stderr and "pip install dmg-nn" in missing.stderr, missing.stderr


def test_a_missing_network_names_the_package_that_provides_networks(monkeypatch):
    """Without dmg-nn installed, asking for one of its networks says to install it."""
    from dmg.core import registry
    from dmg.core.errors import RegistryError

    real = registry.entry_points
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [ep for ep in real(group=group) if ep.dist is None or ep.dist.name != "dmg-nn"],
    )
    monkeypatch.delitem(registry._CACHE, ("dmg.nn", "lstm"), raising=False)  # loaded by an earlier test
    with pytest.raises(RegistryError, match="no nn component named 'lstm'") as raised:
        registry.get("dmg.nn", "lstm")
    assert "dense" in str(raised.value) and "pip install dmg-nn" in str(raised.value)
    with pytest.raises(RegistryError) as other:
        registry.get("dmg.physics", "nothing")
    assert "dmg-nn" not in str(other.value)
