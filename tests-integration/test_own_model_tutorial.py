"""docs/tutorials/own_model.md, "Write your own model in 15 minutes", followed step by step.

The page's fenced blocks are taken in order. A ``python``, ``toml`` or ``yaml`` block is a file: the line
just above it names it (`` `my-model/pyproject.toml`: ``), and the test writes it under a temporary
folder, the reader's working folder. A ``bash`` block is commands, run from that folder as the page
writes them: ``dmg ARGS`` as ``sys.executable -m dmg.core.cli ARGS``, ``python -m pytest ARGS`` as
``sys.executable -m pytest ARGS -q``, ``python SCRIPT`` as ``sys.executable SCRIPT``. A command the test
does not know how to follow fails it, so a new step on the page needs a rule here. A block without a
language right after a ``bash`` block is the output the page shows for its last command: each of its
lines but ``...`` must be a line of what the command printed (spaces aside).

How the install step is mapped. ``pip install -c path/to/dmg/constraints/dev.txt -e ./my-model`` builds
the package with hatchling and leaves two things in the environment: a ``my_model-0.1.0.dist-info``
folder (the package's metadata and ``entry_points.txt``) and a path entry pointing at ``my-model/src``.
Running pip here would be slow and would change the test environment, so the test writes the same two
things into the temporary folder instead: the ``.dist-info`` folder, made from the page's
``pyproject.toml`` (``[project]`` name and version, ``[project.entry-points]``), in ``site/``, and the
source folders named by ``[tool.hatch.build.targets.wheel] packages`` plus ``site/`` on the
``PYTHONPATH`` of every later command. ``importlib.metadata`` finds a ``.dist-info`` folder on
``sys.path`` as it finds one in site-packages, so ``dmg list physics``, ``dmg validate`` and
``dmg train`` find the model through its entry point exactly as after pip (dmg-core's
``tests/test_downstream.py`` relies on the same). The test also checks what the command names: the
constraints file exists in this repository and ``./my-model`` holds the page's ``pyproject.toml``.

The environment commands of step 0 (a virtual environment, pip installing dmg's own packages from the
clone) are checked, not run: the constraints file and package folders they name exist in this
repository, and those packages are installed in the environment running the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "tutorials" / "own_model.md"

BLOCK = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
FILE_NAME = re.compile(r"^`(?P<name>[^`]+)`:$")
FILE_LANGUAGES = ("python", "toml", "yaml")


def page_steps(text: str) -> list[tuple[str, str, str | None]]:
    """The page's blocks in order as ``(kind, body, file name)``: kind ``file`` (named), ``bash`` or ``output``.

    An ``output`` block is a block without a language right after a ``bash`` block; other blocks (the
    directory tree) are shown, not followed.
    """
    steps: list[tuple[str, str, str | None]] = []
    for block in BLOCK.finditer(text):
        lang, body = block["lang"], block["body"]
        if lang in ("bash", ""):
            if lang == "bash" or (steps and steps[-1][0] == "bash"):
                steps.append(("bash" if lang else "output", body, None))
            continue
        if lang not in FILE_LANGUAGES:
            continue
        above = [line.strip() for line in text[: block.start()].splitlines() if line.strip()]
        named = FILE_NAME.match(above[-1]) if above else None
        assert named, f"the {lang} block at offset {block.start()} of {PAGE.name} has no file name above it"
        steps.append(("file", body, named["name"]))
    return steps


def check_output(shown: str, result: subprocess.CompletedProcess | None) -> None:
    """Each line of the output the page shows (but ``...``) is a line ``result`` printed, spaces aside."""
    assert result is not None, f"the page shows output after a block that runs nothing:\n{shown}"
    printed = {" ".join(line.split()) for line in result.stdout.splitlines()}
    for line in shown.splitlines():
        expected = " ".join(line.split())
        if expected and expected != "...":
            assert expected in printed, (
                f"the page shows {line.strip()!r}; `{shlex.join(result.args)}` printed:\n{result.stdout}"
            )


def commands(body: str) -> list[list[str]]:
    """The commands of a ``bash`` block: one per line, lines split further at ``&&``; comments dropped."""
    found = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1 :]
    return [c for c in found if c]


def pip_arguments(words: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Constraint files, editable folders and other requirements of ``pip install WORDS``."""
    constraints, editables, others = [], [], []
    it = iter(words)
    for word in it:
        if word == "-c":
            constraints.append(next(it))
        elif word == "-e":
            editables.append(next(it))
        else:
            others.append(word)
    return constraints, editables, others


