"""The tutorial docs/tutorials/examples.md runs as written and shows what it claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

TUTORIAL = Path(__file__).resolve().parents[3] / "docs" / "tutorials" / "examples.md"


@pytest.fixture(autouse=True)
def single_thread():
    """The tutorial's tensors are tiny: intra-op threads only add overhead."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tutorial_snippets_run_in_order_and_learn(capsys):
    if not TUTORIAL.exists():
        pytest.skip(f"the tutorial lives in the repository, not in the package: {TUTORIAL} is absent")
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "tutorial"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{TUTORIAL.name} block {i}", "exec"), namespace)
    printed = capsys.readouterr().out

    def number(pattern: str) -> list[float]:
        found = re.search(pattern, printed)
        assert found, f"the tutorial no longer prints {pattern!r}:\n{printed}"
        return [float(g) for g in found.groups()]

    k_error, c_error = number(r"median relative error: k ([\d.]+)%, c ([\d.]+)%")
    assert k_error < 10 and c_error < 10
    default, learned, noise = number(r"default evaporation: MSE ([\d.]+); learned: ([\d.]+); noise level ([\d.]+)")
    assert learned < 2 * noise < 0.1 * default
    first, last, r0_error = number(r"loss ([\d.]+) -> ([\d.]+); median relative error of R0 ([\d.]+)%")
    assert last < 0.05 * first and r0_error < 25
    for name in ("alpha", "Pmax", "Reco"):
        assert number(rf"{name}: median relative error ([\d.]+)%")[0] < 20
    assert "all four examples pass the test kit" in printed
