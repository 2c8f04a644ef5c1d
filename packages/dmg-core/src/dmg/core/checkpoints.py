"""Checkpoint files: written atomically, read without running code, checked before use.

A checkpoint is a ``torch.save`` of plain values and tensors only (``dict``, ``list``, ``tuple``,
``str``, numbers, ``None``, tensors), so it is read with ``torch.load(weights_only=True)``: a
file holding any other object is refused before anything in it can run. The random states of
Python, NumPy and torch are stored in that form by :func:`rng_state`.

A run keeps two checkpoints. ``best.pt`` is written before ``last.pt`` whenever an epoch
improves, so at every moment ``best.pt`` holds the epoch ``last.pt`` records as best, or a
later one that resuming recomputes identically; :func:`check_best` verifies this.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmg.core.__about__ import __version__
from dmg.core.errors import InputError
from dmg.core.io import atomic_torch_save

FORMAT = 2
"""Version of the checkpoint layout (2: plain values only, readable with ``weights_only=True``)."""

REQUIRED = ("model",)
"""Entries every checkpoint has; training checkpoints also have :data:`TRAINING`."""

TRAINING = ("optimizer", "sampler", "rng", "train_state")


class CheckpointError(InputError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit the run."""


def save(content: Mapping[str, Any], path: str | Path) -> None:
    """Write a checkpoint atomically, tagged with its format and the writing dmg-core version."""
    atomic_torch_save({"format": FORMAT, "dmg_core": __version__, **content}, path)


def load(path: str | Path, map_location: torch.device | str | None = None, *, training: bool = False) -> dict:
    """Read a checkpoint safely; every failure is a :class:`CheckpointError` naming the file.

    Parameters
    ----------
    path
        The ``.pt`` file.
    map_location
        Device the tensors are loaded to.
    training
        Also require what resuming needs (optimizer, sampler, random and progress state).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (its write was interrupted?)")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), "")
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} holds Python objects other than tensors and plain values ({unsafe}); "
                "it was refused because loading it could run code. dmg checkpoints never hold such objects: "
                "this file was written by another program or by a dmg-core older than checkpoint format 2, "
                "or was altered"
            ) from None
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint file (unreadable pickle)") from None
    except Exception as exc:  # whatever a damaged file makes the reader raise
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint file ({_first_line(exc)})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(saved).__name__}, not a dmg checkpoint")
    needed = REQUIRED + (TRAINING if training else ())
    missing = [key for key in needed if key not in saved]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a dmg training checkpoint: it has no {', '.join(missing)}")
    return saved


def load_model_state(model: torch.nn.Module, saved: Mapping[str, Any], path: str | Path) -> None:
    """Load ``saved["model"]`` into ``model``; a checkpoint of another architecture is a clear error."""
    state = saved["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: its 'model' entry is not a state dict of tensors")
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    mismatched = [k for k in ours if k in state and tuple(state[k].shape) != tuple(ours[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, the model {tuple(ours[k].shape)}")
        raise CheckpointError(
            f"checkpoint {path} does not fit the run's model ({'; '.join(parts)}); was it written for another config?"
        )
    model.load_state_dict(state)


def epoch_of(saved: Mapping[str, Any]) -> int:
    """Finished epochs recorded in a training checkpoint."""
    return int(saved["train_state"]["epoch"])


def check_best(last: Mapping[str, Any], best: Mapping[str, Any] | None, best_path: Path) -> None:
    """Raise unless ``best`` holds the epoch ``last`` records as best (or a later one).

    A later one is left by a process killed between writing ``best.pt`` and ``last.pt``;
    resuming recomputes that epoch identically, so it is consistent.
    """
    wanted = int(last["train_state"]["best_epoch"])
    if wanted < 1:
        return
    found = None if best is None else int(best["train_state"]["epoch"])
    if found is None or found < wanted:
        have = "is missing" if found is None else f"holds epoch {found}"
        raise CheckpointError(
            f"{best_path} {have} but the run's best epoch is {wanted}: the checkpoints are inconsistent; "
            f"`dmg train --resume {best_path.parent.parent}` repairs them when it can"
        )


# --------------------------------------------------------------------------- random states


def rng_state() -> dict[str, Any]:
    """The global random states of Python, NumPy and torch as plain values and tensors."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].cpu().numpy().astype(np.uint32), "pos": int(numpy_state["pos"])},
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
