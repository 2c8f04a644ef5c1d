"""Plots of an evaluated run: file names, labels and units, the training curve, the missing-matplotlib warning."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dmg.core import plots
from dmg.core.cli import main
from dmg.core.data import ArrayDataset
from dmg.core.evaluation import RECOVERY_COLUMNS, format_metrics, format_plots
from dmg.core.plots import PlotsUnavailableWarning, read_training_log, write_plots
from dmg.core.runfolder import RunFolder

UNITS = ("u0", "u1", "u2")
N_TIME = 30


def _report(metrics: tuple[str, ...] = ("nse", "rmse")) -> dict[str, Any]:
    """A metrics report of one target ``Q`` (variable ``flow``) over :data:`UNITS`."""
    per_unit = {u: {m: 0.5 + 0.1 * i for m in metrics} for i, u in enumerate(UNITS)}
    summary = {m: {"median": 0.6, "mean": 0.6} for m in metrics}
    return {
        "period": "test",
        "start": "2000-01-01",
        "end": "2000-01-30",
        "checkpoint": "best",
        "targets": {"Q": {"variable": "flow", "summary": summary, "per_unit": per_unit}},
    }


def _predictions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    observed = rng.random((N_TIME, len(UNITS))).astype(np.float32)
    return {"Q": observed * 0.9, "Q_observed": observed}


def _write_log(folder: Path, valid: bool = True) -> Path:
    """A ``log.csv`` of three epochs, as training writes it."""
    run = RunFolder(folder)
    run.write_log(
        [
            {"epoch": e, "train_loss": 1.0 / e, "valid_loss": 1.2 / e if valid else "", "lr": 0.01, "skipped": 0}
            for e in (1, 2, 3)
        ]
    )
    return run.log


def _plot(tmp_path: Path, **extra: Any) -> list[Path]:
    dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + N_TIME)
    learned = {"k": np.array([0.1, 0.2, 0.3]), "c": np.array([1.0, 1.1, 0.9])}
    return write_plots(tmp_path / "plots", "test", _predictions(), UNITS, dates, _report(), learned, **extra)


@pytest.fixture
def captured(monkeypatch) -> dict[str, Any]:
    """The figures write_plots would save, by file name (kept open, not written, until the test ends)."""
    pytest.importorskip("matplotlib")
    figures: dict[str, Any] = {}

    def keep(plt, fig, path):
        figures[path.name] = fig
        return path

    monkeypatch.setattr(plots, "_save", keep)
    yield figures
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)


def _has_legend(fig: Any) -> bool:
    return bool(fig.legends) or any(ax.get_legend() is not None for ax in fig.axes if ax.get_visible())


# --------------------------------------------------------------------------- files and labels


def test_every_plot_is_written_with_its_name(tmp_path):
    pytest.importorskip("matplotlib")
    written = _plot(
        tmp_path,
        units={"flow": "mm/day"},
        parameter_units={"k": "1/day", "c": ""},
        truths={"k": np.array([0.12, 0.18, 0.33])},
        log=_write_log(tmp_path),
        loss="nse",
    )
    names = {p.name for p in written}
    assert names == {
        "test_series_u0.png",
        "test_series_u1.png",
        "test_series_u2.png",
        "test_metric_cdf.png",
        "test_parameters.png",
        "test_parameter_recovery.png",
        "training_curve.png",
    }
    for path in written:
        assert path.parent == tmp_path / "plots" and path.read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "plots").glob(".*.tmp"))


def test_without_truths_or_log_no_recovery_or_training_curve(tmp_path):
    pytest.importorskip("matplotlib")
    names = {p.name for p in _plot(tmp_path, max_units=1)}
    assert names == {"test_series_u0.png", "test_metric_cdf.png", "test_parameters.png"}


def test_every_plot_has_title_axis_labels_with_units_and_legend(tmp_path, captured):
    _plot(
        tmp_path,
        units={"flow": "mm/day"},
        parameter_units={"k": "1/day", "c": ""},
        truths={"k": np.array([0.12, 0.18, 0.33]), "c": np.array([1.0, 1.2, 0.8])},
        log=_write_log(tmp_path),
        loss="nse",
    )
    for name, fig in captured.items():
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert axes and _has_legend(fig), name
        for ax in axes:
            assert ax.get_title() and ax.get_xlabel(), name
        assert any(ax.get_ylabel() for ax in axes), name
    series = captured["test_series_u1.png"].axes[0]
    assert series.get_ylabel() == "flow (mm/day)" and "nse 0.600" in series.get_title()
    histograms = captured["test_parameters.png"]
    assert [ax.get_xlabel() for ax in histograms.axes[:2]] == ["k (1/day)", "c (dimensionless)"]
    assert [t.get_text() for t in histograms.legends[0].get_texts()] == ["learned", "true"]
    recovery = captured["test_parameter_recovery.png"].axes
    assert recovery[0].get_xlabel() == "true k (1/day)" and recovery[0].get_ylabel() == "learned k (1/day)"
    assert recovery[0].get_title() == f"k: correlation {np.corrcoef([0.1, 0.2, 0.3], [0.12, 0.18, 0.33])[0, 1]:.2f}"
    assert captured["test_metric_cdf.png"].axes[1].get_xlabel() == "rmse (mm/day)"
    assert captured["training_curve.png"].axes[0].get_ylabel() == "nse loss (1 − NSE, dimensionless)"


# --------------------------------------------------------------------------- the training curve


def test_training_log_is_read_from_log_csv(tmp_path):
    log = read_training_log(_write_log(tmp_path, valid=False))
    assert list(log["epoch"]) == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(log["train_loss"], [1.0, 0.5, 1 / 3])
    assert np.isnan(log["valid_loss"]).all()
    assert read_training_log(tmp_path / "missing.csv") == {}


def test_training_curve_plots_the_losses_of_log_csv(tmp_path, captured):
    _plot(tmp_path, max_units=0, log=_write_log(tmp_path))
    ax = captured["training_curve.png"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["training loss"].get_ydata(), [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(lines["validation loss"].get_ydata(), [1.2, 0.6, 0.4])
    assert "lowest validation loss (epoch 3)" in lines


def test_training_curve_without_validation_says_so(tmp_path, captured):
    _plot(tmp_path, max_units=0, log=_write_log(tmp_path, valid=False))
    ax = captured["training_curve.png"].axes[0]
    assert "validation loss" not in {line.get_label() for line in ax.get_lines()}
    assert "no validation period" in ax.get_title()


# --------------------------------------------------------------------------- without matplotlib


def test_missing_matplotlib_warns_once_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(plots, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _plot(tmp_path) == []
        assert _plot(tmp_path, log=_write_log(tmp_path)) == []
    found = [w for w in caught if issubclass(w.category, PlotsUnavailableWarning)]
    assert len(found) == 1 and issubclass(PlotsUnavailableWarning, UserWarning)
    message = str(found[0].message)
    assert 'pip install "dmg-core[plots]"' in message
    assert 'pip install -e "packages/dmg-core[plots]"' in message
    assert not (tmp_path / "plots").exists()


# --------------------------------------------------------------------------- printed text


def test_recovery_table_explains_its_columns():
    report = _report()
    assert RECOVERY_COLUMNS not in format_metrics(report)
    report["parameters"] = {"k": {"median_abs_error_of_range": 0.1, "correlation": 0.9}}
    lines = format_metrics(report).splitlines()
    assert lines[-2].split() == ["k", "0.100", "0.900"]
    assert lines[-1] == f"  {RECOVERY_COLUMNS}"
    assert "fraction of its allowed range" in lines[-1] and "correlation across units" in lines[-1]


def test_plots_line_says_where_the_plots_are(tmp_path):
    folder = "evaluations/test_best"
    report = {"folder": folder, "plots": [f"{folder}/plots/test_metric_cdf.png", f"{folder}/plots/training_curve.png"]}
    assert format_plots(tmp_path, report) == f"plots: {tmp_path / folder / 'plots'} (2 files)"
    one = {"folder": folder, "plots": [f"{folder}/plots/a.png"]}
    assert format_plots(tmp_path, one) == f"plots: {tmp_path / folder / 'plots'} (1 file)"
    assert format_plots(tmp_path, {"folder": folder}) is None


def test_train_prints_where_the_plots_are(tiny_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = ArrayDataset.load(tiny_run.dataset_path)
    names = (*data.attribute_names, "true_k")
    attributes = np.concatenate([data.attributes, np.array([[0.1], [0.2], [0.3]])], axis=1)
    ArrayDataset(data.data, data.variables, data.unit_ids, data.dates, attributes, names, {"Q": "mm/day"}).save(
        tmp_path / "data.npz"
    )
    config = tiny_run.config()
    config["data"]["dataset"]["path"] = str(tmp_path / "data.npz")
    config["train"]["epochs"] = 2
    config["evaluate"]["plots"] = True
    run = tmp_path / "run"
    assert main(["train", tiny_run.write(config, "plots.yaml"), "--run-dir", str(run)]) == 0
    printed = capsys.readouterr().out.splitlines()
    results = run / "evaluations" / "test_best"
    assert printed[-1] == f"plots: {results / 'plots'} (7 files)"
    assert printed[-2].startswith(f"results: {results}")
    assert printed[-3] == f"  {RECOVERY_COLUMNS}"
    listed = json.loads((results / "metrics.json").read_text())["plots"]
    prefix = "evaluations/test_best/plots"
    assert sorted(listed) == sorted(f"{prefix}/{p.name}" for p in (results / "plots").iterdir())
    expected = {"test_parameter_recovery.png", "training_curve.png", "test_series_u2.png"}
    assert {f"{prefix}/{name}" for name in expected} <= set(listed)
