"""The :class:`Trainer`: minibatch optimisation with validation, early stopping and exact resume."""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dmg.core import checkpoints
from dmg.core.config import RunConfig
from dmg.core.data.alignment import check_whole_days, day_alignment
from dmg.core.data.batch import Batch
from dmg.core.data.batching import make_batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.data.sampler import WindowSampler, sequential_windows
from dmg.core.diagnostics import USUAL_CAUSES, describe_nonfinite
from dmg.core.distributed import Distributed
from dmg.core.errors import DmgError, InputError
from dmg.core.faults import fault_point
from dmg.core.model import DeltaModel
from dmg.core.runfolder import RunFolder

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
}

SCHEDULERS: dict[str, Callable[..., Any]] = {
    "step": torch.optim.lr_scheduler.StepLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}


RANK_SEED_STRIDE = 1_000_003
"""Sampler seeds of ``torchrun`` ranks are ``seed + rank * RANK_SEED_STRIDE``: distinct draws per rank."""


class TrainingError(DmgError, RuntimeError):
    """Training cannot go on (e.g. the loss stayed non-finite)."""


class NonFiniteLossWarning(UserWarning):
    """A minibatch had a non-finite loss and was skipped; the message says where it came from."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def target_loss(loss_fn: nn.Module, outputs: Mapping[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """Mean of ``loss_fn`` over every target of the batch (NaN targets are masked by the loss)."""
    values = [loss_fn(outputs[name], target) for name, target in batch.targets.items()]
    return torch.stack(values).mean()


@dataclass
class EpochRecord:
    """One row of the training log."""

    epoch: int
    train_loss: float
    valid_loss: float | None
    lr: float
    skipped: int
    seconds: float


EpochCallback = Callable[["Trainer", EpochRecord], None]
"""Called after every epoch with the trainer and the epoch's record."""


@dataclass
class TrainState:
    """Progress that a checkpoint carries besides the model and optimizer."""

    epoch: int = 0
    best_valid: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, float] | None = None
    """Running totals of an unfinished epoch (set by mid-epoch checkpoints)."""


