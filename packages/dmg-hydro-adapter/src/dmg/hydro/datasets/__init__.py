"""Hydrology dataset components (registered under ``dmg.datasets``).

::

    CamelsUS        camels_us      CAMELS-US forcings, streamflow (mm/day) and attributes
    PerUnitNetCDF   netcdf_units   one NetCDF file per unit (Caravan layout) plus attribute CSVs
    CachedDataset                  base adding the .npz cache of assembled arrays (options cache, cache_dir)

Importing this package does not import xarray; :class:`PerUnitNetCDF` needs it only when loading.
"""

from dmg.hydro.datasets.cache import CachedDataset, CacheOptions, default_cache_dir
from dmg.hydro.datasets.camels import CamelsUS, cfs_to_mm_per_day
from dmg.hydro.datasets.netcdf import MissingDependencyError, PerUnitNetCDF

__all__ = [
    "CacheOptions",
    "CachedDataset",
    "CamelsUS",
    "MissingDependencyError",
    "PerUnitNetCDF",
    "cfs_to_mm_per_day",
    "default_cache_dir",
]
