"""The release manifest, the changelogs and the compatibility matrix of the dmg packages.

One module, used by ``scripts/release.py`` (make a release), ``scripts/check_releases.py`` (the CI
validator), the ``compat`` session of the noxfile and the integration tests:

- ``releases.toml`` at the repository root lists every release, oldest first, as ``[[release]]``
  tables with ``package``, ``version``, ``date`` (ISO) and ``commit`` (the full hash of the commit
  whose tree is the release). Nothing depends on git tags.
- Each package's ``CHANGELOG.md`` follows Keep a Changelog: ``## [Unreleased]`` first, then one
  ``## [VERSION] - YYYY-MM-DD`` section per release, newest first, each with ``### Added``,
  ``### Changed``, ``### Deprecated``, ``### Removed``, ``### Fixed`` or ``### Security`` lists.
- The compatibility matrix pairs every dmg-core release with, for each sibling package, the lowest and
  the newest of its releases whose declared dmg-core range admits it.

Needs ``packaging`` (a dependency of nox and pytest) and git.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "releases.toml"
CORE = "dmg-core"
PACKAGES = ("dmg-core", "dmg-nn", "dmg-physics-examples", "dmg-hydro-adapter")
SIBLINGS = PACKAGES[1:]
CHANGE_KINDS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
_VERSION_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})$")


class ReleaseError(Exception):
    """A malformed manifest or changelog, or a release that cannot be made; the message says which."""


@dataclasses.dataclass(frozen=True)
class Release:
    """One released version of one package."""

    package: str
    version: str
    date: str
    commit: str

    @property
    def parsed(self) -> Version:
        return Version(self.version)

    @property
    def label(self) -> str:
        return f"{self.package} {self.version}"


# --------------------------------------------------------------------------------------- git


def git(*args: str, root: Path = ROOT) -> str:
    """Run git in ``root`` and return its output; a failure raises ``ReleaseError`` with git's message."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def file_at(commit: str, path: str, root: Path = ROOT) -> str:
    """The text of ``path`` (relative to the repository root) in ``commit``."""
    return git("show", f"{commit}:{path}", root=root)


def export_tree(commit: str, destination: Path, paths: tuple[str, ...] = (), root: Path = ROOT) -> Path:
    """Write the files of ``commit`` (or only ``paths`` of it) under ``destination`` with ``git archive``."""
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "tree.tar"
        git("archive", "--format=tar", f"--output={archive}", commit, *paths, root=root)
        with tarfile.open(archive) as tar:
            if sys.version_info >= (3, 12):
                tar.extractall(destination, filter="data")
            else:  # pragma: no cover - the archive comes from this repository
                tar.extractall(destination)
    return destination


# --------------------------------------------------------------------------------------- package files


def package_dir(package: str) -> str:
    return f"packages/{package}"


def version_file(package: str, pyproject_text: str) -> str:
    """The path (from the repository root) of the file that holds ``__version__``, from hatch's settings."""
    settings = tomllib.loads(pyproject_text)
    try:
        relative = settings["tool"]["hatch"]["version"]["path"]
    except KeyError as missing:
        raise ReleaseError(f"{package_dir(package)}/pyproject.toml has no [tool.hatch.version] path") from missing
    return f"{package_dir(package)}/{relative}"


def read_version(text: str, where: str) -> str:
    """``__version__`` from the text of a version file."""
    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, flags=re.M)
    if not found:
        raise ReleaseError(f"{where}: no __version__ = '...' line")
    return found.group(1)


def version_at(package: str, commit: str | None = None) -> str:
    """The version of ``package`` in ``commit``, or in the working tree when ``commit`` is None."""
    if commit is None:
        pyproject = (ROOT / package_dir(package) / "pyproject.toml").read_text()
        path = version_file(package, pyproject)
        return read_version((ROOT / path).read_text(), path)
    pyproject = file_at(commit, f"{package_dir(package)}/pyproject.toml")
    path = version_file(package, pyproject)
    return read_version(file_at(commit, path), f"{path} in {commit[:12]}")