class Trainer:
    """Trains a :class:`~dmg.core.model.DeltaModel` on windows of a dataset.

    Parameters
    ----------
    config
        The run configuration (``train``, ``data.warmup`` and ``seed`` are used).
    model
        The model to train (already on its device and dtype).
    loss_fn
        ``loss_fn(prediction [time, unit], target [time, unit]) -> scalar``, NaN-masked.
    train_data
        Training period with its warm-up, all training units.
    normalizer
        Fitted on ``train_data``.
    valid_data
        Optional ``(dataset, warmup)`` of the validation period.
    folder
        The run folder (or its path) that receives checkpoints and logs.
    callbacks
        Called as ``callback(trainer, record)`` after every epoch (e.g. to log elsewhere).
    distributed
        This process's place among ``torchrun`` processes (default: a single process). Each rank
        draws its own minibatches; gradients are averaged; rank 0 writes logs and checkpoints.
    """

    def __init__(
        self,
        config: RunConfig,
        model: DeltaModel,
        loss_fn: nn.Module,
        train_data: ArrayDataset,
        normalizer: Normalizer | None,
        folder: RunFolder | str | Path,
        valid_data: tuple[ArrayDataset, int] | None = None,
        callbacks: Sequence[EpochCallback] = (),
        distributed: Distributed | None = None,
    ) -> None:
        self.config = config
        self.dist = distributed or Distributed()
        self.model = model
        self.parallel_model = DistributedDataParallel(model) if self.dist.enabled else model
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.normalizer = normalizer
        self.valid_data = valid_data
        self.folder = folder if isinstance(folder, RunFolder) else RunFolder(Path(folder))
        self.callbacks = list(callbacks)
        self.device = next(iter(model.parameters()), torch.zeros(())).device
        self.dtype = next(iter(model.parameters()), torch.zeros(())).dtype
        tc = config.train

        align, offset = 1, 0
        if config.data.window_alignment == "day":
            align, offset = day_alignment(train_data.dates)
            check_whole_days(config.data.warmup, align)

        def sampler(iterations: int | None) -> WindowSampler:
            return WindowSampler(
                train_data.n_units,
                train_data.n_time,
                length=tc.window,
                warmup=config.data.warmup,
                batch_size=min(tc.batch_size, train_data.n_units) if train_data.n_units else tc.batch_size,
                seed=config.seed + RANK_SEED_STRIDE * self.dist.rank,
                iterations_per_epoch=iterations,
                align=align,
                offset=offset,
            )

        self.sampler = sampler(tc.iterations_per_epoch)
        if self.dist.enabled and tc.iterations_per_epoch is None:  # the processes share an epoch's batches
            self.sampler = sampler(math.ceil(self.sampler.iterations_per_epoch / self.dist.world_size))
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = OPTIMIZERS[tc.optimizer.name](
            params, lr=tc.optimizer.lr, weight_decay=tc.optimizer.weight_decay, **tc.optimizer.options
        )
        self.scheduler = None
        if tc.scheduler.name != "none":
            options = dict(tc.scheduler.options)
            if tc.scheduler.name == "cosine":
                options.setdefault("T_max", tc.epochs)
            if tc.scheduler.name == "step":
                options.setdefault("step_size", max(1, tc.epochs // 3))
            if tc.scheduler.name == "exponential":
                options.setdefault("gamma", 0.95)
            self.scheduler = SCHEDULERS[tc.scheduler.name](self.optimizer, **options)
        self.state = TrainState()
        self._resumed = False
        self._nonfinite: str | None = None
        self._tensorboard = None

    # ------------------------------------------------------------------ batches
    def batch(
        self, dataset: ArrayDataset, units: np.ndarray, starts: np.ndarray | int, length: int, warmup: int
    ) -> Batch:
        """A batch of ``dataset`` on the model's device and dtype."""
        batch = make_batch(
            dataset, self.config.data.roles, self.normalizer, units, starts, length, warmup, dtype=self.dtype
        )
        return batch.to(self.device)

    # ------------------------------------------------------------------ loop
    def fit(self) -> TrainState:
        """Train for the remaining epochs; returns the final :class:`TrainState`."""
        tc = self.config.train
        if not self._resumed:
            seed_everything(self.config.seed)
        if self.dist.is_main:
            self.folder.write_log(self.state.history)
            self._tensorboard = _tensorboard_writer(self.folder.tensorboard, self.state.epoch)
        while self.state.epoch < tc.epochs:
            record = self._epoch(self.state.epoch)
            self.state.history.append(record.__dict__)
            self.state.epoch += 1
            improved = self._update_early_stopping(record)
            if self.dist.is_main:
                self._write_log(record)
                if tc.progress:
                    print(_epoch_line(record, tc.epochs), flush=True)
            if improved:  # best first: last.pt never names a best epoch that best.pt lacks
                self.save_checkpoint("best")
            self.save_checkpoint("last")
            for callback in self.callbacks:
                callback(self, record)
            patience = tc.early_stopping.patience
            if patience is not None and self.state.bad_epochs >= patience:
                break
        if self._tensorboard is not None:
            self._tensorboard.close()
        return self.state

    def _epoch(self, epoch: int) -> EpochRecord:
        tc = self.config.train
        self.model.train()
        self.sampler.set_epoch(epoch)
        partial = self.state.partial or {}
        started = time.perf_counter() - partial.get("seconds", 0.0)
        total, count = partial.get("total", 0.0), int(partial.get("count", 0))
        skipped, streak = int(partial.get("skipped", 0)), int(partial.get("streak", 0))
        bar = _progress(len(self.sampler), f"epoch {epoch + 1}/{tc.epochs}", tc.progress and self.dist.is_main)
        if bar is not None:
            bar.update(self.sampler.position)
        for units, starts in self.sampler:
            batch = self.batch(self.train_data, units, starts, tc.window, self.config.data.warmup)
            outputs = self.parallel_model(batch, save=batch.targets)
            loss = target_loss(self.loss_fn, outputs, batch)
            if not self.dist.all_true(bool(torch.isfinite(loss))):
                skipped += 1
                streak += 1
                self._note_nonfinite(units, starts, batch, outputs, epoch)
                if streak >= tc.max_nonfinite:
                    raise TrainingError(
                        f"the loss was non-finite in {streak} consecutive minibatches (epoch {epoch + 1}); "
                        f"{self._nonfinite or USUAL_CAUSES}"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                if bar is not None:
                    bar.update(1)
                continue
            streak = 0
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            self.optimizer.step()
            total += float(loss.detach())
            count += 1
            fault_point(f"epoch {epoch + 1}, after a minibatch")
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4g}")
                bar.update(1)
            every = tc.checkpoint_every
            if every and self.sampler.epoch == epoch and self.sampler.position % every == 0:
                self.state.partial = {
                    "total": total,
                    "count": count,
                    "skipped": skipped,
                    "streak": streak,
                    "seconds": time.perf_counter() - started,
                }
                self.save_checkpoint("last")
        self.state.partial = None
        if bar is not None:
            bar.close()
        if count == 0:
            raise TrainingError(
                f"every minibatch of epoch {epoch + 1} had a non-finite loss; {self._nonfinite or USUAL_CAUSES}"
            )
        train_loss = self.dist.mean(total / count)
        valid = self.validate() if self.valid_data is not None else None
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(valid if valid is not None else train_loss)
            else:
                self.scheduler.step()
        return EpochRecord(epoch + 1, train_loss, valid, lr, skipped, time.perf_counter() - started)

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss over the validation period (every unit, every step after warm-up)."""
        assert self.valid_data is not None
        dataset, warmup = self.valid_data
        self.model.eval()
        losses, weights = [], []
        for w in sequential_windows(
            dataset.n_units, dataset.n_time, None, warmup, self.config.evaluate.units_per_batch
        ):
            batch = self.batch(dataset, w.units, w.start, w.length, warmup)
            loss = target_loss(self.loss_fn, self.model(batch, save=batch.targets), batch)
            if torch.isfinite(loss):
                losses.append(float(loss))
                weights.append(len(w.units))
        self.model.train()
        if not losses:
            raise InputError("the validation period has no valid targets (all NaN); check data.valid")
        return float(np.average(losses, weights=weights))

    def _note_nonfinite(
        self, units: np.ndarray, starts: np.ndarray, batch: Batch, outputs: Mapping[str, torch.Tensor], epoch: int
    ) -> None:
        """Locate the first non-finite loss of the run, and warn once where it comes from."""
        if self._nonfinite is not None:
            return
        self._nonfinite = describe_nonfinite(self.train_data, self.config.data.roles, units, starts, batch, outputs)
        if self.dist.is_main:
            warnings.warn(
                f"a minibatch of epoch {epoch + 1} had a non-finite loss and was skipped; {self._nonfinite}",
                NonFiniteLossWarning,
                stacklevel=2,
            )

    def _update_early_stopping(self, record: EpochRecord) -> bool:
        score = record.valid_loss if record.valid_loss is not None else record.train_loss
        if score < self.state.best_valid - self.config.train.early_stopping.min_delta:
            self.state.best_valid, self.state.best_epoch, self.state.bad_epochs = score, record.epoch, 0
            return True
        self.state.bad_epochs += 1
        return False

    # ------------------------------------------------------------------ logging
    def _write_log(self, record: EpochRecord) -> None:
        self.folder.write_log(self.state.history)
        if self._tensorboard is not None:
            for key, value in record.__dict__.items():
                if key != "epoch" and value is not None:
                    self._tensorboard.add_scalar(key, value, record.epoch)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, name: str) -> Path:
        """Write ``checkpoints/<name>.pt`` atomically with everything needed to resume exactly."""
        path = self.folder.checkpoint(name)
        samplers, rngs = self.dist.gather(self.sampler.state_dict()), self.dist.gather(checkpoints.rng_state())
        if self.dist.is_main:
            checkpoints.save(
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                    "sampler": samplers[0] if len(samplers) == 1 else samplers,
                    "rng": rngs[0] if len(rngs) == 1 else rngs,
                    "train_state": self.state.__dict__,
                },
                path,
            )
        self.dist.barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, sampler, random states and progress from ``path``."""
        path = Path(path)
        saved = checkpoints.load(path, self.device, training=True)
        checkpoints.load_model_state(self.model, saved, path)
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
            if self.scheduler is not None and saved.get("scheduler") is not None:
                self.scheduler.load_state_dict(saved["scheduler"])
            self.state = TrainState(**saved["train_state"])
        except (ValueError, KeyError, TypeError) as exc:
            raise checkpoints.CheckpointError(
                f"checkpoint {path}: its optimizer, scheduler or progress do not fit the run's config ({exc})"
            ) from None
        self.sampler.load_state_dict(self.dist.own(saved["sampler"], "sampler state"))
        checkpoints.set_rng_state(self.dist.own(saved["rng"], "random state"))
        self._resumed = True


def _epoch_line(record: EpochRecord, epochs: int) -> str:
    valid = "" if record.valid_loss is None else f"  valid loss {record.valid_loss:.4g}"
    skipped = f"  skipped {record.skipped} non-finite" if record.skipped else ""
    return (
        f"epoch {record.epoch}/{epochs}  train loss {record.train_loss:.4g}{valid}  "
        f"lr {record.lr:.3g}  {record.seconds:.1f} s{skipped}"
    )


def _progress(total: int, description: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: a live bar on a terminal, nothing in logs (an epoch line is printed instead)
    return tqdm(total=total, desc=description, unit="batch", leave=False, dynamic_ncols=True, disable=None)


def _tensorboard_writer(path: Path, epoch: int) -> Any:
    """A TensorBoard writer (when installed) that drops events after ``epoch``, so a resumed run has none twice."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(path), purge_step=epoch + 1 if epoch else None)
