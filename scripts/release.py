"""Release one package: ``python scripts/release.py PACKAGE VERSION [--date YYYY-MM-DD] [--tag]``.

1. checks the manifest and changelogs (as CI does), that ``VERSION`` comes after the package's last
   release, that its changelog has unreleased entries and that ``packages/PACKAGE`` has no uncommitted
   changes (a release is what was committed and tested);
2. writes ``VERSION`` into the package's version file, moves the changelog's ``[Unreleased]`` entries
   under ``[VERSION] - DATE`` and commits both ("PACKAGE VERSION");
3. records ``PACKAGE``, ``VERSION``, ``DATE`` and that commit in ``releases.toml`` and commits it;
4. with ``--tag``, also tags the release commit ``PACKAGE-vVERSION`` (nothing reads tags).

``--dry-run`` prints what would change and writes nothing. See docs/releasing.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from packaging.version import InvalidVersion, Version
from releases import (
    CORE,
    MANIFEST,
    PACKAGES,
    ROOT,
    ChangelogSection,
    Release,
    ReleaseError,
    changelog_path,
    check,
    git,
    load_manifest,
    manifest_entry,
    package_dir,
    parse_changelog,
    releases_of,
    render_changelog,
    version_file,
)


def release(package: str, version: str, date: str, tag: bool, dry_run: bool) -> Release:
    """Make the release commits and return the recorded release; raise ``ReleaseError`` on any refusal."""
    if package not in PACKAGES:
        raise ReleaseError(f"unknown package {package!r} (known: {', '.join(PACKAGES)})")
    try:
        parsed = Version(version)
    except InvalidVersion as bad:
        raise ReleaseError(f"{version!r} is not a PEP 440 version") from bad
    if str(parsed) != version:
        raise ReleaseError(f"write the version as {str(parsed)!r}")
    problems = check(core_version=version if package == CORE else None)
    if problems:
        raise ReleaseError("fix these first:\n  " + "\n  ".join(problems))
    previous = releases_of(package, load_manifest())
    if previous and parsed <= previous[-1].parsed:
        raise ReleaseError(f"{package} {version} does not come after its last release, {previous[-1].version}")
    dirty = git("status", "--porcelain", "--", package_dir(package), MANIFEST.name)
    if dirty.strip():
        raise ReleaseError(f"commit or discard these changes first:\n{dirty.rstrip()}")

    changelog = changelog_path(package)
    preamble, sections = parse_changelog(changelog.read_text(encoding="utf-8"), str(changelog.relative_to(ROOT)))
    unreleased = sections[0]
    if unreleased.entries() == 0:
        raise ReleaseError(f"{changelog.relative_to(ROOT)} has no entries under [Unreleased]: nothing to release")
    released = ChangelogSection(version, date, unreleased.lines)
    sections = [ChangelogSection("Unreleased", None, []), released, *sections[1:]]
    pyproject = (ROOT / package_dir(package) / "pyproject.toml").read_text()
    version_path = ROOT / version_file(package, pyproject)
    version_text, count = re.subn(
        r"""^(__version__\s*=\s*)["'][^"']+["']""", rf'\g<1>"{version}"', version_path.read_text(), flags=re.M
    )
    if count != 1:
        raise ReleaseError(f"{version_path.relative_to(ROOT)}: expected one __version__ line")
    if dry_run:
        print(f"would set {version_path.relative_to(ROOT)} to {version} and move {unreleased.entries()} entries")
        print(f"of {changelog.relative_to(ROOT)} under [{version}] - {date}, then record it in {MANIFEST.name}")
        return Release(package, version, date, "0" * 40)

    version_path.write_text(version_text)
    changelog.write_text(render_changelog(preamble, sections), encoding="utf-8")
    paths = [str(version_path.relative_to(ROOT)), str(changelog.relative_to(ROOT))]
    git("commit", "--quiet", "-m", f"{package} {version}", "--", *paths)
    commit = git("rev-parse", "HEAD").strip()
    recorded = Release(package, version, date, commit)
    with MANIFEST.open("a", encoding="utf-8") as manifest:
        manifest.write(manifest_entry(recorded))
    git("commit", "--quiet", "-m", f"releases.toml: {package} {version} ({commit[:12]})", "--", MANIFEST.name)
    if tag:
        git("tag", "--annotate", "--message", f"{package} {version}", f"{package}-v{version}", commit)
    problems = check()
    if problems:  # pragma: no cover - check() passed before and the edits are ours
        raise ReleaseError("the release commits are inconsistent:\n  " + "\n  ".join(problems))
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("package", choices=PACKAGES)
    parser.add_argument("version", help="the new version, e.g. 0.3.0")
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="release date (default: today)")
    parser.add_argument("--tag", action="store_true", help="also tag the release commit PACKAGE-vVERSION")
    parser.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    args = parser.parse_args(argv)
    try:
        dt.date.fromisoformat(args.date)
        made = release(args.package, args.version, args.date, args.tag, args.dry_run)
    except ValueError:
        print(f"release: --date {args.date!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    if not args.dry_run:
        print(f"released {made.label} at {made.commit[:12]} ({made.date}); recorded in {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
