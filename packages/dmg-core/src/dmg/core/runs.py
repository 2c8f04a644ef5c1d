"""Runs: the folder a training run writes, and the train / resume / evaluate / simulate workflows.

A run folder is self-contained and relocatable (every path inside it is relative)::

    run/
      config.yaml          the resolved configuration (data paths absolute)
      normalizer.json      statistics fitted on the training split
      checkpoints/         last.pt and best.pt (model, optimizer, scheduler, sampler, RNG, progress)
      log.csv              one row per epoch
      metrics.json         written by evaluate
      predictions_<period>.nc|.npz   written by evaluate and simulate
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmg.core import registry
from dmg.core.build import build_loss, build_model, load_dataset
from dmg.core.config import GENERIC_METRICS, Period, RunConfig, dump_config, load_config
from dmg.core.couplings import CouplingContext
from dmg.core.data.batch import Batch
from dmg.core.data.batching import make_batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.data.sampler import sequential_windows
from dmg.core.data.splits import holdout_units, kfold_units, split_time
from dmg.core.distributed import Distributed
from dmg.core.errors import ConfigError, DmgError, InputError
from dmg.core.io import atomic_open, atomic_write_text
from dmg.core.model import DeltaModel
from dmg.core.parameters import ParameterSpec
from dmg.core.plots import write_plots
from dmg.core.training import Trainer, seed_everything

CONFIG_FILE = "config.yaml"
NORMALIZER_FILE = "normalizer.json"
METRICS_FILE = "metrics.json"


# --------------------------------------------------------------------------- data preparation


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; anything else is passed to torch with a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: {name!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available; use 'cpu' or 'auto'")
    return device


def unit_split(config: RunConfig, dataset: ArrayDataset) -> tuple[list[str], list[str]]:
    """``(train_ids, test_ids)`` from ``data.units``."""
    s = config.data.units
    ids = list(dataset.unit_ids)
    if s.kind == "all":
        return ids, ids
    if s.kind == "kfold":
        if s.fold >= s.n_folds:
            raise ConfigError(f"data.units.fold must be < n_folds ({s.n_folds}), got {s.fold}")
        return kfold_units(ids, s.n_folds, s.fold, s.seed)
    if s.kind == "holdout":
        return holdout_units(ids, s.fraction, s.seed)
    for key, chosen in (("train", s.train), ("test", s.test)):
        unknown = [u for u in chosen if u not in ids]
        if unknown or not chosen:
            raise ConfigError(
                f"data.units.{key}: unknown unit ids {unknown} (or none given); dataset has {ids[:10]}..."
            )
    return list(s.train), list(s.test)


def period_data(
    config: RunConfig, dataset: ArrayDataset, period: Period, units: Sequence[str], *, strict_warmup: bool
) -> tuple[ArrayDataset, int]:
    """The units' data over ``period`` with up to ``data.warmup`` steps before it; checked for NaN inputs."""
    subset = dataset.select_units(list(units))
    data, warmup = split_time(
        subset, period.start, period.end, config.data.warmup, allow_short_warmup=not strict_warmup
    )
    roles = config.data.roles
    data.check_finite(sorted(set(roles.forcings.values())), (), label="forcing")
    data.check_finite([v for v in roles.nn_inputs if v not in roles.forcings.values()], (), label="network input")
    data.check_finite((), sorted(set(roles.nn_static) | set(roles.attributes.values())))
    return data, warmup


# --------------------------------------------------------------------------- run folder


