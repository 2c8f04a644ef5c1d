"""Test settings of dmg-nn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one intra-op thread: the tests' tensors are tiny, and thread hand-offs would dominate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_configure(config: pytest.Config) -> None:
    """Silence a deprecation warning torch's own compiler stack raises while importing."""
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