def core_range(package: str, commit: str | None = None) -> SpecifierSet:
    """The dmg-core versions ``package`` declares it works with (in ``commit``, or the working tree)."""
    if commit is None:
        text = (ROOT / package_dir(package) / "pyproject.toml").read_text()
    else:
        text = file_at(commit, f"{package_dir(package)}/pyproject.toml")
    for line in tomllib.loads(text)["project"].get("dependencies", []):
        requirement = Requirement(line)
        if requirement.name == CORE:
            return requirement.specifier
    raise ReleaseError(f"{package} does not declare a dependency on {CORE}")


# --------------------------------------------------------------------------------------- manifest


def load_manifest(path: Path = MANIFEST) -> list[Release]:
    """Every release in ``releases.toml``, checked for form (not against git: see ``check``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as missing:
        raise ReleaseError(f"{path.name} is missing") from missing
    except tomllib.TOMLDecodeError as bad:
        raise ReleaseError(f"{path.name} is not valid TOML: {bad}") from bad
    unknown = set(data) - {"release"}
    if unknown:
        raise ReleaseError(f"{path.name}: unknown top-level keys {sorted(unknown)} (only [[release]] tables)")
    releases: list[Release] = []
    for index, entry in enumerate(data.get("release", []), start=1):
        where = f"{path.name}, release {index}"
        fields = {field.name for field in dataclasses.fields(Release)}
        if set(entry) != fields:
            raise ReleaseError(
                f"{where}: keys must be {sorted(fields)}; missing {sorted(fields - set(entry))}, "
                f"unknown {sorted(set(entry) - fields)}"
            )
        release = Release(**{key: str(entry[key]) for key in fields})
        if release.package not in PACKAGES:
            raise ReleaseError(f"{where}: unknown package {release.package!r} (known: {', '.join(PACKAGES)})")
        try:
            parsed = Version(release.version)
        except InvalidVersion as bad:
            raise ReleaseError(f"{where}: version {release.version!r} is not a PEP 440 version") from bad
        if str(parsed) != release.version:
            raise ReleaseError(f"{where}: write version {release.version!r} as {str(parsed)!r}")
        try:
            dt.date.fromisoformat(release.date)
        except ValueError as bad:
            raise ReleaseError(f"{where}: date {release.date!r} is not YYYY-MM-DD") from bad
        if not re.fullmatch(r"[0-9a-f]{40}", release.commit):
            raise ReleaseError(f"{where}: commit must be a full 40-character hash, not {release.commit!r}")
        earlier = [r for r in releases if r.package == release.package]
        if earlier and earlier[-1].parsed >= parsed:
            raise ReleaseError(
                f"{where}: {release.label} does not come after {earlier[-1].label} (oldest first, versions rising)"
            )
        if releases and releases[-1].date > release.date:
            raise ReleaseError(f"{where}: dated {release.date}, before the release above it ({releases[-1].date})")
        releases.append(release)
    return releases


def releases_of(package: str, releases: list[Release]) -> list[Release]:
    return [release for release in releases if release.package == package]


def manifest_entry(release: Release) -> str:
    return (
        f'\n[[release]]\npackage = "{release.package}"\nversion = "{release.version}"\n'
        f'date = "{release.date}"\ncommit = "{release.commit}"\n'
    )


# --------------------------------------------------------------------------------------- changelogs


@dataclasses.dataclass
class ChangelogSection:
    """``## [Unreleased]`` or ``## [VERSION] - DATE`` and its lines up to the next such heading."""

    version: str  # "Unreleased" or the version
    date: str | None
    lines: list[str]

    def entries(self) -> int:
        return sum(1 for line in self.lines if line.startswith("- "))


