"""Run folders record what they were made with (versions.json); evaluate warns when the dmg versions differ."""

from __future__ import annotations

import json
import platform
import warnings
from importlib.metadata import version

import pytest

from dmg.core import provenance
from dmg.core.config import RunConfig
from dmg.core.evaluation import evaluate
from dmg.core.workflows import train


@pytest.fixture(scope="module")
def trained(tiny_run):
    return train(RunConfig.model_validate(tiny_run.config()), tiny_run.folder / "runs" / "recorded")


def test_training_writes_versions_json_first(trained):
    recorded = json.loads(trained.versions.read_text())
    assert recorded["dmg"]["dmg-core"] == version("dmg-core")
    assert all(name.startswith("dmg-") for name in recorded["dmg"])
    assert set(recorded["packages"]) >= {"torch", "numpy", "pydantic"}
    assert recorded["packages"]["torch"] == version("torch")
    assert recorded["python"] == platform.python_version() and recorded["platform"] == platform.platform()
    git = recorded["git"]
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))


def test_git_state_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    assert provenance.git_state(tmp_path) is None
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert provenance.collect()["git"] is None


def test_evaluate_warns_once_when_the_run_was_made_with_other_dmg_versions(trained):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(trained.path)
    assert not [w for w in caught if issubclass(w.category, provenance.VersionMismatchWarning)]

    recorded = json.loads(trained.versions.read_text())
    recorded["dmg"]["dmg-core"] = "0.0.1"
    trained.versions.write_text(json.dumps(recorded))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(trained.path)
    mismatch = [w for w in caught if issubclass(w.category, provenance.VersionMismatchWarning)]
    assert len(mismatch) == 1 and issubclass(mismatch[0].category, UserWarning)
    message = str(mismatch[0].message)
    assert f"dmg-core 0.0.1 when recorded, {version('dmg-core')} installed" in message


def test_a_recorded_package_no_longer_installed_is_named():
    found = provenance.version_mismatches({"dmg": {"dmg-nowhere": "1.0"}})
    assert found == {"dmg-nowhere": ("1.0", provenance.NOT_INSTALLED)}
    assert provenance.check_file("/nonexistent/versions.json", "run") == {}
