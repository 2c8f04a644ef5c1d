"""A cache of assembled datasets, for any dataset component that parses source files.

Parsing hundreds of text or NetCDF files takes seconds to minutes; the assembled
:class:`~dmg.core.data.ArrayDataset` is saved once as ``.npz`` and read back on later loads.
The cache file is named by a key that hashes

* the component (module, class and its ``cache_version``),
* its configuration, except the ``cache`` and ``cache_dir`` options themselves,
* the path, size and modification time (ns) of every source file the component reads,

so changing the configuration, or editing, replacing or touching a source file, builds the
dataset again. Files are written atomically (a temporary file renamed over the target), so
processes loading the same dataset at once never read a half-written cache. Old entries are
not deleted: remove the cache folder to reclaim the space.

A dataset component gains the cache by subclassing :class:`CachedDataset`, giving its
``Config`` the options of :class:`CacheOptions`, and implementing ``source_files()`` and
``build()``. Its ``open()`` (the units read as they are selected, see
:mod:`dmg.core.data.sources`) may start with ``_open_cache()``: the cache file, when there is one,
read lazily. Like every dmg component it takes its options only through its ``Config``:
``Dataset(config)``, ``Dataset(**options)`` or ``Dataset.from_config(config)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator

from dmg.core.components import Component, ComponentConfig
from dmg.core.data import ArrayDataset
from dmg.core.data.dataset import FORMAT_VERSION
from dmg.core.data.lazy import NpzUnitSource, open_npz
from dmg.core.errors import InputError

CACHE_ENV = "DMG_CACHE_DIR"
"""Environment variable naming the default cache folder."""

EXCLUDED_OPTIONS = frozenset({"cache", "cache_dir"})
"""Config options that do not change the dataset, so are left out of the key."""


def default_cache_dir() -> Path:
    """``$DMG_CACHE_DIR``, else ``$XDG_CACHE_HOME/dmg/datasets``, else ``~/.cache/dmg/datasets``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "dmg" / "datasets"


class CacheOptions(ComponentConfig):
    """The cache options of a dataset component (add them to its ``Config`` by subclassing)."""

    cache: bool = Field(True, description="Save the assembled arrays as .npz and reuse them while nothing changed.")
    cache_dir: str | None = Field(
        None,
        description="Folder of the cache files (relative: to the config file's folder, or to the working "
        f"directory on the command line); default ${CACHE_ENV}, else $XDG_CACHE_HOME/dmg/datasets, else "
        "~/.cache/dmg/datasets.",
        json_schema_extra={"dmg_role": "path"},
    )


def file_signature(path: Path) -> list[Any]:
    """``[absolute path, size in bytes, modification time in ns]`` of ``path``."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(f"source file {path} cannot be read: {exc}") from None
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def cache_key(component: str, config: BaseModel, sources: Iterable[Path]) -> str:
    """Hex SHA-256 of the component name, its config (less the cache options) and its source files."""
    options = config.model_dump(mode="json", exclude=set(EXCLUDED_OPTIONS))
    files = sorted(file_signature(Path(p)) for p in sources)
    payload = json.dumps(
        {"component": component, "format": FORMAT_VERSION, "config": options, "files": files},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class CachedDataset(Component):
    """Base of dataset components whose :meth:`load` is served from the cache when possible.

    Subclasses set :attr:`cache_name` and ``Config`` (with the fields of :class:`CacheOptions`),
    and implement :meth:`source_files` (cheap: it runs on every load) and :meth:`build` (the
    parsing). Bump :attr:`cache_version` whenever ``build`` changes what it makes from the same
    files.

    Parameters
    ----------
    config
        The component's ``Config``, or a mapping of its options.
    **options
        Options of the ``Config`` as keywords (merged over ``config``).
    """

    cache_name: ClassVar[str] = "dataset"
    """Prefix of the cache file names (the registered name of the component)."""
    cache_version: ClassVar[int] = 1
    """Part of the key: a new version invalidates every cache entry of the component."""

    config: CacheOptions
    Config: ClassVar[type[CacheOptions]] = CacheOptions

    def __init__(self, config: CacheOptions | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        self.config = self.validate_config(config, options)

    def source_files(self) -> list[Path]:
        """Every file :meth:`build` reads; raises a clear error when one is missing."""
        raise NotImplementedError

    def build(self) -> ArrayDataset:
        """Assemble the dataset from the source files."""
        raise NotImplementedError

    @property
    def cache_dir(self) -> Path:
        """The folder of the cache files."""
        chosen = self.config.cache_dir
        return Path(chosen).expanduser() if chosen else default_cache_dir()

    def cache_path(self) -> Path:
        """The cache file of the current config and source files (it may not exist yet)."""
        cls = type(self)
        component = f"{cls.__module__}:{cls.__qualname__}:v{cls.cache_version}"
        key = cache_key(component, self.config, self.source_files())
        return self.cache_dir / f"{self.cache_name}-{key[:24]}.npz"

    def load(self) -> ArrayDataset:
        """The dataset: read from the cache if an entry matches, else built (and cached)."""
        if not self.config.cache:
            return self.build()
        path = self.cache_path()
        if path.is_file():
            try:
                return ArrayDataset.load(path)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                warnings.warn(f"dataset cache {path} is unreadable ({exc}); building it again", stacklevel=2)
        dataset = self.build()
        try:
            dataset.save(path)
        except OSError as exc:
            warnings.warn(f"could not write the dataset cache {path}: {exc}", stacklevel=2)
        return dataset

    def _open_cache(self) -> NpzUnitSource | ArrayDataset | None:
        """The cache file of the current config and source files read lazily, or ``None`` without one.

        For the ``open()`` of a subclass: a source of the units that reads only those selected.
        Without a cache file the subclass reads its source files itself (and writes no cache file,
        which would need every unit in memory).
        """
        if not self.config.cache:
            return None
        path = self.cache_path()
        if not path.is_file():
            return None
        try:
            return open_npz(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"dataset cache {path} is unreadable ({exc}); reading the source files", stacklevel=3)
        return None


class FolderDatasetOptions(CacheOptions):
    """Options of a dataset read from the files under a ``root`` folder over an optional period.

    Subclasses declare ``root``, ``start`` and ``end`` (with descriptions that fit the dataset).
    """

    @model_validator(mode="after")
    def _ordered(self) -> FolderDatasetOptions:
        start, end = getattr(self, "start", None), getattr(self, "end", None)
        if start and end and end < start:
            raise ValueError(f"end {end} is before start {start}")
        return self


class FolderDataset(CachedDataset):
    """A cached dataset whose source files lie under ``config.root``."""

    config: FolderDatasetOptions

    @property
    def root(self) -> Path:
        """The data folder, with ``~`` expanded."""
        return Path(self.config.root).expanduser()
