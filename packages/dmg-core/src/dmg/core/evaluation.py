"""Evaluation of a trained run: its model, predictions over a period, metrics, parameter recovery.

``evaluate`` writes ``evaluations/<period>_<checkpoint>/`` into the run folder (holding its lock): the
metrics as JSON and CSV, the predictions and the plots (:mod:`dmg.core.plots`). :func:`load_trained` and
:func:`predict` are shared with ``simulate``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmg.core import checkpoints, provenance, registry
from dmg.core.build import build_model, load_dataset
from dmg.core.config import GENERIC_METRICS, RunConfig, load_config
from dmg.core.couplings import CouplingContext
from dmg.core.data.batch import Batch
from dmg.core.data.batching import make_batch
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.data.sampler import sequential_windows
from dmg.core.distributed import resolve_device
from dmg.core.errors import ConfigError, InputError
from dmg.core.io import atomic_open, atomic_path, atomic_write_text
from dmg.core.model import DeltaModel
from dmg.core.parameters import ParameterSpec
from dmg.core.plots import write_plots
from dmg.core.run_data import check_targets, period_data, unit_split
from dmg.core.runfolder import CHECKPOINT_NAMES, Evaluation, RunFolder

TRUE_PREFIX = "true_"
"""Datasets with known parameters (synthetic twins) store them as attributes ``true_<PARAM>``."""


class CheckpointFallbackWarning(UserWarning):
    """The checkpoint asked for is missing and another one is used; the report says which."""


# --------------------------------------------------------------------------- the trained model


def load_normalizer(folder: RunFolder) -> Normalizer:
    """The run's normalizer; a missing or damaged file is an error naming it."""
    try:
        return Normalizer.load(folder.normalizer)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise InputError(f"{folder.normalizer} is damaged and cannot be read ({exc})") from None


@dataclass(frozen=True)
class ChosenCheckpoint:
    """The checkpoint file an evaluation uses, an honest label of it, and the name of its results folder."""

    path: Path
    label: str
    key: str
    content: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The file's content (on the CPU) when choosing it already read it."""


def choose_checkpoint(folder: RunFolder, wanted: str) -> ChosenCheckpoint:
    """The checkpoint file to use for ``wanted``: ``best``, ``last`` or the path of a checkpoint file.

    ``best`` falls back to ``last`` (with a warning and the label saying so) when a run has no
    ``best.pt`` yet; a ``best.pt`` older than the best epoch ``last.pt`` records is refused.
    """
    if wanted not in CHECKPOINT_NAMES:
        path = Path(wanted)
        if not path.is_file():
            raise InputError(f"--checkpoint {wanted}: give best, last or the path of a checkpoint file")
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)
        return ChosenCheckpoint(path, f"file {path}", f"file_{stem}")
    path = folder.checkpoint(wanted)
    last = folder.checkpoint("last")
    content = None
    if wanted == "best" and path.is_file() and last.is_file():
        saved_last = checkpoints.load(last, "cpu")
        if "train_state" in saved_last:
            content = checkpoints.load(path, "cpu")
            checkpoints.check_best(saved_last, content, path)
    if path.is_file():
        return ChosenCheckpoint(path, wanted, wanted, content)
    if wanted == "best" and last.is_file():
        warnings.warn(
            f"{folder.path} has no best.pt (no epoch finished yet); using last.pt", CheckpointFallbackWarning, 2
        )
        return ChosenCheckpoint(last, "last, as best.pt is missing", "last")
    raise InputError(f"run {folder.path} has no checkpoint {path.name}; has training finished an epoch?")


def load_trained(
    folder: RunFolder, checkpoint: str = "best", overrides: Sequence[str] = ()
) -> tuple[RunConfig, DeltaModel, Normalizer, ChosenCheckpoint]:
    """The config, the trained model, the normalizer of a run, and the checkpoint used (``best``, ``last``
    or a checkpoint file's path)."""
    config = load_config(folder.config, overrides)
    chosen = choose_checkpoint(folder, checkpoint)
    device = resolve_device(config.device)
    model = build_model(config).to(device)
    saved = chosen.content if chosen.content is not None else checkpoints.load(chosen.path, device)
    checkpoints.load_model_state(model, saved, chosen.path)
    model.eval()
    return config, model, load_normalizer(folder), chosen


