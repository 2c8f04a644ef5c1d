"""Dataset components: where an :class:`~dmg.core.data.dataset.ArrayDataset` comes from.

A dataset component has a pydantic ``Config``, ``from_config(config)`` and ``load() -> ArrayDataset``.
Domain packages register their own (e.g. CAMELS) under the ``dmg.datasets`` entry-point group.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dmg.core.components import ComponentConfig
from dmg.core.data.dataset import ArrayDataset
from dmg.core.errors import InputError


class NpzDataset:
    """A dataset saved with :meth:`ArrayDataset.save` (``.npz``)."""

    class Config(ComponentConfig):
        path: str = Field(description="The .npz file (relative paths are relative to the config file).")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def from_config(cls, config: Config) -> NpzDataset:
        return cls(config.path)

    def load(self) -> ArrayDataset:
        """Read the file; a missing file is an error naming it."""
        if not self.path.is_file():
            raise InputError(f"data.dataset.path: dataset file {self.path} does not exist")
        return ArrayDataset.load(self.path)
