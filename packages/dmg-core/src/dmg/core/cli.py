"""The ``dmg`` command line: train, evaluate, simulate, validate, schema, list."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dmg.core import registry
from dmg.core.__about__ import __version__
from dmg.core.errors import DmgError, InputError

EXAMPLES = {
    "train": """examples:
  dmg train examples/configs/quickstart.yaml
  dmg train my.yaml --set train.epochs=5 --set model.physics.nmul=4
  dmg train my.yaml --run-dir runs/trial1
  dmg train --resume runs/trial1            continue an interrupted run exactly
  torchrun --nproc_per_node 4 -m dmg.core.cli train my.yaml    data-parallel on 4 processes/GPUs""",
    "evaluate": """examples:
  dmg evaluate runs/trial1                  metrics on the test period (best checkpoint)
  dmg evaluate runs/trial1 --period valid --checkpoint last
  dmg evaluate runs/trial1 --checkpoint saved/epoch12.pt   any checkpoint file of this run's model
results go to RUN_DIR/evaluations/<period>_<checkpoint>/, one folder per period and checkpoint""",
    "simulate": """examples:
  dmg simulate runs/trial1 --start 2015-01-01 --end 2016-12-31
  dmg simulate runs/trial1 --units 01022500 01547700 --set data.dataset.root=/data/camels
  dmg simulate runs/trial1 --name conus --chunk-units 5000 --set simulate.format=zarr
  torchrun --nproc_per_node 4 -m dmg.core.cli simulate runs/trial1 --name conus    chunks shared by 4 processes
  dmg simulate runs/trial1 --start 2015-01-01 --end 2015-06-30 --save-state 2015-06-30
  dmg simulate runs/trial1 --from-state runs/trial1/states/2015-06-30.pt --end 2015-12-31""",
    "validate": """examples:
  dmg validate my.yaml                      check keys, components, data roles and one forward pass
  dmg validate my.yaml --set data.warmup=180""",
    "schema": """examples:
  dmg schema > schema.json                  JSON Schema of a run config with every installed component
  dmg schema --markdown                     the configuration reference as markdown tables""",
    "list": """examples:
  dmg list                                  every installed component and its package
  dmg list physics""",
    "tune": """examples:
  dmg tune my.yaml --trials 30              search the config's tune.space (needs the tune extra)
  dmg tune my.yaml --trials 60 --jobs 2     continue the same study with two worker processes""",
    "gui": """examples:
  dmg gui                                   edit configs of this folder in the browser (prints the address)
  dmg gui examples/configs/quickstart.yaml --open
  dmg gui --port 8765""",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmg",
        description="Differentiable models: train networks and process-based equations together.",
        epilog="Run `dmg COMMAND --help` for examples of each command.",
    )
    parser.add_argument("--version", action="version", version=f"dmg-core {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key by its dotted path (repeatable); the value is read as YAML",
        )

    p = command("train", "Train a model from a YAML config, then evaluate it on the test period.")
    p.add_argument("config", nargs="?", help="run configuration (YAML)")
    overrides(p)
    p.add_argument("--run-dir", help="run folder to create (default: output.root/output.name)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")

    p = command(
        "evaluate",
        "Compute metrics of a trained run on a period; write them, the predictions and plots to "
        "RUN_DIR/evaluations/<period>_<checkpoint>/.",
    )
    p.add_argument("run_dir", help="a run folder made by `dmg train`")
    p.add_argument("--period", default="test", choices=["train", "valid", "test"])
    p.add_argument(
        "--checkpoint",
        metavar="best|last|PATH",
        help="checkpoint to evaluate (default: evaluate.checkpoint of the run)",
    )

    p = command("simulate", "Run a trained model on new periods or units (no observations needed).")
    p.add_argument("run_dir", help="a run folder made by `dmg train`")
    p.add_argument(
        "--start",
        "--start-date",
        dest="start",
        help="first date (YYYY-MM-DD); default: first date of the data after warm-up (under torchrun, whose own "
        "--start-method it abbreviates, write --start-date)",
    )
    p.add_argument("--end", "--end-date", dest="end", help="last date (YYYY-MM-DD); default: last date of the data")
    p.add_argument("--units", nargs="+", help="unit ids (default: every unit of the dataset)")
    p.add_argument("--name", help="file name (no folders) of the predictions under RUN_DIR/simulations/")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing predictions file of that name, and discard an unfinished simulation of that "
        "name started with other options",
    )
    p.add_argument("--checkpoint", metavar="best|last|PATH", default="best", help="checkpoint to simulate with")
    p.add_argument(
        "--save-state",
        metavar="DATE",
        help="save the model's whole state at the end of DATE to RUN_DIR/states/DATE.pt",
    )
    p.add_argument(
        "--from-state",
        metavar="FILE",
        help="start from a state saved by --save-state, at the step after its date (no warm-up), for its units "
        "or those of --units",
    )
    p.add_argument(
        "--chunk-units",
        type=int,
        metavar="N",
        help="units simulated and written at a time (default: simulate.chunk_units, 1024); "
        "an interrupted simulation continues when the same command is run again",
    )
    overrides(p)

    p = command("validate", "Check a config: keys, components, data roles, and one forward pass.")
    p.add_argument("config", help="run configuration (YAML)")
    overrides(p)

    p = command("schema", "Print the JSON Schema of run configs, with every installed component.")
    p.add_argument("--markdown", action="store_true", help="print the configuration reference as markdown")
    p.add_argument("--output", help="write to this file instead of standard output")

    p = command("list", "List installed components and the packages that provide them.")
    p.add_argument("group", nargs="?", choices=[g.split(".", 1)[1] for g in registry.GROUPS])

    p = command("tune", "Search hyper-parameters of a config (its tune section) on the validation period.")
    p.add_argument("config", help="run configuration (YAML) with a tune section and data.valid")
    overrides(p)
    p.add_argument("--trials", type=int, help="trials in the study in all (default: tune.trials)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study")
    p.add_argument("--study-dir", help="folder of the study (default: output.root/tune_<name>)")

    p = command("gui", "Edit run configs in a local web page (127.0.0.1 only; files of this folder).")
    p.add_argument("config", nargs="?", help="a YAML config in the working directory to open first")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dmg`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    args.run_folder = None
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return _COMMANDS[args.command](args)
    except DmgError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = f"; continue with `dmg train --resume {args.run_folder}`" if args.run_folder else ""
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dmg schema | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        warnings.formatwarning = shown
        _leave_process_group()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as the command line shows them: one ``warning:`` line each."""
    return f"warning: {message}\n"