@dataclass(frozen=True)
class RunFolder:
    """Paths inside a run folder."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def normalizer(self) -> Path:
        return self.path / NORMALIZER_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    def checkpoint(self, name: str) -> Path:
        return self.path / "checkpoints" / f"{name}.pt"

    @classmethod
    def existing(cls, path: str | Path) -> RunFolder:
        """An existing run folder, with a clear error if ``path`` is not one."""
        folder = cls(Path(path))
        if not folder.config.is_file():
            raise InputError(f"{path} is not a run folder: it has no {CONFIG_FILE}")
        return folder

    @classmethod
    def create(cls, config: RunConfig, run_dir: str | Path | None = None) -> RunFolder:
        """A new, empty run folder; an existing non-empty folder is never reused."""
        if run_dir is None:
            name = config.output.name or dt.datetime.now().strftime("run_%Y%m%d_%H%M%S")
            run_dir = Path(config.output.root) / name
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            raise InputError(
                f"run folder {path} already exists and is not empty; choose another output.name or --run-dir, "
                "or continue it with `dmg train --resume`"
            )
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)


# --------------------------------------------------------------------------- workflows


def _prepare(config: RunConfig) -> tuple[ArrayDataset, list[str], list[str]]:
    dataset = load_dataset(config)
    train_ids, test_ids = unit_split(config, dataset)
    return dataset, train_ids, test_ids


def _trainer(
    config: RunConfig,
    folder: RunFolder,
    normalizer: Normalizer | None,
    dataset: ArrayDataset,
    train_ids: list[str],
    distributed: Distributed,
) -> Trainer:
    train_data, _ = period_data(config, dataset, config.data.train, train_ids, strict_warmup=False)
    valid = None
    if config.data.valid is not None:
        valid = period_data(config, dataset, config.data.valid, train_ids, strict_warmup=False)
    device = distributed.device(resolve_device(config.device))
    model = build_model(config).to(device)
    return Trainer(
        config,
        model,
        build_loss(config),
        train_data,
        normalizer,
        folder.path,
        valid_data=valid,
        distributed=distributed,
    )


def train(config: RunConfig, run_dir: str | Path | None = None) -> RunFolder:
    """Train a new run; returns its folder. Under ``torchrun`` every process trains, rank 0 writes."""
    distributed = Distributed.from_environment()
    seed_everything(config.seed)
    dataset, train_ids, _ = _prepare(config)
    train_data, _ = period_data(config, dataset, config.data.train, train_ids, strict_warmup=False)
    normalizer = config.data.roles.fit_normalizer(train_data)
    created: tuple[str, str] | None = None
    if distributed.is_main:
        try:
            folder = RunFolder.create(config, run_dir)
            atomic_write_text(folder.config, dump_config(config))
            normalizer.save(folder.normalizer)
            created = ("ok", str(folder.path))
        except DmgError as exc:
            created = ("error", str(exc))
            if not distributed.enabled:
                raise
    status, detail = distributed.broadcast(created)
    if status == "error":
        raise InputError(detail)
    folder = RunFolder(Path(detail))
    trainer = _trainer(config, folder, normalizer, dataset, train_ids, distributed)
    trainer.fit()
    return folder


def resume(run_dir: str | Path) -> RunFolder:
    """Continue a run from its last checkpoint: the result equals an uninterrupted run."""
    distributed = Distributed.from_environment()
    folder = RunFolder.existing(run_dir)
    config = load_config(folder.config)
    checkpoint = folder.checkpoint("last")
    if not checkpoint.is_file():
        raise InputError(f"{run_dir} has no checkpoint to resume from ({checkpoint} is missing)")
    dataset, train_ids, _ = _prepare(config)
    trainer = _trainer(config, folder, Normalizer.load(folder.normalizer), dataset, train_ids, distributed)
    trainer.load_checkpoint(checkpoint)
    trainer.fit()
    return folder


def load_trained(folder: RunFolder, checkpoint: str = "best") -> tuple[RunConfig, DeltaModel, Normalizer]:
    """The config, the trained model (weights of ``checkpoint``) and the normalizer of a run."""
    config = load_config(folder.config)
    path = folder.checkpoint(checkpoint)
    if not path.is_file():
        fallback = folder.checkpoint("last")
        if checkpoint == "best" and fallback.is_file():
            path = fallback
        else:
            raise InputError(f"run {folder.path} has no checkpoint {path.name}; has training finished an epoch?")
    device = resolve_device(config.device)
    model = build_model(config).to(device)
    saved = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    model.eval()
    return config, model, Normalizer.load(folder.normalizer)


@torch.no_grad()
def predict(
    config: RunConfig,
    model: DeltaModel,
    normalizer: Normalizer,
    data: ArrayDataset,
    warmup: int,
    with_targets: bool = True,
) -> dict[str, np.ndarray]:
    """Every ``[time, unit]`` output over the period after ``warmup``, as ``[time - warmup, unit]`` arrays."""
    roles = config.data.roles if with_targets else config.data.roles.model_copy(update={"targets": {}})
    param = next(iter(model.parameters()))
    n_time = data.n_time - warmup
    outputs: dict[str, np.ndarray] = {}
    for w in sequential_windows(data.n_units, data.n_time, None, warmup, config.evaluate.units_per_batch):
        batch = make_batch(data, roles, normalizer, w.units, w.start, w.length, warmup, dtype=param.dtype)
        out = model(batch.to(param.device))
        for name, value in out.items():
            if value.dim() == 2 and value.shape[0] == n_time:
                outputs.setdefault(name, np.full((n_time, data.n_units), np.nan, dtype=np.float32))
                outputs[name][:, w.units] = value.float().cpu().numpy()
    return outputs


def evaluate(run_dir: str | Path, period: str = "test", checkpoint: str | None = None) -> dict[str, Any]:
    """Metrics per unit and summarised, for one period of a run; writes metrics.json and predictions."""
    folder = RunFolder.existing(run_dir)
    config = load_config(folder.config)
    config, model, normalizer = load_trained(folder, checkpoint or config.evaluate.checkpoint)
    chosen = getattr(config.data, period, None)
    if period not in ("train", "valid", "test") or chosen is None:
        raise ConfigError(f"period must be 'train', 'valid' or 'test' (and configured), got {period!r}")
    dataset, train_ids, test_ids = _prepare(config)
    units = test_ids if period == "test" else train_ids
    data, warmup = period_data(config, dataset, chosen, units, strict_warmup=False)
    predictions = predict(config, model, normalizer, data, warmup)
    dates = data.dates[warmup:]
    metric_fns = {name: registry.get("dmg.metrics", name) for name in evaluation_metrics(config)}
    report: dict[str, Any] = {
        "period": period,
        "start": str(dates[0]),
        "end": str(dates[-1]),
        "checkpoint": checkpoint or config.evaluate.checkpoint,
        "targets": {},
    }
    for output, variable in config.data.roles.targets.items():
        observed = np.array(data.variable(variable)[:, warmup:].T)  # [time, unit]
        simulated = predictions[output]
        per_unit = {
            m: np.asarray(fn(torch.as_tensor(simulated), torch.as_tensor(observed)), dtype=float)
            for m, fn in metric_fns.items()
        }
        report["targets"][output] = {
            "variable": variable,
            "summary": {
                m: {"median": _nan_stat(np.nanmedian, v), "mean": _nan_stat(np.nanmean, v)} for m, v in per_unit.items()
            },
            "per_unit": {
                uid: {m: _finite_or_none(per_unit[m][i]) for m in per_unit} for i, uid in enumerate(data.unit_ids)
            },
        }
        predictions[f"{output}_observed"] = observed.astype(np.float32)
    learned = learned_parameter_summary(config, model, normalizer, data, warmup)
    recovery = parameter_recovery(model.phy_model.parameter_spec, learned, data)
    if recovery:
        report["parameters"] = recovery
    if config.evaluate.plots:
        write_plots(
            folder.path / "plots",
            period,
            predictions,
            data.unit_ids,
            dates,
            report,
            learned,
            config.evaluate.plot_units,
        )
    save_predictions(
        folder.path / f"predictions_{period}", predictions, data.unit_ids, dates, config.output.predictions
    )
    metrics = json.loads(folder.metrics.read_text()) if folder.metrics.is_file() else {}
    metrics[period] = report
    atomic_write_text(folder.metrics, json.dumps(metrics, indent=2))
    return report


def evaluation_metrics(config: RunConfig) -> list[str]:
    """``evaluate.metrics``, else the dataset component's ``default_metrics``, else the generic ones."""
    if config.evaluate.metrics is not None:
        return list(config.evaluate.metrics)
    dataset = registry.get("dmg.datasets", config.data.dataset.name)
    return list(getattr(dataset, "default_metrics", GENERIC_METRICS))


