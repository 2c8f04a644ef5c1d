"""Packaging contracts across the monorepo."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
SIBLINGS = {"dmg-core": "core", "dmg-nn": "nn", "dmg-physics-examples": "examples", "dmg-hydro-adapter": "hydro"}


@pytest.mark.parametrize("dist", sorted(SIBLINGS))
def test_no_namespace_init_and_license_present(dist):
    root = PACKAGES / dist
    assert not (root / "src" / "dmg" / "__init__.py").exists(), "dmg must stay a PEP 420 namespace package"
    assert (root / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert 'license = "BSD-3-Clause"' in (root / "pyproject.toml").read_text()
    assert (root / "CHANGELOG.md").exists() and (root / "README.md").exists()


def _imported_modules(source_root: Path) -> set[str]:
    found = set()
    for path in source_root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_core_imports_no_sibling():
    imported = _imported_modules(PACKAGES / "dmg-core" / "src")
    offending = sorted(m for m in imported if m.startswith("dmg.") and not m.startswith("dmg.core"))
    assert not offending, f"dmg.core imports sibling packages: {offending}"


@pytest.mark.parametrize("dist", sorted(set(SIBLINGS) - {"dmg-core"}))
def test_siblings_import_only_declared_siblings(dist):
    text = (PACKAGES / dist / "pyproject.toml").read_text()
    own = SIBLINGS[dist]
    for module in _imported_modules(PACKAGES / dist / "src"):
        parts = module.split(".")
        if parts[0] == "dmg" and len(parts) > 1 and parts[1] != own:
            dep = next(d for d, m in SIBLINGS.items() if m == parts[1])
            assert f'"{dep}' in text, f"{dist} imports {module} but does not declare {dep}"


def test_importing_core_loads_no_sibling_module():
    code = (
        "import sys, pkgutil, importlib, dmg.core\n"
        "for m in pkgutil.walk_packages(dmg.core.__path__, 'dmg.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.startswith('dmg.') and not m.startswith('dmg.core')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dist", sorted(SIBLINGS))
def test_packages_are_typed(dist):
    """Each package ships ``py.typed`` in its package folder (the wheel takes all of ``src/dmg``)."""
    assert (PACKAGES / dist / "src" / "dmg" / SIBLINGS[dist] / "py.typed").exists()
    assert 'packages = ["src/dmg"]' in (PACKAGES / dist / "pyproject.toml").read_text()
