"""Dataset components: where an :class:`~dmg.core.data.dataset.ArrayDataset` comes from.

A dataset component follows the component convention (:mod:`dmg.core.components`: its ``Config`` is
the only source of its options) and has ``load() -> ArrayDataset``. It may name, in
``default_metrics``, the metrics ``dmg evaluate`` reports when a run does not list any. Domain
packages register their own under the ``dmg.datasets`` entry-point group.

A component may also have ``open() -> UnitSource`` (:class:`~dmg.core.simulation.UnitSource`): a
source of the same units as ``load()`` gives, which reads only the units asked for in each
``select_units`` call, so that ``dmg simulate`` keeps the inputs of a domain out of memory
(:func:`dmg.core.build.open_unit_source`). Its ``select_units(ids)`` must give what
``load().select_units(ids)`` gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from dmg.core.components import PATH_OPTION, Component, ComponentConfig
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.lazy import NpzUnitSource, open_npz
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
        self._check_exists()
        return ArrayDataset.load(self.path)

    def open(self) -> NpzUnitSource | ArrayDataset:
        """The file's units, each read when selected (the whole file for a compressed one); see :func:`open_npz`."""
        self._check_exists()
        return open_npz(self.path)

    def _check_exists(self) -> None:
        if not self.path.is_file():
            raise InputError(f"data.dataset.path: dataset file {self.path} does not exist")