# --------------------------------------------------------------------------- predictions


@torch.no_grad()
def predict(
    config: RunConfig,
    model: DeltaModel,
    normalizer: Normalizer,
    data: ArrayDataset,
    warmup: int,
    with_targets: bool = True,
) -> dict[str, np.ndarray]:
    """Every ``[time, unit]`` output over the period after ``warmup``, as ``[time - warmup, unit]`` arrays.

    Raises
    ------
    InputError
        If an output is non-finite, naming the output, the unit and the first date.
    """
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
    check_predictions(outputs, data, warmup)
    return outputs


def check_predictions(outputs: Mapping[str, np.ndarray], data: ArrayDataset, warmup: int) -> None:
    """Refuse ``[time - warmup, unit]`` outputs over ``data`` with a non-finite value.

    Raises
    ------
    InputError
        Naming the output, the number of units, the first unit and its date.
    """
    for name, value in outputs.items():
        bad = ~np.isfinite(value)
        if bad.any():
            step, unit = (int(i[0]) for i in np.nonzero(bad))
            raise InputError(
                f"the model's output {name} is non-finite for {int(bad.any(0).sum())} of {data.n_units} units, first "
                f"at unit {data.unit_ids[unit]} on {data.dates[warmup + step]}; check that unit's inputs for "
                "extreme values or wrong units"
            )


def save_predictions(
    stem: Path, values: Mapping[str, np.ndarray], unit_ids: Sequence[str], dates: np.ndarray, fmt: str = "auto"
) -> Path:
    """Write ``[time, unit]`` arrays with unit ids and dates: NetCDF through xarray when available, else npz."""
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
        with atomic_path(path) as partial:
            ds.to_netcdf(partial)
        return path
    path = stem.with_suffix(".npz")
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh, unit_ids=np.asarray(unit_ids, dtype=str), dates=np.asarray(dates, dtype="datetime64[D]"), **dict(values)
        )
    return path


# --------------------------------------------------------------------------- evaluation


def evaluate(run_dir: str | Path, period: str = "test", checkpoint: str | None = None) -> dict[str, Any]:
    """Metrics per unit and summarised, for one period of a run and one checkpoint.

    Writes ``evaluations/<period>_<checkpoint>/`` in the run folder: ``metrics.json`` (the report
    returned), ``metrics.csv`` (one row per unit), the predictions and the plots. The report's
    ``folder`` is that folder and ``plots`` lists the plot files, relative to the run folder, when
    ``evaluate.plots`` is on (none without matplotlib). ``checkpoint``: ``best``, ``last`` or the
    path of a checkpoint file (default ``evaluate.checkpoint``).
    """
    folder = RunFolder.existing(run_dir)
    provenance.check_file(folder.versions, f"run {folder.path}")
    with folder.lock("evaluate"):
        config = load_config(folder.config)
        wanted = checkpoint or config.evaluate.checkpoint
        if config.train.seeds:
            return _evaluate_ensemble(folder, config, period, wanted)
        config, model, normalizer, used = load_trained(folder, wanted)
        data, warmup = period_dataset(config, period)
        predictions = predict(config, model, normalizer, data, warmup)
        report = metrics_report(config, data, warmup, predictions, period, used.label)
        results = folder.evaluation(period, used.key)
        report["folder"] = results.path.relative_to(folder.path).as_posix()
        learned = learned_parameter_summary(config, model, normalizer, data, warmup)
        _write_results(folder, results, config, model, data, warmup, predictions, report, learned, folder.log)
    return report


