"""Development sessions for the dmg monorepo.

    nox -s dev                    editable install of every package into .venv (contributors)
    nox -t test                   everything CI runs: lint, each package alone, integration
    nox -s "tests(package='core')"   one package's tests in a fresh environment with only its declared dependencies
    nox -s integration            cross-package and end-to-end tests
    nox -s lint                   ruff
    nox -s typecheck              mypy over dmg-core's public API
    nox -s releases               check releases.toml, the changelogs and versions; print the compatibility matrix
    nox -s compat                 every combination of released versions in the matrix, from wheels of their commits
    nox -s compat_corner          the newest dmg-core release with the lowest sibling releases that support it
    nox -s lowest                 each package's tests with the lowest third-party versions it declares
    nox -s demo                   the main job: train the embedded default model and print its metrics
    nox -s hydrodl2               parity of the HBV models with an installed hydrodl2 on fresh inputs
    nox -s bench                  engine speed against hydrodl2 and the published dMG (pinned environments)

Every environment is built with ``-c constraints/dev.txt`` so torch stays pinned to the CPU build.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox itself runs on the contributor's Python
    import tomli as tomllib

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "scripts"))
import releases  # noqa: E402  (scripts/releases.py: the release manifest and the compatibility matrix)

CONSTRAINTS = ("-c", str(ROOT / "constraints" / "dev.txt"))
LOWEST = ("-c", str(ROOT / "constraints" / "lowest.txt"))
WHEELHOUSE = ROOT / ".nox" / "_wheelhouse"  # wheels of released versions, built from their recorded commits
PACKAGES = {
    "core": "dmg-core",
    "nn": "dmg-nn",
    "examples": "dmg-physics-examples",
    "hydro": "dmg-hydro-adapter",
}

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "releases", "tests", "integration", "compat_corner"]
nox.options.error_on_missing_interpreters = True


def _dependencies(dist: str) -> list[str]:
    project = tomllib.loads((ROOT / "packages" / dist / "pyproject.toml").read_text())["project"]
    return list(project.get("dependencies", []))


def _local_closure(dist: str) -> list[str]:
    """``dist`` and the sibling packages it declares, recursively, dependencies first."""
    siblings = set(PACKAGES.values())
    order: list[str] = []

    def visit(name: str) -> None:
        for requirement in _dependencies(name):
            dep = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
            if dep in siblings and dep not in order:
                visit(dep)
        if name not in order:
            order.append(name)

    visit(dist)
    return order


def _install(session: nox.Session, dists: list[str], extras: str = "test", editable: bool = False) -> None:
    """Install local packages (with their declared dependencies) under the project constraints."""
    args: list[str] = []
    for dist in dists:
        target = f"{ROOT / 'packages' / dist}[{extras}]" if extras else str(ROOT / "packages" / dist)
        args += ["-e", target] if editable else [target]
    session.install(*CONSTRAINTS, *args)


@nox.session(tags=["test"])
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["test"])
def typecheck(session: nox.Session) -> None:
    """mypy over dmg-core's public API (settings in pyproject.toml's [tool.mypy]). dmg-core is read from
    source, so only its dependencies are installed: mypy does not report errors in installed packages."""
    session.install(*CONSTRAINTS, "mypy", *_dependencies("dmg-core"))
    session.run("mypy", *session.posargs)


@nox.session(name="releases", tags=["test"])
def releases_check(session: nox.Session) -> None:
    """releases.toml, every CHANGELOG.md and the versions agree (scripts/check_releases.py)."""
    session.install(*CONSTRAINTS, "packaging")
    session.run("python", str(ROOT / "scripts" / "check_releases.py"), "--matrix")


@nox.session(tags=["test"])
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One package alone, with only its declared dependencies, in a fresh environment."""
    dist = PACKAGES[package]
    _install(session, _local_closure(dist))
    session.run("pytest", str(ROOT / "packages" / dist / "tests"), *session.posargs)


@nox.session(tags=["test"])
def integration(session: nox.Session) -> None:
    """Cross-package and end-to-end tests with every package installed."""
    _install(session, list(PACKAGES.values()))
    # playwright drives Chromium in the `dmg gui` tests (no browser download); hatchling builds the wheels
    # of released versions in the test that an out-of-range combination fails at import
    session.install(*CONSTRAINTS, "playwright", "hatchling")
    session.run("pytest", str(ROOT / "tests-integration"), *session.posargs)


def _matrix() -> dict[str, releases.Combination]:
    """The compatibility matrix from releases.toml (empty outside a git clone)."""
    try:
        return {combination.name: combination for combination in releases.matrix()}
    except releases.ReleaseError:
        return {}


MATRIX = _matrix()


def _run_combination(session: nox.Session, combination: releases.Combination, *pytest_args: str) -> None:
    """Install ``combination`` from wheels built at the recorded commits (no package index, no editable
    installs), print what was installed, and run the integration tests of the newest commit among them,
    skipping those whose ``requires`` marker the installed versions do not meet."""
    session.log(f"{combination.name}: {combination.describe()}")
    session.install(*CONSTRAINTS, "hatchling", "playwright")
    python = str(Path(session.virtualenv.location) / "bin" / "python")
    wheels = [releases.build_wheel(release, WHEELHOUSE, python) for release in combination.releases]
    session.install(*CONSTRAINTS, *[f"{wheel}[test]" for wheel in wheels])
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m, sys, torch, numpy; "
        "print('installed:', ', '.join(sorted(f\"{d.metadata['Name']} {d.version}\" for d in m.distributions() "
        "if d.metadata['Name'].startswith('dmg-'))), f'| torch {torch.__version__}, numpy {numpy.__version__}, "
        "Python {sys.version.split()[0]}')",
    )
    commit = combination.test_commit()
    tree = ROOT / ".nox" / "_compat" / commit[:12]
    if not (tree / "main" / "tests-integration").exists():
        releases.export_tree(commit, tree / "main")
    shared = tree / "shared"  # the tests read ../shared beside the repository
    if not shared.exists():
        shared.symlink_to(ROOT.parent / "shared", target_is_directory=True)
    session.chdir(tree / "main")
    session.log(f"integration tests of {commit[:12]}")
    session.run("pytest", "tests-integration", *pytest_args, *session.posargs, env={"DMG_COMPAT": "1"})


