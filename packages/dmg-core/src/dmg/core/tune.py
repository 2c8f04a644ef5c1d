"""``dmg tune``: hyper-parameter search over a run config with Optuna.

The search space is the config's ``tune.space``: any dotted key with a numeric range (optionally on a
log scale or in steps) or a list of choices. Each trial is an ordinary run in ``STUDY/trial_NNNN/``
trained on the config with the trial's values; its objective is the best validation loss, reported
after every epoch so that poor trials are pruned. The study lives in ``STUDY/study.db`` (SQLite):
running ``dmg tune`` again continues it (trials a killed process left running are marked failed), and
``--jobs N`` runs N worker processes on the same study. At the end ``STUDY/best.yaml`` holds the best
config, ``STUDY/trials.csv`` every trial, and ``STUDY/plots/`` the optimisation history and the
importance of each parameter.

Needs the ``tune`` extra: ``pip install "dmg-core[tune]"``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmg.core.config import RunConfig, SearchRange, apply_override, dump_config, load_config
from dmg.core.errors import ConfigError, DmgError
from dmg.core.io import atomic_write_text

STUDY_FILE = "study.db"
BEST_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"


class TuneError(DmgError, RuntimeError):
    """The search cannot run (Optuna missing, no validation period, no trial finished)."""


@dataclass(frozen=True)
class TuneResult:
    """What a search produced."""

    study_dir: Path
    best_value: float
    best_params: dict[str, Any]
    n_complete: int
    n_pruned: int
    n_failed: int


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise TuneError(
            'dmg tune needs Optuna: pip install "dmg-core[tune]" '
            '(from a clone: pip install -e "packages/dmg-core[tune]")'
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_path(config: RunConfig, config_file: str | Path) -> Path:
    """The default study folder: ``output.root/tune_<output.name or config file stem>``."""
    return Path(config.output.root) / f"tune_{config.output.name or Path(config_file).stem}"


def tune(
    config_file: str | Path,
    overrides: Sequence[str] = (),
    trials: int | None = None,
    jobs: int = 1,
    study_dir: str | Path | None = None,
) -> TuneResult:
    """Run (or continue) the search of ``config_file``'s ``tune`` section; returns its result.

    Parameters
    ----------
    config_file
        A run config with a ``tune`` section and a validation period (``data.valid``).
    overrides
        ``key=value`` overrides, as for ``dmg train``.
    trials
        Total trials of the study, finished and pruned ones included (default: ``tune.trials``).
    jobs
        Worker processes sharing the study.
    study_dir
        Folder of the study (default: :func:`study_path`).
    """
    optuna = _optuna()
    config = load_config(config_file, overrides)
    settings = _settings(config)
    total = trials or settings.trials
    folder = Path(study_dir) if study_dir is not None else study_path(config, config_file)
    folder.mkdir(parents=True, exist_ok=True)
    study = _study(optuna, config, folder)
    _fail_abandoned(optuna, study)
    if jobs <= 1:
        _optimize(optuna, study, config, folder, total)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [
                pool.submit(_worker, str(config_file), list(overrides), str(folder), total, jobs, worker)
                for worker in range(jobs)
            ]
            for future in futures:
                future.result()
        study = _study(optuna, config, folder)
    return report(optuna, study, config, folder)


# --------------------------------------------------------------------------- the study


def _settings(config: RunConfig) -> Any:
    if config.tune is None or not config.tune.space:
        raise ConfigError(
            "tune.space: dmg tune needs a search space, e.g. tune: {space: {train.optimizer.lr: "
            "{low: 0.0001, high: 0.01, log: true}}}"
        )
    if config.data.valid is None:
        raise ConfigError("data.valid: dmg tune scores trials on the validation period; configure one")
    base = config.model_dump(mode="json")
    for key, search in config.tune.space.items():  # every key must take its values
        value = search.choices[0] if search.choices is not None else search.low
        trial_config(base, {key: value}, f" (tune.space.{key})")
    return config.tune


def _study(optuna: Any, config: RunConfig, folder: Path, worker: int = 0) -> Any:
    settings = config.tune
    assert settings is not None
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=settings.warmup_epochs)
        if settings.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    seed = (settings.seed if settings.seed is not None else config.seed) + 7919 * worker  # workers draw apart
    return optuna.create_study(
        study_name="dmg",
        storage=f"sqlite:///{(folder / STUDY_FILE).resolve()}",
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
    )


def _fail_abandoned(optuna: Any, study: Any) -> None:
    """Mark trials left running by a process that died as failed, so the study can go on."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def _worker(config_file: str, overrides: list[str], folder: str, total: int, jobs: int, worker: int) -> None:
    optuna = _optuna()
    config = load_config(config_file, overrides)
    _optimize(optuna, _study(optuna, config, Path(folder), worker), config, Path(folder), total, jobs)