def period_dataset(config: RunConfig, period: str) -> tuple[ArrayDataset, int]:
    """The data of ``period`` (``train``, ``valid`` or ``test``) with its warm-up; its targets checked."""
    chosen = getattr(config.data, period, None)
    if period not in ("train", "valid", "test") or chosen is None:
        raise ConfigError(f"period must be 'train', 'valid' or 'test' (and configured), got {period!r}")
    dataset = load_dataset(config)
    train_ids, test_ids = unit_split(config, dataset)
    units = test_ids if period == "test" else train_ids
    data, warmup = period_data(config, dataset, chosen, units, strict_warmup=False, key=f"data.{period}")
    check_targets(config, data, warmup, period)
    return data, warmup


def _evaluate_ensemble(folder: RunFolder, config: RunConfig, period: str, checkpoint: str) -> dict[str, Any]:
    """Metrics of the mean prediction of a seed ensemble's members, with each member's summary."""
    seeds = list(config.train.seeds or ())
    members = [load_trained(RunFolder.existing(folder.member(seed)), checkpoint) for seed in seeds]
    data, warmup = period_dataset(config, period)
    outputs = [predict(cfg, model, normalizer, data, warmup) for cfg, model, normalizer, _ in members]
    mean = {name: np.mean([out[name] for out in outputs], axis=0) for name in outputs[0]}
    labels = sorted({used.label for *_, used in members})
    report = metrics_report(config, data, warmup, mean, period, f"mean of {len(seeds)} seeds, {', '.join(labels)}")
    report["members"] = {
        str(seed): {
            output: entry["summary"]
            for output, entry in metrics_report(config, data, warmup, dict(out), period, used.label)["targets"].items()
        }
        for seed, out, (*_, used) in zip(seeds, outputs, members)
    }
    results = folder.evaluation(period, members[0][3].key)
    report["folder"] = results.path.relative_to(folder.path).as_posix()
    summaries = [learned_parameter_summary(cfg, model, norm, data, warmup) for cfg, model, norm, _ in members]
    learned = {name: np.mean([s[name] for s in summaries], axis=0) for name in summaries[0]}
    model = members[0][1]
    _write_results(folder, results, config, model, data, warmup, mean, report, learned, None)
    return report


def _write_results(
    folder: RunFolder,
    results: Evaluation,
    config: RunConfig,
    model: DeltaModel,
    data: ArrayDataset,
    warmup: int,
    predictions: dict[str, np.ndarray],
    report: dict[str, Any],
    learned: dict[str, np.ndarray],
    log: Path | None,
) -> None:
    """Parameter recovery, plots, predictions and metrics of one evaluation, into its folder."""
    recovery = parameter_recovery(model.phy_model.parameter_spec, learned, data)
    if recovery:
        report["parameters"] = recovery
    dates = data.dates[warmup:]
    if config.evaluate.plots:
        plots = write_plots(
            results.plots,
            report["period"],
            predictions,
            data.unit_ids,
            dates,
            report,
            learned,
            config.evaluate.plot_units,
            units=data.units,
            parameter_units=parameter_units(model.phy_model.parameter_spec, learned),
            truths=known_parameters(learned, data),
            log=log,
            loss=config.train.loss.name,
        )
        report["plots"] = [path.relative_to(folder.path).as_posix() for path in plots]
    save_predictions(results.predictions, predictions, data.unit_ids, dates, config.output.predictions)
    atomic_write_text(results.metrics_table, metrics_table(report))
    atomic_write_text(results.metrics, json.dumps(report, indent=2))


def metrics_table(report: Mapping[str, Any]) -> str:
    """Every metric per unit as CSV: a ``unit`` column, then ``<output>_<metric>`` columns (empty: undefined)."""
    columns = [(output, metric) for output, entry in report["targets"].items() for metric in entry["summary"]]
    units = next(iter(report["targets"].values()))["per_unit"] if report["targets"] else {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["unit", *(f"{output}_{metric}" for output, metric in columns)])
    for unit in units:
        values = [report["targets"][output]["per_unit"][unit][metric] for output, metric in columns]
        writer.writerow([unit, *("" if v is None else repr(v) for v in values)])
    return buffer.getvalue()