TRUE_PREFIX = "true_"
"""Datasets with known parameters (synthetic twins) store them as attributes ``true_<PARAM>``."""


@torch.no_grad()
def learned_parameters(model: DeltaModel, batch: Batch) -> dict[str, torch.Tensor]:
    """Physical parameters the model's couplings supply for ``batch`` (before the physics runs)."""
    ctx = CouplingContext(batch=batch, networks=model.networks, phy_model=model.phy_model)
    for coupling in model.couplings:
        coupling.before(ctx)
    return ctx.params


def learned_parameter_summary(
    config: RunConfig, model: DeltaModel, normalizer: Normalizer, data: ArrayDataset, warmup: int
) -> dict[str, np.ndarray]:
    """Each learned parameter per unit ``[unit]``: averaged over components and, if dynamic, over time."""
    spec = model.phy_model.parameter_spec
    roles = config.data.roles.model_copy(update={"targets": {}})
    param = next(iter(model.parameters()))
    units = np.arange(data.n_units)
    batch = make_batch(data, roles, normalizer, units, 0, data.n_time - warmup, warmup, dtype=param.dtype)
    summary = {}
    for name, value in learned_parameters(model, batch.to(param.device)).items():
        p = spec[name]
        value = value.float()
        if spec.is_dynamic(name) and value.dim() == (3 if p.per_component else 2):
            value = value.mean(0)
        if p.per_component:
            value = value.mean(-1)
        summary[name] = value.cpu().numpy()
    return summary


