"""docs/nn.md carries the config tables generated from the Config models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from dmg.core.components import NetworkConfig
from dmg.nn.docs import BEGIN, END, config_rows, config_table, main, render_document, type_name

DOC = Path(__file__).resolve().parents[3] / "docs" / "nn.md"


def test_docs_nn_md_is_current() -> None:
    if not DOC.exists():
        pytest.skip(f"{DOC} is not here (not a repository checkout)")
    text = DOC.read_text(encoding="utf-8")
    assert render_document(text) == text, "docs/nn.md is out of date; run: python -m dmg.nn.docs docs/nn.md"
    assert main([str(DOC), "--check"]) == 0


def test_the_table_lists_every_option_with_its_default() -> None:
    table = config_table()
    assert "| `hidden_size` | `int` | `256` | Size of the LSTM hidden state" in table
    assert "| `lstm.recurrent_dropout` | `float` | `0.5` |" in table
    assert "| `mlp.hidden_sizes` | `list[int]` | `[256, 256]` |" in table
    assert "| `context_window` | `int \\| null` | `null` |" in table
    assert "| `grid_range` | `tuple[float, float]` | `[-2.0, 2.0]` |" in table


def test_rows_of_a_nested_config() -> None:
    class Inner(NetworkConfig):
        size: int = Field(3, description="A size.")

    class Outer(NetworkConfig):
        flag: bool = Field(False, description="A flag.")
        inner: Inner = Field(default_factory=Inner, description="Nested.")

    assert config_rows(Outer) == [("flag", "bool", "false", "A flag."), ("inner.size", "int", "3", "A size.")]
    assert type_name(int | None) == "int | null"


def test_the_generated_block_is_replaced_and_checked(tmp_path: Path) -> None:
    doc = tmp_path / "nn.md"
    doc.write_text(f"# Zoo\n\n{BEGIN}\nstale\n{END}\n\nAfter.\n", encoding="utf-8")
    assert main([str(doc), "--check"]) == 1
    assert main([str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert "stale" not in text and config_table() in text and text.endswith(f"{END}\n\nAfter.\n")
    assert main([str(doc), "--check"]) == 0
    with pytest.raises(ValueError, match="lacks the markers"):
        render_document("no markers here")