def parse_changelog(text: str, where: str) -> tuple[list[str], list[ChangelogSection]]:
    """The preamble and the sections of a changelog; a malformed one raises ``ReleaseError`` naming the line."""
    preamble: list[str] = []
    sections: list[ChangelogSection] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            if line == "## [Unreleased]":
                if sections:
                    raise ReleaseError(f"{where}:{number}: ## [Unreleased] must be the first section")
                sections.append(ChangelogSection("Unreleased", None, []))
                continue
            heading = _VERSION_HEADING.match(line)
            if not heading:
                raise ReleaseError(f"{where}:{number}: expected '## [VERSION] - YYYY-MM-DD', found {line!r}")
            if not sections:
                raise ReleaseError(f"{where}:{number}: ## [Unreleased] must come before the released versions")
            sections.append(ChangelogSection(heading["version"], heading["date"], []))
            continue
        if line.startswith("### ") and line[4:] not in CHANGE_KINDS:
            raise ReleaseError(f"{where}:{number}: {line!r} is not one of ### {', ### '.join(CHANGE_KINDS)}")
        if line.startswith("#") and not line.startswith("### ") and number > 1:
            raise ReleaseError(f"{where}:{number}: unexpected heading {line!r}")
        if line.startswith("### ") and not sections:
            raise ReleaseError(f"{where}:{number}: {line!r} outside a version section")
        (sections[-1].lines if sections else preamble).append(line)
    if not sections:
        raise ReleaseError(f"{where}: no ## [Unreleased] section")
    return preamble, sections


def render_changelog(preamble: list[str], sections: list[ChangelogSection]) -> str:
    parts = ["\n".join(preamble).rstrip() + "\n"]
    for section in sections:
        heading = "## [Unreleased]" if section.version == "Unreleased" else f"## [{section.version}] - {section.date}"
        body = "\n".join(section.lines).strip("\n")
        parts.append(heading + ("\n\n" + body if body else "") + "\n")
    return "\n".join(parts)


def changelog_path(package: str) -> Path:
    return ROOT / package_dir(package) / "CHANGELOG.md"


# --------------------------------------------------------------------------------------- validation


def check(releases: list[Release] | None = None, core_version: str | None = None) -> list[str]:
    """Every problem with the manifest, the changelogs and the versions, as messages (empty: all good).

    ``core_version`` stands in for the working tree's dmg-core version where siblings' ranges are
    checked: releasing dmg-core checks the siblings against the version about to be released.
    """
    problems: list[str] = []
    try:
        releases = load_manifest() if releases is None else releases
    except ReleaseError as error:
        return [str(error)]
    head = git("rev-parse", "HEAD").strip()
    for release in releases:
        try:
            git("cat-file", "-e", f"{release.commit}^{{commit}}")
        except ReleaseError:
            problems.append(f"{release.label}: commit {release.commit} is not in this clone (a shallow clone?)")
            continue
        if subprocess.run(["git", "merge-base", "--is-ancestor", release.commit, head], cwd=ROOT).returncode:
            problems.append(f"{release.label}: commit {release.commit[:12]} is not an ancestor of HEAD")
        try:
            recorded = version_at(release.package, release.commit)
        except ReleaseError as error:
            problems.append(f"{release.label}: {error}")
            continue
        if recorded != release.version:
            problems.append(
                f"{release.label}: commit {release.commit[:12]} holds {release.package} {recorded}, "
                f"not {release.version}"
            )
    for package in PACKAGES:
        problems += _check_package(package, releases_of(package, releases), core_version)
    return problems


def _check_package(package: str, released: list[Release], core_version: str | None) -> list[str]:
    where = f"{package_dir(package)}/CHANGELOG.md"
    problems: list[str] = []
    text = changelog_path(package).read_text(encoding="utf-8")
    if not text.startswith(f"# Changelog of {package}\n"):
        problems.append(f"{where}:1: the first line must be '# Changelog of {package}'")
    try:
        _, sections = parse_changelog(text, where)
    except ReleaseError as error:
        return [*problems, str(error)]
    versions = [section for section in sections if section.version != "Unreleased"]
    for section in versions:
        if section.entries() == 0:
            problems.append(f"{where}: [{section.version}] has no entries")
    try:
        order = [Version(section.version) for section in versions]
    except InvalidVersion as bad:
        return [*problems, f"{where}: {bad}"]
    if order != sorted(order, reverse=True):
        problems.append(f"{where}: versions must be listed newest first")
    in_changelog = {section.version: section.date for section in versions}
    in_manifest = {release.version: release.date for release in released}
    for version in sorted(set(in_manifest) - set(in_changelog), key=Version):
        problems.append(f"{where}: no section for {package} {version}, which releases.toml records")
    for version in sorted(set(in_changelog) - set(in_manifest), key=Version):
        problems.append(f"{where}: [{version}] is not recorded in releases.toml (release with scripts/release.py)")
    for version in set(in_changelog) & set(in_manifest):
        if in_changelog[version] != in_manifest[version]:
            problems.append(
                f"{where}: [{version}] is dated {in_changelog[version]}, releases.toml says {in_manifest[version]}"
            )
    current = version_at(package)
    if released and Version(current) < released[-1].parsed:
        problems.append(f"{package}: the working tree's version {current} is older than its last release")
    if package != CORE:
        core_version = core_version or version_at(CORE)
        if Version(core_version) not in core_range(package):
            problems.append(
                f"{package} declares {CORE}{core_range(package)}, which excludes the {CORE} {core_version} beside it"
            )
    return problems