def check_environment_install(constraints: list[str], editables: list[str], others: list[str]) -> None:
    """Step 0, run in a clone of dmg: what it names exists here and is installed in this environment."""
    assert not others, f"step 0 installs {others}; expected dmg's own packages from the clone only"
    for path in constraints:
        assert (ROOT / path).is_file(), f"step 0 names the constraints file {path}, absent from the repository"
    for folder in editables:
        pyproject = ROOT / folder / "pyproject.toml"
        assert pyproject.is_file(), f"step 0 installs {folder}, which is not a package folder of the repository"
        name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
        try:
            distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"step 0 installs {name}, which the environment running this test lacks")


def install_as_pip_would(folder: Path, site: Path) -> list[Path]:
    """The ``.dist-info`` of the package in ``folder``, written to ``site``; returns its source folders.

    Together with those folders on ``PYTHONPATH``, this is what ``pip install -e folder`` leaves in an
    environment, as far as importing the package and finding its entry points go.
    """
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    name, version = project["name"], project["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    groups = project.get("entry-points", {})
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items()]
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    sources = []
    for package in packages:
        path = folder / package
        assert (path / "__init__.py").is_file(), f"{package} of {folder.name}/pyproject.toml is not a package"
        sources.append(path.parent)
    return sources


def test_the_page_runs_step_by_step(tmp_path):
    steps = page_steps(PAGE.read_text(encoding="utf-8"))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done: dict[str, list[subprocess.CompletedProcess]] = {}

    def run(kind: str, argv: list[str], shown: list[str]) -> subprocess.CompletedProcess:
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert result.returncode == 0, f"`{shlex.join(shown)}` failed:\n{output}"
        assert "Traceback" not in result.stderr, result.stderr
        done.setdefault(kind, []).append(result)
        return result

    last: subprocess.CompletedProcess | None = None
    for kind, body, name in steps:
        if kind == "file":
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            continue
        if kind == "output":
            check_output(body, last)
            continue
        last = None
        for words in commands(body):
            if words[:3] == ["python", "-m", "venv"] or words[0] == "source":
                continue  # the reader's own environment; the test runs in one already
            if words[:2] == ["pip", "install"]:
                constraints, editables, others = pip_arguments(words[2:])
                ours = [e for e in editables if (tmp_path / e / "pyproject.toml").is_file()]
                if not ours:
                    check_environment_install(constraints, editables, others)
                    continue
                assert editables == ours and not others, f"`{shlex.join(words)}` installs more than the page's package"
                assert [Path(c).parts[-2:] for c in constraints] == [("constraints", "dev.txt")], (
                    f"`{shlex.join(words)}` should install under dmg's constraints file, constraints/dev.txt"
                )
                site = tmp_path / "site"
                paths = [p for e in ours for p in install_as_pip_would(tmp_path / e, site)]
                paths += [site, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
                env["PYTHONPATH"] = os.pathsep.join(str(p) for p in dict.fromkeys(paths))
                done.setdefault("install", [])
            elif words[0] == "dmg":
                last = run(f"dmg {words[1]}", [sys.executable, "-m", "dmg.core.cli", *words[1:]], words)
            elif words[:3] == ["python", "-m", "pytest"]:
                extra = [] if "-q" in words else ["-q"]
                argv = [sys.executable, "-m", "pytest", *words[3:], *extra, "-p", "no:cacheprovider"]
                last = run("pytest", argv, words)
            elif words[0] == "python" and len(words) == 2 and words[1].endswith(".py"):
                last = run("script", [sys.executable, words[1]], words)
            else:
                pytest.fail(f"the test does not know how to follow `{shlex.join(words)}`: add a rule for it")

    assert sorted(done) == ["dmg list", "dmg train", "dmg validate", "install", "pytest", "script"], sorted(done)
    listed = done["dmg list"][0].stdout
    assert re.search(r"^\s*my_reservoir\s+my-model\s+my_model\.reservoir:Reservoir\s*$", listed, re.M), listed
    assert re.search(r"\b\d+ passed\b", done["pytest"][0].stdout), done["pytest"][0].stdout
    assert not re.search(r"\b\d+ (failed|errors?)\b", done["pytest"][0].stdout), done["pytest"][0].stdout
    assert "run.yaml: valid" in done["dmg validate"][0].stdout, done["dmg validate"][0].stdout

    (results,) = (tmp_path / "runs").rglob("evaluations/test_best/metrics.json")
    run_dir = results.parents[2]
    test = json.loads(results.read_text())
    assert test["targets"]["Q"]["summary"]["nse"]["median"] > 0.9, test["targets"]["Q"]["summary"]
    options = (run_dir / "config.yaml").read_text()
    assert "my_reservoir" in options and "substeps: 4" in options, options