def metrics_report(
    config: RunConfig,
    data: ArrayDataset,
    warmup: int,
    predictions: dict[str, np.ndarray],
    period: str,
    checkpoint_label: str,
) -> dict[str, Any]:
    """Every metric per unit and summarised for each target; adds ``<output>_observed`` to ``predictions``."""
    dates = data.dates[warmup:]
    metric_fns = {name: registry.get("dmg.metrics", name) for name in evaluation_metrics(config)}
    report: dict[str, Any] = {
        "period": period,
        "start": str(dates[0]),
        "end": str(dates[-1]),
        "checkpoint": checkpoint_label,
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
    return report


def evaluation_metrics(config: RunConfig) -> list[str]:
    """``evaluate.metrics``, else the dataset component's ``default_metrics``, else the generic ones."""
    if config.evaluate.metrics is not None:
        return list(config.evaluate.metrics)
    dataset = registry.get("dmg.datasets", config.data.dataset.name)
    return list(getattr(dataset, "default_metrics", GENERIC_METRICS))


# --------------------------------------------------------------------------- learned parameters


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
    for name, truth in known_parameters(learned, data).items():
        estimate = learned[name]
        width = (spec[name].high - spec[name].low) or 1.0
        corr = np.corrcoef(estimate, truth)[0, 1] if estimate.std() > 0 and truth.std() > 0 else float("nan")
        report[name] = {
            "median_abs_error_of_range": float(np.median(np.abs(estimate - truth)) / width),
            "correlation": _finite_or_none(float(corr)),
        }
    return report


def known_parameters(names: Iterable[str], data: ArrayDataset) -> dict[str, np.ndarray]:
    """The true value per unit ``[unit]`` of each of ``names`` that the dataset knows.

    Known values are attributes ``true_<PARAM>`` of the dataset (synthetic twins have them), in the
    parameter's physical unit.
    """
    return {
        name: np.asarray(data.attribute(f"{TRUE_PREFIX}{name}"))
        for name in names
        if f"{TRUE_PREFIX}{name}" in data.attribute_names
    }


def parameter_units(spec: ParameterSpec, names: Iterable[str]) -> dict[str, str]:
    """The physical unit of each of ``names`` that ``spec`` declares (``""``: dimensionless)."""
    return {name: spec[name].unit for name in names if name in spec}


# --------------------------------------------------------------------------- text

RECOVERY_COLUMNS = (
    "|error|/range (0 is perfect): median absolute error of the learned parameter as a fraction of its allowed "
    "range; corr (1 is perfect): correlation across units between learned and true"
)
"""The line under the parameter-recovery table saying what its columns mean."""


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
    for seed, targets in (report.get("members") or {}).items():
        for output, summary in targets.items():
            medians = ", ".join(
                f"{metric} {'n/a' if stats['median'] is None else format(stats['median'], '.4f')}"
                for metric, stats in list(summary.items())[:3]
            )
            lines.append(f"  member seed {seed}, {output} medians: {medians}")
    if report.get("parameters"):
        lines.append("parameter recovery (learned vs true, component mean):")
        lines.append(f"  {'parameter':<14}{'|error|/range':>14}{'corr':>8}")
        for name, entry in report["parameters"].items():
            corr = "n/a" if entry["correlation"] is None else f"{entry['correlation']:.3f}"
            lines.append(f"  {name:<14}{entry['median_abs_error_of_range']:>14.3f}{corr:>8}")
        lines.append(f"  {RECOVERY_COLUMNS}")
    return "\n".join(lines)


def format_plots(run_dir: str | Path, report: Mapping[str, Any]) -> str | None:
    """Where the plots of an evaluation are, e.g. ``plots: runs/x/evaluations/test_best/plots (5 files)``; ``None``
    if none."""
    written = report.get("plots") or []
    if not written:
        return None
    plots = Path(run_dir) / report["folder"] / "plots"
    return f"plots: {plots} ({len(written)} file{'s' if len(written) != 1 else ''})"


def _nan_stat(fn, values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else None


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
