"""Check ``releases.toml``, every package's CHANGELOG.md and versions (run in CI).

Fails, listing every problem, on a malformed manifest or changelog, a recorded commit that is missing,
not an ancestor of HEAD or holds another version, a changelog whose released sections differ from the
manifest, or a sibling whose declared dmg-core range excludes the dmg-core beside it.
With ``--matrix``, also prints the compatibility matrix that ``nox -s compat`` runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from releases import MANIFEST, ReleaseError, check, load_manifest, matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", action="store_true", help="print the compatibility matrix too")
    args = parser.parse_args(argv)
    try:
        problems = check()
        releases = [] if problems else load_manifest()
    except ReleaseError as error:
        problems = [str(error)]
    if problems:
        print(f"{len(problems)} problem(s) with the releases:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{MANIFEST.name}: {len(releases)} releases; changelogs and versions agree")
    if args.matrix:
        for combination in matrix(releases):
            print(f"  {combination.name}: {combination.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
