"""Data containers, datasets, normalisation and sampling."""

from dmg.core.data.batch import Batch

__all__ = ["Batch"]
