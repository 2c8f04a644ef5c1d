"""δHBV 1.0 trained on the real CAMELS-US sample: the pipeline must reach useful skill.

2000 is warm-up, 2001 trains, 2002 tests (with 2001 as its warm-up). For calibration: the published
δHBV trained this way reaches 2002 NSE of about 0.49 (01022500) and 0.45 (01547700); one year of training
overfits and 2002 was a drought year. A broken pipeline scores below 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmg.core.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "camels_us_sample"
CONFIG = ROOT / "examples" / "configs" / "dhbv_camels.yaml"


@pytest.mark.slow
def test_dhbv_on_camels_sample_reaches_skill_in_the_test_year(tmp_path, capsys):
    if not SAMPLE.is_dir():
        pytest.skip(f"CAMELS sample not found at {SAMPLE}")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            str(CONFIG),
            "--run-dir",
            str(run),
            "--set",
            f"data.dataset.root={SAMPLE}",
            "--set",
            f"data.dataset.cache_dir={tmp_path / 'cache'}",
            "--set",
            "device=cpu",
            "--set",
            "train.progress=false",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((run / "metrics.json").read_text())["test"]
    assert (report["start"], report["end"]) == ("2002-01-01", "2002-12-31")
    per_unit = report["targets"]["Q"]["per_unit"]
    assert set(per_unit) == {"01022500", "01547700"}
    for gauge, metrics in per_unit.items():
        assert metrics["nse"] >= 0.3, f"{gauge}: 2002 NSE {metrics['nse']:.3f} below 0.3"
