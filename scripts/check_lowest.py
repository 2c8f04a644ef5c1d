"""Check that constraints/lowest.txt pins every third-party lower bound the packages declare.

Every ``name>=X`` among the packages' dependencies and optional dependencies (other than the dmg
packages themselves and the test tools listed at the end of lowest.txt) must be pinned as
``name==X`` in constraints/lowest.txt, so ``nox -s lowest`` tests exactly the declared bounds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from releases import PACKAGES, ROOT, tomllib

LOWEST = ROOT / "constraints" / "lowest.txt"
TEST_TOOLS = {"pytest", "hypothesis", "hatchling"}
NOT_TESTED = {"hydrodl2"}  # the published implementation: a non-commercial extra, never installed by tests


def declared_lower_bounds() -> dict[str, dict[str, str]]:
    """{distribution: {package: lower bound}} from every pyproject's dependencies and extras."""
    bounds: dict[str, dict[str, str]] = {}
    for package in PACKAGES:
        project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())["project"]
        lines = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            lines += extra
        for line in lines:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name in PACKAGES or name in TEST_TOOLS or name in NOT_TESTED:
                continue
            lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            bounds.setdefault(name, {})[package] = lower[0] if lower else ""
    return bounds


def main() -> int:
    pins = {}
    for line in LOWEST.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    problems = []
    for name, by_package in sorted(declared_lower_bounds().items()):
        for package, bound in sorted(by_package.items()):
            if not bound:
                problems.append(f"{package} declares {name} without a lower bound (>=)")
            elif name not in pins or Version(pins[name]) != Version(bound):
                problems.append(f"{package} declares {name}>={bound}; constraints/lowest.txt pins {pins.get(name)}")
    for problem in problems:
        print(f"check_lowest: {problem}", file=sys.stderr)
    if not problems:
        print(f"constraints/lowest.txt pins the {len(declared_lower_bounds())} declared lower bounds")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