@nox.session
@nox.parametrize("combination", list(MATRIX))
def compat(session: nox.Session, combination: str) -> None:
    """One combination of released versions from the matrix (scripts/check_releases.py --matrix prints it):
    for each dmg-core release, the lowest and the newest release of each sibling whose declared range
    admits it."""
    _run_combination(session, MATRIX[combination])


@nox.session(tags=["test"])
def compat_corner(session: nox.Session) -> None:
    """The corner of the matrix CI runs: the newest dmg-core release with the lowest siblings that support it.
    It leaves out the kill-and-resume and browser tests, which test one version's own behaviour rather than
    how versions work together (``nox -s compat`` runs them too)."""
    newest_core = releases.releases_of(releases.CORE, releases.load_manifest())[-1]
    leave_out = ("tests-integration/test_faults.py", "tests-integration/test_gui.py")
    _run_combination(session, MATRIX[f"core-{newest_core.version}-lowest"], *(f"--ignore={path}" for path in leave_out))


@nox.session(python="3.10")
def lowest(session: nox.Session) -> None:
    """Every package's tests on the oldest supported Python with the lowest third-party versions the
    packages declare (constraints/lowest.txt, checked against the declared bounds first). torch 2.6 comes
    from PyPI here: a CUDA build of several GB, which runs on the CPU."""
    session.install(*LOWEST, "packaging", "tomli")
    session.run("python", str(ROOT / "scripts" / "check_lowest.py"))
    extras = {"dmg-core": "test,netcdf,plots,tune"}
    session.install(*LOWEST, *[f"{ROOT / 'packages' / dist}[{extras.get(dist, 'test')}]" for dist in PACKAGES.values()])
    session.run("python", "-m", "pip", "list", "--format=freeze")
    for dist in PACKAGES.values():
        session.run("pytest", str(ROOT / "packages" / dist / "tests"), *session.posargs)


@nox.session
def hydrodl2(session: nox.Session) -> None:
    """Our HBV models against an installed hydrodl2 on fresh random inputs (the published implementation;
    non-commercial licence, so never a dependency and not part of the default test run)."""
    _install(session, _local_closure("dmg-hydro-adapter"))
    session.install(*CONSTRAINTS, "hydrodl2==1.4.0")
    session.run("pytest", str(ROOT / "packages" / "dmg-hydro-adapter" / "tests" / "test_hydrodl2_adapter.py"))


@nox.session
def bench(session: nox.Session) -> None:
    """Engine speed and memory against hydrodl2 1.4.0, and one training minibatch against the published
    dMG 1.5.0 (both non-commercial: installed only in these environments, pinned by
    constraints/bench.txt). Arguments after ``--`` go to benchmarks/engine_speed.py; without any,
    the target size runs and then the minibatch. Results (JSON, plot) go to benchmarks/results/."""
    pins = ("-c", str(ROOT / "constraints" / "bench.txt"))
    _install(session, ["dmg-core", "dmg-nn", "dmg-hydro-adapter"], extras="")
    session.install(*CONSTRAINTS, *pins, "hydrodl2", "matplotlib")
    published = Path(session.virtualenv.location).with_name(f"{Path(session.virtualenv.location).name}-published")
    if not (published / "bin" / "python").exists():
        session.run(sys.executable, "-m", "venv", str(published), external=True)
    python = str(published / "bin" / "python")
    session.run(python, "-m", "pip", "install", "-q", *CONSTRAINTS, *pins, "dmg", "hydrodl2", external=True)
    script = str(ROOT / "benchmarks" / "engine_speed.py")
    if session.posargs:
        session.run("python", script, *session.posargs)
        return
    session.run("python", script, "--backends", "eager,kernel,compiled,adjoint", "--threads", "1", "2")
    session.run(
        "python",
        script,
        "--minibatch",
        "--backends",
        "eager,kernel",
        "--published-python",
        python,
        "--json",
        "engine_minibatch.json",
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: train the default model on its embedded data and print its test metrics.

    dmg-core comes with its ``plots`` extra (matplotlib), so the run folder gets its plots."""
    targets = [str(ROOT / "packages" / dist) for dist in PACKAGES.values() if dist != "dmg-core"]
    session.install(*CONSTRAINTS, f"{ROOT / 'packages' / 'dmg-core'}[plots]", *targets)
    session.run("dmg", "train", str(ROOT / "examples" / "configs" / "quickstart.yaml"), *session.posargs)


@nox.session(venv_backend="none")
def dev(session: nox.Session) -> None:
    """Editable install of every package (with test extras) into ./.venv for contributors."""
    venv = ROOT / ".venv"
    if not venv.exists():
        session.run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    args = [arg for dist in PACKAGES.values() for arg in ("-e", f"{ROOT / 'packages' / dist}[test]")]
    session.run(python, "-m", "pip", "install", *CONSTRAINTS, "ruff", "nox", *args)
    session.log(f"Activate with: source {venv / 'bin' / 'activate'}")
