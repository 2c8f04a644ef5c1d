"""Documentation that is generated from or executed against the code stays current."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert tuple(namespace["model"](namespace["batch"])["Q"].shape) == (365, 16)


def test_configuration_reference_is_current():
    from dmg.core.docs import configuration_reference

    current = (ROOT / "docs" / "configuration.md").read_text()
    regenerate = "dmg schema --markdown --output docs/configuration.md"
    assert current == configuration_reference(), f"docs/configuration.md is out of date: run `{regenerate}`"