def parameter_recovery(
    spec: ParameterSpec, learned: Mapping[str, np.ndarray], data: ArrayDataset
) -> dict[str, dict[str, float | None]]:
    """How well learned parameters (see :func:`learned_parameter_summary`) match known ones.

    Known values are attributes ``true_<PARAM>`` of the dataset (synthetic twins have them). Reported
    per parameter: the median absolute error as a fraction of the parameter's range, and the
    correlation across units.
    """
    report = {}
    for name, estimate in learned.items():
        if f"{TRUE_PREFIX}{name}" not in data.attribute_names:
            continue
        truth = data.attribute(f"{TRUE_PREFIX}{name}")
        width = (spec[name].high - spec[name].low) or 1.0
        corr = np.corrcoef(estimate, truth)[0, 1] if estimate.std() > 0 and truth.std() > 0 else float("nan")
        report[name] = {
            "median_abs_error_of_range": float(np.median(np.abs(estimate - truth)) / width),
            "correlation": _finite_or_none(float(corr)),
        }
    return report


def simulate(
    run_dir: str | Path,
    start: str | None,
    end: str | None,
    units: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    checkpoint: str = "best",
) -> Path:
    """Run a trained model on a new period and/or new units (no targets needed); returns the predictions file."""
    folder = RunFolder.existing(run_dir)
    config = load_config(folder.config, overrides)
    _, model, normalizer = load_trained(folder, checkpoint)
    dataset = load_dataset(config)
    ids = list(units) if units else list(dataset.unit_ids)
    period = Period(start=start, end=end)
    data, warmup = period_data(config, dataset, period, ids, strict_warmup=False)
    predictions = predict(config, model, normalizer, data, warmup, with_targets=False)
    stem = folder.path / "simulations" / (name or f"{data.dates[warmup]}_{data.dates[-1]}")
    return save_predictions(stem, predictions, data.unit_ids, data.dates[warmup:], config.output.predictions)


def save_predictions(
    stem: Path, values: Mapping[str, np.ndarray], unit_ids: Sequence[str], dates: np.ndarray, fmt: str = "auto"
) -> Path:
    """Write ``[time, unit]`` arrays with unit ids and dates: NetCDF through xarray when available, else npz."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    use_netcdf = fmt == "netcdf"
    if fmt == "auto":
        try:
            import netCDF4  # noqa: F401
            import xarray  # noqa: F401

            use_netcdf = True
        except ImportError:
            use_netcdf = False
    if use_netcdf:
        import xarray as xr

        path = stem.with_suffix(".nc")
        ds = xr.Dataset(
            {k: (("time", "unit"), v) for k, v in values.items()},
            coords={"time": np.asarray(dates, dtype="datetime64[ns]"), "unit": list(unit_ids)},
        )
        partial = path.with_name(f".{path.name}.partial")
        try:
            ds.to_netcdf(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path
    path = stem.with_suffix(".npz")
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh, unit_ids=np.asarray(unit_ids, dtype=str), dates=np.asarray(dates, dtype="datetime64[D]"), **dict(values)
        )
    return path


def _nan_stat(fn, values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else None


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def format_metrics(report: Mapping[str, Any]) -> str:
    """A plain-text table of the summary metrics of one evaluated period."""
    lines = [f"{report['period']} period {report['start']} to {report['end']} ({report['checkpoint']} checkpoint)"]
    for output, entry in report["targets"].items():
        n = len(entry["per_unit"])
        lines.append(f"{output} ({entry['variable']}), {n} units:")
        lines.append(f"  {'metric':<14}{'median':>10}{'mean':>10}")
        for metric, stats in entry["summary"].items():
            med = "n/a" if stats["median"] is None else f"{stats['median']:.4f}"
            mean = "n/a" if stats["mean"] is None else f"{stats['mean']:.4f}"
            lines.append(f"  {metric:<14}{med:>10}{mean:>10}")
    if report.get("parameters"):
        lines.append("parameter recovery (learned vs true, component mean):")
        lines.append(f"  {'parameter':<14}{'|error|/range':>14}{'corr':>8}")
        for name, entry in report["parameters"].items():
            corr = "n/a" if entry["correlation"] is None else f"{entry['correlation']:.3f}"
            lines.append(f"  {name:<14}{entry['median_abs_error_of_range']:>14.3f}{corr:>8}")
    return "\n".join(lines)