# --------------------------------------------------------------------------------------- compatibility matrix


@dataclasses.dataclass(frozen=True)
class Combination:
    """Releases installed together: one of dmg-core and at most one of each sibling."""

    name: str
    releases: tuple[Release, ...]

    def describe(self) -> str:
        return ", ".join(release.label for release in self.releases)

    def test_commit(self) -> str:
        """The commit whose integration tests apply: the newest of the combination's commits."""
        commits = [release.commit for release in self.releases]
        for candidate in commits:
            if all(
                subprocess.run(["git", "merge-base", "--is-ancestor", other, candidate], cwd=ROOT).returncode == 0
                for other in commits
            ):
                return candidate
        return max(self.releases, key=lambda release: release.date).commit


def supported(sibling: str, core: Release, releases: list[Release]) -> list[Release]:
    """The releases of ``sibling`` whose declared dmg-core range admits ``core``, oldest first."""
    return [r for r in releases_of(sibling, releases) if core.parsed in core_range(sibling, r.commit)]


def matrix(releases: list[Release] | None = None) -> list[Combination]:
    """For every dmg-core release, its lowest and its newest supported sibling releases (one each)."""
    releases = load_manifest() if releases is None else releases
    combinations: dict[tuple[Release, ...], str] = {}
    for core in releases_of(CORE, releases):
        for end in ("lowest", "newest"):
            chosen: list[Release] = [core]
            for sibling in SIBLINGS:
                candidates = supported(sibling, core, releases)
                if candidates:
                    chosen.append(candidates[0] if end == "lowest" else candidates[-1])
            combinations.setdefault(tuple(chosen), f"core-{core.version}-{end}")
    return [Combination(name, members) for members, name in combinations.items()]


def outside_ranges(releases: list[Release] | None = None) -> list[tuple[Release, Release]]:
    """Pairs (sibling release, dmg-core release) that the sibling's declared range excludes."""
    releases = load_manifest() if releases is None else releases
    return [
        (sibling, core)
        for sibling in releases
        if sibling.package != CORE
        for core in releases_of(CORE, releases)
        if core.parsed not in core_range(sibling.package, sibling.commit)
    ]


def build_wheel(release: Release, wheelhouse: Path, python: str = sys.executable) -> Path:
    """The wheel of ``release``, built from its recorded commit into ``wheelhouse`` (reused when there).

    The package's folder is exported with ``git archive`` (so the working tree and tags do not matter)
    and built by hatchling without build isolation: ``python`` must have hatchling installed.
    """
    target = wheelhouse / release.commit[:12]
    stem = release.package.replace("-", "_")
    built = sorted(target.glob(f"{stem}-{release.version}-*.whl"))
    if built:
        return built[0]
    with tempfile.TemporaryDirectory() as tmp:
        tree = export_tree(release.commit, Path(tmp), (package_dir(release.package),))
        done = subprocess.run(
            [
                python,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(target),
                str(tree / package_dir(release.package)),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ReleaseError(f"building the wheel of {release.label} failed:\n{done.stdout}{done.stderr}")
    built = sorted(target.glob(f"{stem}-{release.version}-*.whl"))
    if not built:
        raise ReleaseError(f"building {release.label} left no {stem}-{release.version} wheel in {target}")
    return built[0]
