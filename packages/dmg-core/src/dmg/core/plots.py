"""Plots written to a run folder's ``plots/`` by ``dmg evaluate`` (and ``dmg train``, which evaluates).

They need matplotlib, installed by the ``plots`` extra: ``pip install "dmg-core[plots]"``. Without it
nothing is drawn and one :class:`PlotsUnavailableWarning` (once per process) says what to install.
``<period>`` is the evaluated period (``train``, ``valid`` or ``test``):

* ``<period>_series_<unit>.png`` — observed and simulated series of every target, one file per unit
  (the first ``evaluate.plot_units`` units), in the target's physical unit, titled with the first
  evaluated metric;
* ``<period>_metric_cdf.png`` — the empirical CDF over units of the first evaluated metrics per target;
* ``<period>_parameters.png`` — histograms over units of every learned parameter, in its physical
  unit, with the true values when the dataset has them (attributes ``true_<PARAM>``);
* ``<period>_parameter_recovery.png`` — learned against true value of each parameter with known values,
  one panel each, with the 1:1 line and the correlation across units (synthetic twins only);
* ``training_curve.png`` — training and validation loss per epoch, read from the run's ``log.csv``.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_CDF_METRICS = 4
"""How many of the evaluated metrics (the first ones) get a CDF panel."""

MISSING_MATPLOTLIB = (
    "plots skipped: matplotlib is not installed; install the plots extra with "
    'pip install "dmg-core[plots]" (from a clone of the repository: pip install -e "packages/dmg-core[plots]")'
)
"""What the warning says when matplotlib is missing."""

METRIC_UNITS = {"rmse": "{}", "mae": "{}", "bias": "{}", "mse": "({})²"}
"""Metrics measured in the target's unit (``{}`` stands for it); every other metric is dimensionless."""

LOSS_UNITS = {"nse": "1 − NSE, dimensionless", "kge": "1 − KGE, dimensionless", "rmse": "{}", "mse": "({})²"}
"""What the built-in training losses measure, in the target's unit where ``{}`` stands for it."""

TRAINING_CURVE = "training_curve.png"
"""File name of the training-curve plot (one per run folder, rewritten at each evaluation)."""

_WARNED: set[str] = set()
"""Warnings already given in this process (each is given once)."""


class PlotsUnavailableWarning(UserWarning):
    """matplotlib is not installed, so no plots are written; given once per process."""


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def warn_missing_matplotlib() -> None:
    """Warn, once per process, that plots are skipped and which extra installs matplotlib."""
    if "matplotlib" in _WARNED:
        return
    _WARNED.add("matplotlib")
    warnings.warn(MISSING_MATPLOTLIB, PlotsUnavailableWarning, stacklevel=3)


def write_plots(
    folder: Path,
    period: str,
    predictions: Mapping[str, np.ndarray],
    unit_ids: Sequence[str],
    dates: np.ndarray,
    report: Mapping[str, Any],
    learned: Mapping[str, np.ndarray],
    max_units: int = 12,
    *,
    units: Mapping[str, str] | None = None,
    parameter_units: Mapping[str, str] | None = None,
    truths: Mapping[str, np.ndarray] | None = None,
    log: Path | None = None,
    loss: str | None = None,
) -> list[Path]:
    """Write the plots of one evaluated period (file names in the module docstring).

    Parameters
    ----------
    folder
        The run's ``plots/`` folder (created if missing).
    period
        Name of the evaluated period, the prefix of the file names.
    predictions
        ``[time, unit]`` arrays: every target output and ``<output>_observed``.
    unit_ids, dates
        The units (columns) and dates (rows) of ``predictions``.
    report
        The metrics report of the period (``targets``: variable, summary and per-unit metrics).
    learned
        Each learned parameter per unit ``[unit]``, in its physical unit.
    max_units
        How many units (the first ones) get a series plot.
    units
        Physical unit of each dataset variable by name (``ArrayDataset.units``), e.g. ``"mm/day"``.
    parameter_units
        Physical unit of each learned parameter (``""`` or missing: dimensionless).
    truths
        Known value of parameters per unit ``[unit]`` (synthetic twins), same units as ``learned``.
    log
        The run's ``log.csv``; no training curve when ``None`` or missing.
    loss
        Name of the training loss, for the training curve's axis.

    Returns
    -------
    list of Path
        The files written; none (and one :class:`PlotsUnavailableWarning`) without matplotlib.
    """
    if not matplotlib_available():
        warn_missing_matplotlib()
        return []
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    units, parameter_units, truths = dict(units or {}), dict(parameter_units or {}), dict(truths or {})
    targets = report["targets"]
    metrics = list(next(iter(targets.values()))["summary"]) if targets else []
    figures: list[tuple[str, Any]] = []
    for i, unit in enumerate(list(unit_ids)[:max_units]):
        fig = _series_figure(plt, period, unit, i, dates, predictions, targets, metrics[:1], units)
        figures.append((f"{period}_series_{_safe(unit)}.png", fig))
    figures.append((f"{period}_metric_cdf.png", _metric_cdf_figure(plt, period, targets, metrics, units)))
    figures.append((f"{period}_parameters.png", _parameters_figure(plt, period, learned, parameter_units, truths)))
    figures.append(
        (f"{period}_parameter_recovery.png", _recovery_figure(plt, period, learned, parameter_units, truths))
    )
    loss_label = _loss_label(loss, _shared_unit(targets, units))
    figures.append((TRAINING_CURVE, _training_figure(plt, read_training_log(log) if log else {}, loss_label)))
    return [_save(plt, fig, folder / name) for name, fig in figures if fig is not None]


