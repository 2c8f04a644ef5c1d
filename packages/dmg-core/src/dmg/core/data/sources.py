"""Dataset components: where an :class:`~dmg.core.data.dataset.ArrayDataset` comes from.

A dataset component follows the component convention (:mod:`dmg.core.components`: its ``Config`` is
the only source of its options) and has ``load() -> ArrayDataset``. It may name, in
``default_metrics``, the metrics ``dmg evaluate`` reports when a run does not list any. Domain
packages register their own under the ``dmg.datasets`` entry-point group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from dmg.core.components import PATH_OPTION, Component, ComponentConfig
from dmg.core.data.dataset import ArrayDataset
from dmg.core.errors import InputError


class NpzDataset(Component):
    """A dataset saved with :meth:`ArrayDataset.save` (``.npz``)."""

    class Config(ComponentConfig):
        path: str = Field(
            description="The .npz file (relative: to the config file's folder, or to the working directory on "
            "the command line).",
            json_schema_extra=PATH_OPTION,
        )

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        self.config = self.validate_config(config, options)
        self.path = Path(self.config.path)

    def load(self) -> ArrayDataset:
        """Read the file; a missing file is an error naming it."""
        if not self.path.is_file():
            raise InputError(f"data.dataset.path: dataset file {self.path} does not exist")
        return ArrayDataset.load(self.path)
