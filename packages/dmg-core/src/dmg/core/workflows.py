"""The workflows of the command line: train a new run, resume one, simulate with a trained one.

Each holds its run folder's lock while it writes the folder. A run is never lost or left
inconsistent: a start that fails before its first checkpoint removes what it wrote, a folder
with no checkpoint (a start killed early) is resumed from scratch or reused by a new run, and
resuming removes leftovers of interrupted writes, repairs a ``best.pt`` that an interrupted
epoch left stale when it can, and rewrites ``log.csv`` from the checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dmg.core import checkpoints, provenance, registry
from dmg.core.build import build_loss, build_model, load_dataset, open_unit_source
from dmg.core.components import options_with_role
from dmg.core.config import (
    ComponentRef,
    Period,
    RunConfig,
    _config_class,
    check_components,
    dump_config,
    load_config,
    make_period,
)
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import Normalizer
from dmg.core.distributed import Distributed, resolve_device
from dmg.core.errors import InputError
from dmg.core.evaluation import load_normalizer, load_trained
from dmg.core.io import atomic_path
from dmg.core.run_data import check_targets, period_data, unit_split
from dmg.core.runfolder import RunFolder
from dmg.core.simulation import simulate_domain
from dmg.core.states import check_state_file, date_text, read_state
from dmg.core.training import EpochCallback, Trainer, seed_everything

Announce = Callable[[RunFolder], None]
"""Called with the run folder as soon as it is known (the command line prints it)."""


def run_path(config: RunConfig, run_dir: str | Path | None = None) -> Path:
    """Where a new run goes: ``run_dir``, else ``output.root/output.name`` (a timestamp by default)."""
    if run_dir is not None:
        return Path(run_dir)
    if config.output.name:
        return Path(config.output.root) / config.output.name
    stem = Path(config.output.root) / dt.datetime.now().strftime("run_%Y%m%d_%H%M%S")
    path, n = stem, 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = stem.with_name(f"{stem.name}_{n}")
    return path


def train(
    config: RunConfig,
    run_dir: str | Path | None = None,
    announce: Announce | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> RunFolder:
    """Train a new run; returns its folder. Under ``torchrun`` every process trains, rank 0 writes.

    ``callbacks`` are called after every epoch as ``callback(trainer, record)`` (e.g. to prune a trial).
    With ``train.seeds`` the run is a seed ensemble: one member run per seed in ``members/seed_<s>/``.
    """
    if config.train.seeds:
        return _train_ensemble(config, run_dir, announce)
    distributed = Distributed.from_environment()
    seed_everything(config.seed)
    dataset, train_ids = _training_units(config)
    train_data, _ = _training_data(config, dataset, train_ids)
    normalizer = config.data.roles.fit_normalizer(train_data)
    with contextlib.ExitStack() as held:

        def start() -> str:
            folder = RunFolder.prepare_new(run_path(config, run_dir))
            held.enter_context(folder.lock("dmg train"))
            folder = RunFolder.prepare_new(folder.path)  # checked again, holding the lock
            folder.remove_unfinished_start()
            _write_start(folder, config)
            normalizer.save(folder.normalizer)
            return str(folder.path)

        folder = RunFolder(Path(distributed.on_main(start)))
        if announce is not None and distributed.is_main:
            announce(folder)
        try:
            _trainer(config, folder, normalizer, dataset, train_ids, distributed, callbacks).fit()
        except Exception:
            if distributed.is_main:
                folder.remove_unfinished_start()  # a failed start leaves nothing behind
            raise
    return folder


def resume(run_dir: str | Path, announce: Announce | None = None) -> RunFolder:
    """Continue a run from its last checkpoint: the result equals an uninterrupted run.

    A run with no ``last.pt`` (killed before its first checkpoint) starts again from scratch.
    """
    distributed = Distributed.from_environment()
    folder = RunFolder.existing(run_dir)
    if load_config(folder.config).train.seeds:
        return _resume_ensemble(folder, announce)
    with folder.lock("dmg train --resume") if distributed.is_main else contextlib.nullcontext():
        if distributed.is_main:
            folder.remove_temporary_files()
        distributed.barrier()
        config = load_config(folder.config)
        if announce is not None:
            announce(folder)
        last = folder.checkpoint("last")
        if not last.is_file():
            seed_everything(config.seed)
        dataset, train_ids = _training_units(config)
        train_data, _ = _training_data(config, dataset, train_ids)
        if folder.normalizer.is_file():
            normalizer = load_normalizer(folder)
        else:
            normalizer = config.data.roles.fit_normalizer(train_data)
            if distributed.is_main:
                normalizer.save(folder.normalizer)
        trainer = _trainer(config, folder, normalizer, dataset, train_ids, distributed)
        if last.is_file():
            if distributed.is_main:
                repair_best(folder)
            distributed.barrier()
            trainer.load_checkpoint(last)
        trainer.fit()
    return folder


def member_config(config: RunConfig, seed: int) -> RunConfig:
    """The config of a seed ensemble's member: the run's config with ``seed`` and no ``train.seeds``."""
    data = config.model_dump(mode="json")
    data["seed"] = seed
    data["train"]["seeds"] = None
    return load_config(data)


def _write_start(folder: RunFolder, config: RunConfig) -> None:
    """What a new run writes first: its resolved config and the versions it runs with."""
    folder.write_text(folder.config, dump_config(config))
    folder.write_text(folder.versions, json.dumps(provenance.collect(), indent=2))


def _train_ensemble(config: RunConfig, run_dir: str | Path | None, announce: Announce | None) -> RunFolder:
    if Distributed.from_environment().enabled:
        raise InputError("train.seeds: seed ensembles train their members one after another; run without torchrun")
    folder = RunFolder.prepare_new(run_path(config, run_dir))
    with folder.lock("dmg train (seed ensemble)"):
        folder = RunFolder.prepare_new(folder.path)
        _write_start(folder, config)
        if announce is not None:
            announce(folder)
        for seed in config.train.seeds or ():
            print(f"member seed {seed}: {folder.member(seed)}", flush=True)
            train(member_config(config, seed), folder.member(seed))
    return folder


def _resume_ensemble(folder: RunFolder, announce: Announce | None) -> RunFolder:
    with folder.lock("dmg train --resume (seed ensemble)"):
        folder.remove_temporary_files()
        config = load_config(folder.config)
        if announce is not None:
            announce(folder)
        for seed in config.train.seeds or ():
            member = RunFolder(folder.member(seed))
            print(f"member seed {seed}: {member.path}", flush=True)
            if member.config.is_file():
                resume(member.path)
            else:
                train(member_config(config, seed), member.path)
    return folder


def repair_best(folder: RunFolder) -> None:
    """Make ``best.pt`` hold the best epoch ``last.pt`` records, or raise if that cannot be done.

    When the best epoch is the last finished one and ``last.pt`` was written at its end, the two
    checkpoints of that epoch are the same file, so ``best.pt`` is restored from ``last.pt``.
    """
    last_path, best_path = folder.checkpoint("last"), folder.checkpoint("best")
    last = checkpoints.load(last_path, "cpu", training=True)
    best = checkpoints.load(best_path, "cpu", training=True) if best_path.is_file() else None
    try:
        checkpoints.check_best(last, best, best_path)
    except checkpoints.CheckpointError:
        state = last["train_state"]
        if not (state["best_epoch"] == state["epoch"] and state.get("partial") is None):
            raise
        with atomic_path(best_path) as tmp:
            shutil.copyfile(last_path, tmp)


def simulate(
    run_dir: str | Path,
    start: str | None,
    end: str | None,
    units: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    name: str | None = None,
    checkpoint: str = "best",
    overwrite: bool = False,
    chunk_units: int | None = None,
    report: Callable[[str], None] | None = None,
    *,
    save_state: str | None = None,
    from_state: str | Path | None = None,
) -> Path:
    """Run a trained model on a new period and/or new units (no targets needed); returns the predictions file.

    The file goes to ``simulations/<name>`` inside the run folder; an existing one is kept unless
    ``overwrite``. Units are simulated ``chunk_units`` at a time (default ``simulate.chunk_units``),
    each chunk kept as it finishes: the same call after an interruption continues where it stopped,
    and under ``torchrun`` the processes share the chunks (:mod:`dmg.core.simulation`).

    ``save_state`` (a date of the period, ``YYYY-MM-DD``) also writes the state of every unit at its end
    to ``RUN/states/<date>.pt``; ``from_state`` (such a file) starts the simulation from it at the step
    after its date (``start`` may be left out), without warm-up, for its units unless ``units`` names
    some of them.
    """
    folder = RunFolder.existing(run_dir)
    initial = read_state(from_state) if from_state is not None else None
    if initial is not None and start is None:
        start = date_text(initial.next_date)
    period = make_period(start, end, "simulate --start/--end")
    save_at = None
    if save_state is not None:
        try:
            save_at = np.datetime64(save_state)
        except ValueError:
            raise InputError(f"--save-state {save_state!r} is not a date; write YYYY-MM-DD") from None
    if name is not None:
        folder.simulation(name)  # a plain file name, checked before anything is loaded
    if load_config(folder.config).train.seeds:
        raise InputError(
            f"{folder.path} is a seed ensemble: simulate with one of its members, {folder.member(0).parent}/seed_<seed>"
        )
    if initial is not None and not units:
        units = initial.unit_ids
    distributed = Distributed.from_environment()
    with folder.lock("dmg simulate") if distributed.is_main else contextlib.nullcontext():
        config, model, normalizer, chosen = load_trained(folder, checkpoint, overrides)
        if initial is not None:  # the model and weights first: a state of another run names no unit of this one
            check_state_file(str(from_state), initial, config, model, initial.unit_ids, None)
        model = model.to(distributed.device(resolve_device(config.device)))
        config = widen_dataset(config, units, period)
        dataset = open_unit_source(config)  # each chunk's units read when it is simulated
        ids = list(units) if units else list(dataset.unit_ids)
        known = set(dataset.unit_ids)
        unknown = [u for u in ids if u not in known]
        if unknown:
            raise InputError(f"--units: the dataset has no unit {', '.join(unknown[:5])}")
        return simulate_domain(
            folder,
            config,
            model,
            normalizer,
            dataset,
            ids,
            period,
            chosen.path,
            name=name,
            overwrite=overwrite,
            chunk_units=chunk_units,
            save_state=save_at,
            from_state=initial,
            distributed=distributed,
            report=report,
        )


def widen_dataset(config: RunConfig, units: Sequence[str] | None, period: Period) -> RunConfig:
    """The config with its dataset loading ``units`` and, when a period is asked for, its whole record.

    Uses the options a dataset component marks as selecting units, a first date or a last date
    (``SELECTS_UNITS``, ``SELECTS_START``, ``SELECTS_END`` of :mod:`dmg.core.components`), so that
    ``dmg simulate --units/--start/--end`` need no ``--set`` of the dataset's own options.
    """
    ref = config.data.dataset
    options = _config_class(registry.get("dmg.datasets", ref.name))
    changes: dict[str, object] = {}
    if units:
        changes.update({option: list(units) for option in options_with_role(options, "units")})
    if period.start is not None or period.end is not None:
        changes.update({option: None for role in ("start", "end") for option in options_with_role(options, role)})
    if not changes:
        return config
    dataset = ComponentRef.model_validate({**ref.model_dump(), **changes})
    widened = config.model_copy(update={"data": config.data.model_copy(update={"dataset": dataset})})
    check_components(widened)
    return widened


# --------------------------------------------------------------------------- helpers


def _training_units(config: RunConfig) -> tuple[ArrayDataset, list[str]]:
    dataset = load_dataset(config)
    train_ids, _ = unit_split(config, dataset)
    return dataset, train_ids


def _training_data(config: RunConfig, dataset: ArrayDataset, train_ids: list[str]) -> tuple[ArrayDataset, int]:
    data, warmup = period_data(config, dataset, config.data.train, train_ids, strict_warmup=False, key="data.train")
    check_targets(config, data, warmup, "train")
    return data, warmup


def _trainer(
    config: RunConfig,
    folder: RunFolder,
    normalizer: Normalizer | None,
    dataset: ArrayDataset,
    train_ids: list[str],
    distributed: Distributed,
    callbacks: Sequence[EpochCallback] = (),
) -> Trainer:
    with warnings.catch_warnings():  # warned about when the training data were first cut
        warnings.simplefilter("ignore")
        train_data, _ = period_data(config, dataset, config.data.train, train_ids, strict_warmup=False)
    valid = None
    if config.data.valid is not None:
        valid = period_data(config, dataset, config.data.valid, train_ids, strict_warmup=False, key="data.valid")
        check_targets(config, *valid, "valid")
    device = distributed.device(resolve_device(config.device))
    model = build_model(config).to(device)
    return Trainer(
        config,
        model,
        build_loss(config),
        train_data,
        normalizer,
        folder,
        valid_data=valid,
        callbacks=callbacks,
        distributed=distributed,
    )