def _optimize(optuna: Any, study: Any, config: RunConfig, folder: Path, total: int, jobs: int = 1) -> None:
    """Run this process's share of the trials still missing (the study may end one trial per job over)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=states))
    if done >= total:
        return
    base = config.model_dump(mode="json")
    study.optimize(
        lambda trial: _objective(optuna, trial, config, base, folder),
        n_trials=math.ceil((total - done) / jobs),
        callbacks=[optuna.study.MaxTrialsCallback(total, states=states)],
        catch=(DmgError,),
    )


def trial_config(base: dict[str, Any], values: dict[str, Any], where: str = "") -> RunConfig:
    """The run config ``base`` (a JSON-like dump) with ``values`` set at their dotted keys."""
    data = json.loads(json.dumps(base))
    for key, value in values.items():
        apply_override(data, f"{key}={json.dumps(value)}")
    try:
        return load_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{exc}{where}") from None


def suggest(trial: Any, key: str, search: SearchRange) -> Any:
    """The trial's value for ``key``."""
    if search.choices is not None:
        return trial.suggest_categorical(key, search.choices)
    if search.is_integer:
        return trial.suggest_int(key, int(search.low), int(search.high), step=int(search.step or 1), log=search.log)
    return trial.suggest_float(key, float(search.low), float(search.high), step=search.step, log=search.log)


def _objective(optuna: Any, trial: Any, config: RunConfig, base: dict[str, Any], folder: Path) -> float:
    from dmg.core import workflows

    assert config.tune is not None
    values = {key: suggest(trial, key, search) for key, search in config.tune.space.items()}
    run = trial_config(base, values)
    run.train.progress = False
    best = {"loss": math.inf}

    def report(trainer: Any, record: Any) -> None:
        best["loss"] = trainer.state.best_valid
        trial.report(record.valid_loss, record.epoch)
        if trial.should_prune():
            print(f"trial {trial.number}: pruned after epoch {record.epoch} (valid loss {record.valid_loss:.4g})")
            raise optuna.TrialPruned(f"valid loss {record.valid_loss:.4g} after epoch {record.epoch}")

    shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
    print(f"trial {trial.number}: {shown}", flush=True)
    workflows.train(run, folder / f"trial_{trial.number:04d}", callbacks=[report])
    print(f"trial {trial.number}: best valid loss {best['loss']:.4g}", flush=True)
    return float(best["loss"])


# --------------------------------------------------------------------------- report


def report(optuna: Any, study: Any, config: RunConfig, folder: Path) -> TuneResult:
    """Write ``best.yaml``, ``trials.csv`` and the plots; return the result."""
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == state.COMPLETE]
    if not complete:
        raise TuneError(f"no trial of the study in {folder} finished; see the messages above")
    best = study.best_trial
    atomic_write_text(folder / BEST_FILE, dump_config(trial_config(config.model_dump(mode="json"), best.params)))
    atomic_write_text(folder / TRIALS_FILE, _trials_table(trials, list(config.tune.space if config.tune else ())))
    _plots(optuna, study, folder / "plots")
    count = {s: sum(t.state == s for t in trials) for s in (state.COMPLETE, state.PRUNED, state.FAIL)}
    return TuneResult(
        folder, float(best.value), dict(best.params), count[state.COMPLETE], count[state.PRUNED], count[state.FAIL]
    )


def _trials_table(trials: Sequence[Any], keys: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", "valid_loss", "seconds", *keys])
    for t in trials:
        seconds = t.duration.total_seconds() if t.duration is not None else ""
        value = "" if t.value is None else t.value
        writer.writerow([t.number, t.state.name.lower(), value, seconds, *(t.params.get(k, "") for k in keys)])
    return buffer.getvalue()


def _plots(optuna: Any, study: Any, folder: Path) -> list[Path]:
    """Optimisation history and parameter importances, when matplotlib is installed and they can be computed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as views
    except ImportError:
        return []
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, draw in (
        ("history.png", views.plot_optimization_history),
        ("importance.png", views.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw(study)
        except (ValueError, RuntimeError):  # e.g. importances need two finished trials with different values
            continue
        except ImportError:  # Optuna before 5 computes importances with scikit-learn
            continue
        figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
        figure.tight_layout()
        figure.savefig(folder / name, dpi=110)
        plt.close(figure)
        written.append(folder / name)
    return written


def format_result(result: TuneResult) -> str:
    """A summary of a search for the command line."""
    params = "\n".join(f"  {key}: {_short(value)}" for key, value in result.best_params.items())
    return (
        f"study {result.study_dir}: {result.n_complete} finished, {result.n_pruned} pruned, {result.n_failed} failed\n"
        f"best valid loss {result.best_value:.4g} with\n{params}\n"
        f"best config: {result.study_dir / BEST_FILE}; every trial: {result.study_dir / TRIALS_FILE}"
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
