"""Plots written to a run folder by ``dmg evaluate`` when matplotlib is installed.

* ``<period>_series_<unit>.png`` — observed and simulated series of every target, one file per unit,
  titled with the first evaluated metric;
* ``<period>_metric_cdf.png`` — the empirical CDF over units of the first evaluated metrics per target;
* ``<period>_parameters.png`` — distributions over units of every learned parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_CDF_METRICS = 4
"""How many of the evaluated metrics (the first ones) get a CDF panel."""


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(
    folder: Path,
    period: str,
    predictions: Mapping[str, np.ndarray],
    unit_ids: Sequence[str],
    dates: np.ndarray,
    report: Mapping[str, Any],
    learned: Mapping[str, np.ndarray],
    max_units: int = 12,
) -> list[Path]:
    """Write the plots of one evaluated period; returns the files written (none without matplotlib)."""
    if not matplotlib_available():
        return []
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    targets = report["targets"]
    metrics = list(next(iter(targets.values()))["summary"]) if targets else []

    def save(fig: Any, name: str) -> None:
        path = folder / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    for i, unit in enumerate(list(unit_ids)[:max_units]):
        fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3 * len(targets)), squeeze=False)
        for ax, (output, entry) in zip(axes[:, 0], targets.items()):
            ax.plot(dates, predictions[f"{output}_observed"][:, i], color="black", lw=1.0, label="observed")
            ax.plot(dates, predictions[output][:, i], color="tab:blue", lw=1.0, label="simulated")
            value = entry["per_unit"][unit].get(metrics[0]) if metrics else None
            score = f"  {metrics[0]} {value:.3f}" if value is not None else ""
            ax.set_title(f"{unit}: {output} ({entry['variable']}){score}")
            ax.legend(loc="upper right")
        save(fig, f"{period}_series_{_safe(unit)}.png")

    cdf_metrics = metrics[:MAX_CDF_METRICS]
    if cdf_metrics:
        fig, axes = plt.subplots(1, len(cdf_metrics), figsize=(5 * len(cdf_metrics), 4), squeeze=False)
        for ax, metric in zip(axes[0], cdf_metrics):
            for output, entry in targets.items():
                values = np.sort([v[metric] for v in entry["per_unit"].values() if v.get(metric) is not None])
                if values.size:
                    ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=output)
            ax.set_xlabel(metric)
            ax.set_ylabel("fraction of units")
            ax.legend()
        save(fig, f"{period}_metric_cdf.png")

    if learned:
        n = len(learned)
        cols = min(4, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, (name, values) in zip(axes.flat, learned.items()):
            ax.hist(values, bins=20, color="tab:green")
            ax.set_title(name)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.tight_layout()
        save(fig, f"{period}_parameters.png")
    return written


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
