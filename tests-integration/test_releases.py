"""Releases: the manifest and changelogs agree, scripts/release.py releases one package in a scratch clone,
and a combination outside the declared version ranges fails at import with a message naming both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import releases  # noqa: E402

pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "dmg tests",
    "GIT_AUTHOR_EMAIL": "tests@dmg.invalid",
    "GIT_COMMITTER_NAME": "dmg tests",
    "GIT_COMMITTER_EMAIL": "tests@dmg.invalid",
}


def test_manifest_changelogs_and_versions_agree():
    assert releases.check() == []
    manifest = releases.load_manifest()
    assert {release.package for release in manifest} == set(releases.PACKAGES)
    assert len(releases.releases_of(releases.CORE, manifest)) >= 2


def test_matrix_pairs_each_core_release_with_supporting_siblings():
    manifest = releases.load_manifest()
    combinations = releases.matrix(manifest)
    core_versions = {release.version for release in releases.releases_of("dmg-core", manifest)}
    assert {combination.releases[0].version for combination in combinations} == core_versions
    for combination in combinations:
        core, *siblings = combination.releases
        assert core.package == releases.CORE
        for sibling in siblings:
            assert core.parsed in releases.core_range(sibling.package, sibling.commit), combination.describe()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_IDENTITY})


@pytest.fixture
def scratch_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    return clone


def test_release_script_bumps_moves_the_changelog_and_records_the_commit(scratch_clone: Path):
    clone = scratch_clone
    script = [sys.executable, "scripts/release.py"]
    last = releases.releases_of("dmg-nn", releases.load_manifest())[-1]
    changelog = clone / "packages" / "dmg-nn" / "CHANGELOG.md"

    preamble, sections = releases.parse_changelog(changelog.read_text(), "CHANGELOG.md")
    sections[0].lines = []  # released up to here: nothing unreleased
    changelog.write_text(releases.render_changelog(preamble, sections))
    _run(["git", "commit", "--quiet", "-am", "Nothing unreleased"], clone).check_returncode()
    nothing = _run([*script, "dmg-nn", "9.0.0"], clone)
    assert nothing.returncode == 1 and "no entries under [Unreleased]: nothing to release" in nothing.stderr

    text = changelog.read_text()
    changelog.write_text(text.replace("## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n\n- A fix.\n", 1))
    dirty = _run([*script, "dmg-nn", "9.0.0"], clone)
    assert dirty.returncode == 1 and "commit or discard" in dirty.stderr and "CHANGELOG.md" in dirty.stderr
    _run(["git", "commit", "--quiet", "-am", "A fix"], clone).check_returncode()
    older = _run([*script, "dmg-nn", last.version], clone)
    assert older.returncode == 1 and f"does not come after its last release, {last.version}" in older.stderr

    made = _run([*script, "dmg-nn", "9.0.0", "--date", "2027-01-02", "--tag"], clone)
    assert made.returncode == 0, made.stderr
    commit = _run(["git", "rev-parse", "dmg-nn-v9.0.0^{commit}"], clone).stdout.strip()
    assert _run(["git", "log", "-1", "--format=%s", commit], clone).stdout.strip() == "dmg-nn 9.0.0"
    assert '__version__ = "9.0.0"' in (clone / "packages/dmg-nn/src/dmg/nn/__about__.py").read_text()
    released = changelog.read_text()
    assert "## [Unreleased]\n\n## [9.0.0] - 2027-01-02\n\n### Fixed\n\n- A fix.\n" in released
    assert f'version = "9.0.0"\ndate = "2027-01-02"\ncommit = "{commit}"' in (clone / "releases.toml").read_text()
    checked = _run([sys.executable, "scripts/check_releases.py"], clone)
    assert checked.returncode == 0, checked.stderr


def test_validator_names_each_problem(scratch_clone: Path):
    clone = scratch_clone
    manifest = clone / "releases.toml"
    first = releases.load_manifest()[0]
    manifest.write_text(manifest.read_text().replace(f'version = "{first.version}"', 'version = "0.0.9"', 1))
    changelog = clone / "packages" / "dmg-physics-examples" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("### Added", "### New things", 1))
    checked = _run([sys.executable, "scripts/check_releases.py"], clone)
    assert checked.returncode == 1
    assert f"{first.package} 0.0.9: commit {first.commit[:12]} holds {first.package} {first.version}" in checked.stderr
    assert "'### New things' is not one of ### Added" in checked.stderr
    manifest.write_text("[[release]]\npackage = 'dmg-core'\n")
    broken = _run([sys.executable, "scripts/check_releases.py"], clone)
    assert broken.returncode == 1 and "releases.toml, release 1: keys must be" in broken.stderr


def test_a_combination_outside_the_declared_ranges_fails_at_import(tmp_path: Path):
    pytest.importorskip("hatchling", reason="builds the wheels of released versions")
    pairs = releases.outside_ranges()
    assert pairs, "releases.toml has no combination outside a declared range"
    manifest = releases.load_manifest()
    newest = {package: releases.releases_of(package, manifest)[-1] for package in releases.SIBLINGS}
    sibling, core = min(
        ((s, c) for s, c in pairs if s == newest[s.package]), key=lambda pair: pair[1].parsed
    )  # the newest release of a sibling with a dmg-core older than it supports
    wheels = [releases.build_wheel(release, tmp_path / "wheels") for release in (core, sibling)]

    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", *map(str, wheels)],
        capture_output=True,
        text=True,
    )
    assert resolved.returncode != 0 and "dmg-core" in resolved.stdout + resolved.stderr

    target = tmp_path / "forced"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *map(str, wheels)],
        check=True,
    )
    module = {"dmg-nn": "dmg.nn", "dmg-physics-examples": "dmg.examples", "dmg-hydro-adapter": "dmg.hydro"}
    imported = subprocess.run(
        [sys.executable, "-c", f"import {module[sibling.package]}"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert imported.returncode != 0
    message = imported.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: ") or "InterfaceVersionError" in message, imported.stderr
    assert f"{sibling.package} " in message and f"dmg-core {core.version}" in message, message
    assert "interface >=1.0,<2" in message, message
