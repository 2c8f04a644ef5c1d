"""Data containers, datasets, normalisation, sampling and splits.

::

    ArrayDataset          units × time × variables, plus static attributes, dates and ids
    DataRoles             which variables are forcings, network inputs, attributes, targets
    Normalizer            per-variable z-scores (optionally after log/sqrt), fitted on training data
    make_batch            windows of a dataset -> a time-major Batch
    WindowSampler         random units × random windows for training, exactly resumable
    sequential_windows    windows covering every unit and step, for evaluation
    split_time, kfold_units, holdout_units    temporal and spatial splits
"""

from dmg.core.data.batch import Batch
from dmg.core.data.batching import make_batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import TRANSFORMS, Normalizer
from dmg.core.data.roles import DataRoles
from dmg.core.data.sampler import EvalWindow, WindowSampler, sequential_windows
from dmg.core.data.splits import holdout_units, kfold_units, split_time

__all__ = [
    "TRANSFORMS",
    "ArrayDataset",
    "Batch",
    "DataRoles",
    "EvalWindow",
    "Normalizer",
    "WindowSampler",
    "holdout_units",
    "kfold_units",
    "make_batch",
    "sequential_windows",
    "split_time",
]