def _leave_process_group() -> None:
    """Close the torchrun process group, if this command joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # every process leaves together: a rank that tears its group down while rank 0 still evaluates
        # can abort in the communication library's threads
        dist.barrier()
        dist.destroy_process_group()


def _train(args: argparse.Namespace) -> int:
    from dmg.core import evaluation, workflows
    from dmg.core.config import load_config
    from dmg.core.distributed import Distributed

    def announce(folder) -> None:
        args.run_folder = folder.path
        print(f"run folder: {folder.path}", flush=True)

    if args.resume:
        if args.config or args.overrides:
            print("error: --resume takes the run folder only; its saved config is used", file=sys.stderr)
            return 2
        folder = workflows.resume(args.resume, announce)
    else:
        if not args.config:
            print("error: give a config file (or --resume RUN_DIR); see `dmg train --help`", file=sys.stderr)
            return 2
        folder = workflows.train(load_config(args.config, args.overrides), args.run_dir, announce)
    if not Distributed.from_environment().is_main:
        return 0  # under torchrun, rank 0 reports and evaluates
    print(f"trained: {folder.path}")
    if not args.no_evaluate:
        _print_evaluation(folder.path, evaluation.evaluate(folder.path, "test"))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from dmg.core import evaluation

    _print_evaluation(args.run_dir, evaluation.evaluate(args.run_dir, args.period, args.checkpoint))
    return 0


def _print_evaluation(run_dir: str | Path, report: Mapping[str, Any]) -> None:
    """The metrics table of an evaluated period, then where its plots are (if any were written)."""
    from dmg.core import evaluation

    print(evaluation.format_metrics(report))
    print(f"results: {Path(run_dir) / report['folder']} (metrics.json, metrics.csv, predictions)")
    plots = evaluation.format_plots(run_dir, report)
    if plots:
        print(plots)


def _simulate(args: argparse.Namespace) -> int:
    from dmg.core import workflows
    from dmg.core.distributed import Distributed

    path = workflows.simulate(
        args.run_dir,
        args.start,
        args.end,
        args.units,
        args.overrides,
        args.name,
        args.checkpoint,
        overwrite=args.overwrite,
        chunk_units=args.chunk_units,
        report=lambda line: print(line, flush=True),
        save_state=args.save_state,
        from_state=args.from_state,
    )
    if Distributed.from_environment().is_main:
        print(f"predictions: {path}")
        if args.save_state:
            from dmg.core.runfolder import RunFolder
            from dmg.core.states import state_path

            print(f"state: {state_path(RunFolder.existing(args.run_dir), args.save_state)}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from dmg.core.validation import validate_config

    print(validate_config(args.config, args.overrides))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from dmg.core.config import json_schema
    from dmg.core.docs import configuration_reference

    text = configuration_reference() if args.markdown else json.dumps(json_schema(), indent=2)
    if args.output:
        from dmg.core.io import atomic_write_text

        output = Path(args.output)
        if output.is_dir():
            raise InputError(f"--output {output} is a folder; give a file name, e.g. {output / 'schema.json'}")
        atomic_write_text(output, text if text.endswith("\n") else text + "\n")
    else:
        print(text)
    return 0


def _list(args: argparse.Namespace) -> int:
    from dmg.core import registry

    groups = [f"dmg.{args.group}"] if args.group else list(registry.GROUPS)
    for group in groups:
        entries = registry.entries(group)
        print(f"{group.split('.')[1]} ({len(entries)})")
        for name, entry in entries.items():
            print(f"  {name:<22} {entry.distribution:<24} {entry.target}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from dmg.core import tune

    result = tune.tune(args.config, args.overrides, args.trials, args.jobs, args.study_dir)
    print(tune.format_result(result))
    return 0


def _gui(args: argparse.Namespace) -> int:
    from dmg.core.gui.server import serve

    return serve(args.config, args.port, args.open)


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "simulate": _simulate,
    "validate": _validate,
    "schema": _schema,
    "list": _list,
    "tune": _tune,
    "gui": _gui,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