def read_training_log(path: Path) -> dict[str, np.ndarray]:
    """The columns of a run's ``log.csv`` as float arrays (empty or unreadable cells are NaN).

    Parameters
    ----------
    path
        The ``log.csv`` a training run writes: one row per finished epoch.

    Returns
    -------
    dict of str to numpy.ndarray
        Each column by name (``epoch``, ``train_loss``, ``valid_loss``, ...); empty if the file is
        missing or has no rows.
    """
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {name: np.array([_number(row.get(name)) for row in rows]) for name in rows[0]}


# --------------------------------------------------------------------------- figures


def _series_figure(
    plt: Any,
    period: str,
    unit: str,
    column: int,
    dates: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    targets: Mapping[str, Any],
    metrics: Sequence[str],
    units: Mapping[str, str],
) -> Any:
    """Observed and simulated series of every target for one unit, one panel per target."""
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3.2 * len(targets)), squeeze=False)
    for ax, (output, entry) in zip(axes[:, 0], targets.items()):
        variable = entry["variable"]
        ax.plot(dates, predictions[f"{output}_observed"][:, column], color="black", lw=1.0, label="observed")
        ax.plot(dates, predictions[output][:, column], color="tab:blue", lw=1.0, label="simulated")
        value = entry["per_unit"][unit].get(metrics[0]) if metrics else None
        score = f", {metrics[0]} {value:.3f}" if value is not None else ""
        ax.set_title(f"unit {unit}, {period} period: {output} ({variable}){score}")
        ax.set_xlabel("date")
        ax.set_ylabel(_label(variable, units.get(variable, ""), dimensionless=""))
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _metric_cdf_figure(
    plt: Any, period: str, targets: Mapping[str, Any], metrics: Sequence[str], units: Mapping[str, str]
) -> Any | None:
    """The distribution over units of the first evaluated metrics, one panel per metric."""
    shown = list(metrics[:MAX_CDF_METRICS])
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 4), squeeze=False)
    n_units = max(len(entry["per_unit"]) for entry in targets.values())
    for ax, metric in zip(axes[0], shown):
        for output, entry in targets.items():
            values = np.sort([v[metric] for v in entry["per_unit"].values() if v.get(metric) is not None])
            if values.size:
                fraction = np.arange(1, values.size + 1) / values.size
                ax.step(values, fraction, where="post", label=f"{output} ({entry['variable']})")
        ax.set_title(f"{metric} over units")
        ax.set_xlabel(_label(metric, _metric_unit(metric, targets, units), dimensionless=""))
        ax.set_ylabel("fraction of units ≤ value")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.suptitle(f"{period} period: distribution of metrics over {n_units} units")
    fig.tight_layout()
    return fig


def _parameters_figure(
    plt: Any,
    period: str,
    learned: Mapping[str, np.ndarray],
    parameter_units: Mapping[str, str],
    truths: Mapping[str, np.ndarray],
) -> Any | None:
    """Histograms over units of every learned parameter, with the true values where known."""
    if not learned:
        return None
    from matplotlib.ticker import MaxNLocator

    fig, axes = _grid(plt, len(learned), (3.4, 2.9))
    for i, (ax, (name, values)) in enumerate(zip(axes, learned.items())):
        values, truth = _finite(values), _finite(truths[name]) if name in truths else None
        bins = np.histogram_bin_edges(np.concatenate([values, truth]) if truth is not None else values, bins=20)
        ax.hist(values, bins=bins, color="tab:green", alpha=0.7, label="learned")
        if truth is not None:
            ax.hist(truth, bins=bins, histtype="step", color="black", lw=1.2, label="true")
        ax.set_title(name)
        ax.set_xlabel(_label(name, parameter_units.get(name, "")))
        if i % _columns(len(learned)) == 0:
            ax.set_ylabel("number of units")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _figure_legend(fig, axes[0])
    known = " against their true values" if truths else ""
    fig.suptitle(
        f"{period} period: learned parameters{known} over {len(next(iter(learned.values())))} units\n"
        "(per unit: mean over the parallel components, and over time for dynamic parameters)"
    )
    fig.tight_layout()
    return fig


