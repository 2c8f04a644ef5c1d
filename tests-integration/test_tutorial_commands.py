"""Every shell command of the tutorials runs as written, and the δHBV tutorial reaches its skill.

The fenced ``bash`` blocks of each tutorial below are run line by line, from a folder that holds the
repository's ``examples/`` (as the repository's root does), with ``dmg`` from this environment.
``console`` blocks show commands for data that are not here (the full CAMELS-US download) and are
not run.

The δHBV tutorial trains on the real two-basin CAMELS-US sample: 2000 is warm-up, 2001 trains, 2002
tests (with 2001 as its warm-up). For calibration: the published δHBV trained this way reaches 2002 NSE
of about 0.49 (01022500) and 0.45 (01547700); one year of training overfits and 2002 was a drought
year. A broken pipeline scores below 0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "camels_us_sample"
TUTORIAL = ROOT / "docs" / "tutorials" / "dhbv_camels.md"


def bash_commands(markdown: Path) -> list[str]:
    """The lines of the fenced ``bash`` blocks of ``markdown``, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", markdown.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def run_as_written(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_dhbv_tutorial_commands_run_as_written_and_reach_skill(tmp_path):
    if not SAMPLE.is_dir():
        pytest.skip(f"CAMELS sample not found at {SAMPLE}")
    commands = bash_commands(TUTORIAL)
    assert [c.split()[1] for c in commands] == ["validate", "train", "evaluate", "simulate"]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DMG_CACHE_DIR": str(tmp_path / "cache"),
    }
    for command in commands:
        done = run_as_written(command, tmp_path, env)
        assert done.returncode == 0, f"`{command}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr

    run = tmp_path / "runs" / "dhbv_camels"
    report = json.loads((run / "evaluations" / "test_best" / "metrics.json").read_text())
    assert (report["start"], report["end"]) == ("2002-01-01", "2002-12-31")
    per_unit = report["targets"]["Q"]["per_unit"]
    assert set(per_unit) == {"01022500", "01547700"}
    for gauge, metrics in per_unit.items():
        assert metrics["nse"] >= 0.3, f"{gauge}: 2002 NSE {metrics['nse']:.3f} below 0.3"
    simulated = sorted(p.name for p in (run / "simulations").iterdir())
    assert simulated in (["marsh_creek.nc"], ["marsh_creek.npz"])