def _recovery_figure(
    plt: Any,
    period: str,
    learned: Mapping[str, np.ndarray],
    parameter_units: Mapping[str, str],
    truths: Mapping[str, np.ndarray],
) -> Any | None:
    """Learned against true value of each parameter with known values, with the 1:1 line."""
    names = [name for name in learned if name in truths]
    if not names:
        return None
    fig, axes = _grid(plt, len(names), (3.2, 3.2))
    for ax, name in zip(axes, names):
        truth, estimate = truths[name], learned[name]
        low, high = _padded_range(np.concatenate([truth, estimate]))
        ax.plot([low, high], [low, high], color="grey", ls="--", lw=1.0, label="1:1 line")
        ax.scatter(truth, estimate, s=14, color="tab:blue", label="one unit")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_title(f"{name}: correlation {_format_correlation(_correlation(estimate, truth))}")
        unit = parameter_units.get(name, "")
        ax.set_xlabel(_label(f"true {name}", unit))
        ax.set_ylabel(_label(f"learned {name}", unit))
    _figure_legend(fig, axes[0])
    fig.suptitle(
        f"{period} period: learned against true parameters, {len(truths[names[0]])} units\n"
        "(learned: mean over the parallel components; correlation across units)"
    )
    fig.tight_layout()
    return fig


def _training_figure(plt: Any, log: Mapping[str, np.ndarray], loss_label: str) -> Any | None:
    """Training and validation loss per epoch from the columns of ``log.csv``; ``loss_label`` names the y axis."""
    epochs, train = log.get("epoch"), log.get("train_loss")
    if epochs is None or train is None or not np.isfinite(train).any():
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(epochs, train, marker="o", ms=3, color="tab:blue", label="training loss")
    valid = log.get("valid_loss")
    has_valid = valid is not None and bool(np.isfinite(valid).any())
    if has_valid:
        ax.plot(epochs, valid, marker="o", ms=3, color="tab:orange", label="validation loss")
    _mark_lowest(ax, epochs, valid if has_valid else train, "validation" if has_valid else "training")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    no_valid = "" if has_valid else " (no validation period configured)"
    ax.set_title(f"training: loss per epoch (lower is better), {len(epochs)} epochs{no_valid}")
    ax.legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- helpers


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically as PNG and close it."""
    from dmg.core.io import atomic_path

    try:
        with atomic_path(path) as partial:
            fig.savefig(partial, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _columns(n: int) -> int:
    """Panels per row of a grid of ``n`` panels."""
    return min(4, n)


def _grid(plt: Any, n: int, panel: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels of ``panel`` inches (width, height), at most 4 a row; unused ones hidden."""
    cols = _columns(n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows + 0.8), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _figure_legend(fig: Any, ax: Any) -> None:
    """One legend for the whole figure, from the artists of ``ax``, at its top right."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncols=len(labels), frameon=False)


def _mark_lowest(ax: Any, epochs: np.ndarray, values: np.ndarray, which: str) -> None:
    """Mark the epoch with the lowest finite ``values``."""
    if not np.isfinite(values).any():
        return
    i = int(np.nanargmin(values))
    ax.axvline(epochs[i], color="grey", ls=":", lw=1.0, label=f"lowest {which} loss (epoch {epochs[i]:.0f})")


def _label(name: str, unit: str, dimensionless: str = "dimensionless") -> str:
    """An axis label ``name (unit)``; ``name (dimensionless)`` (or just ``name``) without a unit."""
    unit = unit or dimensionless
    return f"{name} ({unit})" if unit else name


def _shared_unit(targets: Mapping[str, Any], units: Mapping[str, str]) -> str:
    """The physical unit every target shares; ``""`` if they differ or none is known."""
    found = {units.get(entry["variable"], "") for entry in targets.values()}
    return found.pop() if len(found) == 1 else ""


def _metric_unit(metric: str, targets: Mapping[str, Any], units: Mapping[str, str]) -> str:
    """The unit of ``metric`` when every target shares one unit; ``""`` if dimensionless or mixed."""
    template, unit = METRIC_UNITS.get(metric), _shared_unit(targets, units)
    return template.format(unit) if template and unit else ""


def _loss_label(loss: str | None, unit: str) -> str:
    """The training curve's y label: the loss's name and what it measures, when known."""
    if not loss:
        return "loss"
    template = LOSS_UNITS.get(loss, "")
    if "{}" in template:
        template = template.format(unit) if unit else ""
    return f"{loss} loss ({template})" if template else f"{loss} loss"


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    """The finite range of ``values`` widened by 5% on each side (never empty)."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.05 * (high - low) or 0.05 * max(abs(low), 1.0)
    return low - pad, high + pad


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite entries of ``values``, flattened."""
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of ``a`` and ``b``; NaN when either is constant."""
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _format_correlation(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2f}"


def _number(text: str | None) -> float:
    """A log cell as a float; NaN when empty or not a number."""
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
